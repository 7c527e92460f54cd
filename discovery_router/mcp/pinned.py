"""Pinned tools: a few upstream tools listed directly in ``tools/list`` beside the three meta-tools.

For the handful of tools an agent uses in nearly every session, a search
and a describe cost more than the tool's own schema. ``router.pinned`` names
them by id or by a glob over ids (``git/git_status``, ``time/*``).

Each is listed under its upstream name, or ``<server>_<tool>`` when that name
is taken (by a meta-tool or by another pinned tool of the same name). A call
runs exactly as ``call_tool`` with that id would: same policy, confirmation,
audit line, progress and upstream asks, because it *is* that call. Tools the
policy refuses are not pinned: listing a tool that can never run wastes the
tokens pinning is meant to save.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.providers import Provider
from fastmcp.tools.base import Tool, ToolResult
from pydantic import PrivateAttr

from discovery_router.catalog import ToolEntry
from discovery_router.governance.policy import Verdict, matches_any
from discovery_router.router import Router

META_TOOLS = frozenset({"search_tools", "describe_tool", "call_tool"})


def pinned_entries(entries: Sequence[ToolEntry], patterns: Sequence[str]) -> list[ToolEntry]:
    """Catalog entries whose id matches a pattern, in catalog order, minus those the policy refuses."""
    return [
        entry
        for entry in entries
        if matches_any(entry.id, patterns) and (entry.policy is None or entry.policy.verdict is not Verdict.REFUSE)
    ]


def pinned_names(entries: Sequence[ToolEntry]) -> dict[str, ToolEntry]:
    """Front name -> entry: the upstream name when unique and free, else ``<server>_<tool>``."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.name] = counts.get(entry.name, 0) + 1
    named: dict[str, ToolEntry] = {}
    for entry in entries:
        clash = entry.name in META_TOOLS or counts[entry.name] > 1
        named[f"{entry.server}_{entry.name}" if clash else entry.name] = entry
    return named


class PinnedTool(Tool):
    """One pinned upstream tool; running it is ``call_tool`` with its id."""

    _server: Any = PrivateAttr(default=None)
    _target: str = PrivateAttr(default="")

    @classmethod
    def of(cls, front_name: str, entry: ToolEntry, server: FastMCP) -> PinnedTool:
        tool = entry.tool
        pinned = cls(
            name=front_name,
            title=tool.title,
            description=tool.description or "",
            parameters=tool.input_schema or {"type": "object", "properties": {}},
            output_schema=tool.output_schema,
            annotations=tool.annotations,
        )
        pinned._server, pinned._target = server, entry.id
        return pinned

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return await self._server.call_tool(
            "call_tool", {"name": self._target, "arguments": arguments}, run_middleware=False
        )


class PinnedTools(Provider):
    """Lists the pinned tools from the router's live catalog (waiting for it on the first listing)."""

    def __init__(self, router: Router, server: FastMCP) -> None:
        super().__init__()
        self._router, self._server = router, server

    async def get_tasks(self) -> Sequence[Any]:
        """None: pinned tools are forwarded calls, never tasks (and listing would wait on the catalog)."""
        return []

    async def _list_tools(self) -> Sequence[Tool]:
        patterns = self._router.settings.pinned
        if not patterns:
            return []
        catalog = await self._router.ready_catalog()
        named = pinned_names(pinned_entries(catalog.entries, patterns))
        return [PinnedTool.of(front, entry, self._server) for front, entry in named.items()]
