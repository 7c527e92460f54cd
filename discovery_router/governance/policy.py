"""Which tools exist for the agent, and which of those it may call: allow/deny globs, read-only mode, confirmation.

Pure decisions with no I/O, so the MCP server, the CLI and the tests all get
the same answer for the same config. Annotations are hints from the upstream;
the one place the router trusts a tool *less* than its annotations is a tool
without any: it counts as neither read-only nor harmless, as the MCP spec's
defaults say (``readOnlyHint`` false, ``destructiveHint`` true).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase
from typing import Any

import mcp_types

from discovery_router.ids import tool_id

SERVER_POLICY_KEYS = frozenset({"tools", "readOnly", "confirmDestructive", "auditArguments"})
_TOOLS_KEYS = ("allow", "deny", "safe")


@dataclass(frozen=True)
class ServerPolicy:
    """One server's governance settings, as written in its config entry."""

    allow: tuple[str, ...] = ()
    """Globs over upstream tool names (case-insensitive); when non-empty, only matching tools exist."""
    deny: tuple[str, ...] = ()
    """Globs over upstream tool names (case-insensitive); a match never exists (deny beats allow)."""
    safe: tuple[str, ...] = ()
    """Globs (case-insensitive) naming tools to treat as read-only although their annotations do not say so."""
    read_only: bool | None = None
    """``readOnly``; None follows ``router.read_only``."""
    confirm_destructive: bool | None = None
    """``confirmDestructive``; None follows ``router.confirm_destructive``."""
    audit_arguments: bool = False
    """``auditArguments``: write argument values (redacted) to the audit log, not only their keys."""

    def exposes(self, tool_name: str) -> bool:
        """Whether a tool of this name is indexed, shown and callable at all."""
        if name_matches_any(tool_name, self.deny):
            return False
        return not self.allow or name_matches_any(tool_name, self.allow)


class Verdict(str, Enum):
    ALLOW = "allow"
    CONFIRM = "confirm"
    """Callable once the user confirms (MCP elicitation); refused where nobody can be asked."""
    REFUSE = "refuse"


@dataclass(frozen=True)
class ToolPolicy:
    """The decision for one tool, with the reason written for the agent reading it."""

    verdict: Verdict
    read_only: bool
    destructive: bool
    governed: bool
    """True when read-only mode or confirmation applies to the tool's server: only then is the state shown."""
    reason: str = ""
    """Why it is refused or needs confirmation, naming the setting that changes it."""
    setting: str = ""
    """The config setting behind the verdict, as written in the file (``router.read_only`` ...)."""

    @property
    def label(self) -> str:
        """The short flag search results show (empty when no governance applies)."""
        if not self.governed:
            return ""
        if self.verdict is Verdict.REFUSE:
            return "refused: not read-only"
        if self.verdict is Verdict.CONFIRM:
            return "destructive: user must confirm"
        return "read-only" if self.read_only else ""

    @property
    def summary(self) -> str:
        """One line for describe_tool: what the agent can expect when it calls the tool."""
        kind = "read-only" if self.read_only else "destructive" if self.destructive else "not read-only"
        if self.verdict is Verdict.ALLOW:
            return f"{kind}; callable"
        if self.verdict is Verdict.REFUSE:
            return f"{kind}; refused: {self.reason}"
        return (
            f"{kind}; each call asks the user to confirm (MCP elicitation; refused where the client cannot "
            f"ask), because {self.reason}"
        )


class Policy:
    """Per-server policies plus the router-wide defaults they fall back to."""

    def __init__(
        self,
        servers: Mapping[str, ServerPolicy] | None = None,
        *,
        read_only: bool = False,
        confirm_destructive: bool = False,
    ) -> None:
        self.servers = dict(servers or {})
        self.read_only = read_only
        self.confirm_destructive = confirm_destructive

    def server(self, name: str) -> ServerPolicy:
        return self.servers.get(name) or ServerPolicy()

    def exposes(self, server: str, tool_name: str) -> bool:
        return self.server(server).exposes(tool_name)

    def decide(self, server: str, tool: mcp_types.Tool) -> ToolPolicy:
        """Allow, confirm or refuse a call of ``tool`` on ``server``."""
        policy = self.server(server)
        annotations = tool.annotations
        listed_safe = name_matches_any(tool.name, policy.safe)
        read_only = listed_safe or bool(annotations and annotations.read_only_hint is True)
        destructive = not read_only and not (annotations and annotations.destructive_hint is False)
        read_only_mode, read_only_setting = _effective(
            policy.read_only, self.read_only, server, "readOnly", "read_only"
        )
        confirm, confirm_setting = _effective(
            policy.confirm_destructive, self.confirm_destructive, server, "confirmDestructive", "confirm_destructive"
        )
        governed = read_only_mode or confirm
        shown = tool_id(server, tool.name)
        if read_only_mode and not read_only:
            why = "has no annotations" if annotations is None else "is not annotated readOnlyHint: true"
            reason = (
                f"{shown} {why} and read-only mode is on ({read_only_setting}). If the tool only reads, "
                f"list it in mcpServers.{server}.tools.safe; otherwise set {read_only_setting} to false."
            )
            return ToolPolicy(Verdict.REFUSE, read_only, destructive, governed, reason, read_only_setting)
        if confirm and destructive:
            why = (
                "destructiveHint: true"
                if annotations and annotations.destructive_hint
                else ("it has no annotations" if annotations is None else "it is not annotated destructiveHint: false")
            )
            reason = f"{shown} counts as destructive ({why}) and {confirm_setting} is true"
            return ToolPolicy(Verdict.CONFIRM, read_only, destructive, governed, reason, confirm_setting)
        return ToolPolicy(Verdict.ALLOW, read_only, destructive, governed)


def _effective(own: bool | None, router_wide: bool, server: str, key: str, router_key: str) -> tuple[bool, str]:
    """The setting in force and its name as written in the config file, for messages."""
    if own is not None:
        return own, f"mcpServers.{server}.{key}"
    return router_wide, f"router.{router_key}"


def parse_server_policy(entry: Mapping[str, Any], fail: Callable[[str | None, str], Exception]) -> ServerPolicy:
    """Validate a server entry's governance keys; ``fail(field, message)`` builds the config error."""
    tools = entry.get("tools", {})
    if not isinstance(tools, dict):
        raise fail("tools", "must be an object with allow, deny and safe lists of glob patterns")
    unknown = sorted(set(tools) - set(_TOOLS_KEYS))
    if unknown:
        raise fail(f"tools.{unknown[0]}", "unknown key (tools takes allow, deny and safe)")
    globs = {key: _glob_list(tools.get(key, []), f"tools.{key}", fail) for key in _TOOLS_KEYS}
    flags = {}
    for key in ("readOnly", "confirmDestructive", "auditArguments"):
        value = entry.get(key)
        if value is not None and not isinstance(value, bool):
            raise fail(key, "must be true or false")
        flags[key] = value
    return ServerPolicy(
        allow=globs["allow"],
        deny=globs["deny"],
        safe=globs["safe"],
        read_only=flags["readOnly"],
        confirm_destructive=flags["confirmDestructive"],
        audit_arguments=bool(flags["auditArguments"]),
    )


def _glob_list(value: Any, key: str, fail: Callable[[str | None, str], Exception]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise fail(key, "must be a list of glob patterns")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise fail(f"{key}[{i}]", "must be a non-empty string")
    return tuple(value)


def matches_any(text: str, patterns: Sequence[str]) -> bool:
    """Case-sensitive glob match against any of ``patterns`` (tool ids, as ``router.pinned`` names them)."""
    return any(fnmatchcase(text, pattern) for pattern in patterns)


def name_matches_any(tool_name: str, patterns: Sequence[str]) -> bool:
    """Case-insensitive glob match for ``tools.allow/deny/safe``.

    A deny rule is a safety rule: ``*delete*`` must also catch ``DeleteRepo`` and
    ``BULK_DELETE``, since upstreams name tools in every case style.
    """
    folded = tool_name.casefold()
    return any(fnmatchcase(folded, pattern.casefold()) for pattern in patterns)
