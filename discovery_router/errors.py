"""The router's exceptions: each carries a message written for the person or model reading it."""

from __future__ import annotations

from pathlib import Path


class RouterError(Exception):
    """Base class; ``str(exc)`` is the user-facing message."""


class ConfigError(RouterError):
    """A bad config file, located precisely: file, server, field."""

    def __init__(self, path: Path | None, server: str | None, field: str | None, message: str) -> None:
        self.path, self.server, self.field, self.message = path, server, field, message
        where = [str(path) if path else "config"]
        if server is not None:
            where.append(f"server {server!r}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {message}")


class UnknownToolError(RouterError):
    """No tool by that name; the message suggests the closest ids."""


class AmbiguousToolError(RouterError):
    """A bare tool name that several servers expose."""


class UnknownServerError(RouterError):
    """A ``server=`` filter or CLI argument naming no configured server."""


class InvalidArgumentsError(RouterError):
    """Arguments rejected by the tool's inputSchema before anything is forwarded."""


class UpstreamUnavailableError(RouterError):
    """The tool's server is not connected (or just went away)."""


class UpstreamCallError(RouterError):
    """The upstream answered the call with a protocol error or did not answer in time."""


class PolicyRefusedError(RouterError):
    """The config's governance refuses this call (read-only mode, a declined or impossible confirmation)."""
