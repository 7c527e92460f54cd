"""What one upstream is and has, as the rest of the router reads it: its state, its status line, and the
resources, templates and prompts it lists (passed through, never indexed)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import mcp_types


class UpstreamState(str, Enum):
    DISABLED = "disabled"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


@dataclass(frozen=True)
class UpstreamStatus:
    """What ``status`` shows for one server; ``error`` is already redacted."""

    name: str
    state: UpstreamState
    tool_count: int
    error: str | None = None
    transport: str = ""
    duplicate_tools: tuple[str, ...] = ()
    """Tool names the server listed more than once (the first is kept)."""
    refused_tools: tuple[str, ...] = ()
    """Tool names refused as invalid, shown with ``ascii()`` (they may hold newlines or control characters)."""


@dataclass(frozen=True)
class Components:
    """An upstream's resources, resource templates and prompts: passed through, never indexed."""

    resources: tuple[mcp_types.Resource, ...] = ()
    templates: tuple[mcp_types.ResourceTemplate, ...] = ()
    prompts: tuple[mcp_types.Prompt, ...] = ()
    subscribe: bool = False
    """The upstream accepts ``resources/subscribe``."""
