"""The merged tool catalog: ``<server>/<tool>`` ids, name resolution and suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mcp_types

from discovery_router.errors import AmbiguousToolError, UnknownToolError
from discovery_router.ids import ID_SEPARATOR, clean_id, tool_id
from discovery_router.search.base import ToolDoc

if TYPE_CHECKING:
    from discovery_router.governance.policy import ToolPolicy


@dataclass(frozen=True)
class ToolEntry:
    """One upstream tool as the router knows it."""

    server: str
    tool: mcp_types.Tool
    available: bool = True
    """False when the tool comes from a server that is currently unreachable."""
    policy: ToolPolicy | None = None
    """What the config's governance says about calling it (None: no policy was applied)."""

    @property
    def name(self) -> str:
        return self.tool.name

    @property
    def id(self) -> str:
        return tool_id(self.server, self.tool.name)

    def to_doc(self, server_description: str = "") -> ToolDoc:
        return ToolDoc(
            server=self.server,
            name=self.tool.name,
            description=self.tool.description or "",
            input_schema=self.tool.input_schema or {},
            server_description=server_description,
        )


SEARCH_HINT = "Use search_tools to find tool ids."
"""Said to agents; the CLI says its own command instead (see ``cli.main``)."""


class Catalog:
    """An immutable snapshot of every known tool, in server then upstream order."""

    def __init__(self, entries: Iterable[ToolEntry] = ()) -> None:
        self.entries: tuple[ToolEntry, ...] = tuple(entries)
        self._by_id = {e.id: e for e in self.entries}
        self._by_name: dict[str, list[ToolEntry]] = {}
        for entry in self.entries:
            self._by_name.setdefault(entry.name, []).append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, tool_id: str) -> bool:
        return tool_id in self._by_id

    def resolve(self, name: str) -> ToolEntry:
        """An id, or a bare tool name that exactly one server has.

        Ids win over bare names, so a tool literally named ``a/b`` on a
        server still resolves by its full id.
        """
        name = clean_id(name)
        if name in self._by_id:
            return self._by_id[name]
        same_name = self._by_name.get(name, [])
        if len(same_name) == 1:
            return same_name[0]
        if len(same_name) > 1:
            ids = ", ".join(e.id for e in same_name)
            raise AmbiguousToolError(f"Tool name {name!r} is ambiguous: use one of the ids {ids}.")
        raise UnknownToolError(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        suggestions = self.closest(name)
        message = f"Unknown tool {name!r}."
        if suggestions:
            message += f" Did you mean: {', '.join(suggestions)}?"
        return f"{message} {SEARCH_HINT}"

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Closest ids by spelling, comparing against both ids and bare names."""
        candidates = {e.id: e.id for e in self.entries} | {e.name: e.id for e in self.entries}
        found = difflib.get_close_matches(name, list(candidates), n=n * 2, cutoff=0.5)
        bare = name.rsplit(ID_SEPARATOR, 1)[-1]
        if bare != name:
            found += difflib.get_close_matches(bare, list(candidates), n=n, cutoff=0.6)
        return list(dict.fromkeys(candidates[f] for f in found))[:n]


class Matches(list[ToolEntry]):
    """What :meth:`Router.search` found: the tools, best first, plus what a client should be told.

    A list, so callers that only want the tools use it as one. ``weak``: even
    the best hit barely matches the query (say so rather than pass off filler as
    answers). In step mode, ``steps`` are the plan, ``groups[i]`` the tools for
    ``steps[i]`` and ``weak_steps[i]`` whether that step's best is weak.
    """

    def __init__(
        self,
        entries: Iterable[ToolEntry] = (),
        *,
        weak: bool = False,
        steps: tuple[str, ...] = (),
        groups: tuple[list[ToolEntry], ...] = (),
        weak_steps: tuple[bool, ...] = (),
    ) -> None:
        super().__init__(entries)
        self.weak, self.steps, self.groups, self.weak_steps = weak, steps, groups, weak_steps
