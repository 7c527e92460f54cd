"""The router's exceptions: one tree, each message written for the person or model reading it.

::

    RouterError                      every error the router raises on purpose; str(exc) is the message
    ├── ConfigError                  a bad config file: file, server and field named, never a value
    │   └── MissingVariableError     a ${VAR} that is not set (the server is failed, the rest serve)
    ├── SecretError                  the OS keyring is missing or refuses (${keyring:...}, secret set)
    │   └── KeyringUnavailableError  no usable keyring backend on this machine
    ├── RequestError                 the caller asked for something that cannot be done as asked
    │   ├── UnknownToolError         no such tool id; the message suggests the closest
    │   ├── AmbiguousToolError       a bare name several servers have; the message lists the ids
    │   ├── UnknownServerError       a server filter naming no configured server
    │   └── InvalidArgumentsError    arguments refused before anything was sent
    ├── UpstreamError                the backend could not do it
    │   ├── UpstreamUnavailableError not connected (starting, failed, or just went away)
    │   ├── LoginRequiredError       an OAuth server with no valid tokens: run `discovery-router login NAME`
    │   └── UpstreamCallError        answered with a protocol error, or not in time
    │       └── WaitingCallNotHereError  a retry for a bridged ask reached a process not holding that call
    ├── PolicyRefusedError           governance said no (read-only, a declined confirmation)
    ├── EmbedderUnavailableError     the embedding model cannot be loaded (search falls back to BM25)
    └── SharedStateError             the team database (database_url) is unusable: driver, connection, extension

Catch :class:`RouterError` to handle them all; the MCP face turns each into a
tool error with its message, the CLI prints it and exits 1.
"""

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


class MissingVariableError(RouterError):
    """A ``${VAR}`` with no value and no default; ``name`` is the variable (never its value)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name} is not set")


class SecretError(RouterError):
    """The OS keyring could not give or store a secret."""


class KeyringUnavailableError(SecretError):
    """No usable keyring backend on this machine (a headless server, say)."""


class RequestError(RouterError):
    """The request cannot be done as asked; the message says what to ask instead."""


class UnknownToolError(RequestError):
    """No tool by that name; the message suggests the closest ids."""


class AmbiguousToolError(RequestError):
    """A bare tool name that several servers expose."""


class UnknownServerError(RequestError):
    """A ``server=`` filter or CLI argument naming no configured server."""


class InvalidArgumentsError(RequestError):
    """Arguments rejected by the tool's inputSchema before anything is forwarded."""


class UpstreamError(RouterError):
    """The backend server could not serve the request."""


class UpstreamUnavailableError(UpstreamError):
    """The tool's server is not connected (or just went away)."""


class LoginRequiredError(UpstreamError):
    """An ``"auth": "oauth"`` server has no usable tokens (never logged in, logged out, refresh refused).

    Only a person can fix it, in a browser, so the message names the command rather than retrying.
    """

    def __init__(self, server: str) -> None:
        self.server = server
        super().__init__(f"login required: run `discovery-router login {server}`")


class UpstreamCallError(UpstreamError):
    """The upstream answered the call with a protocol error or did not answer in time."""


class WaitingCallNotHereError(UpstreamCallError):
    """A 2026-era client's retry names a handshake-era upstream call this process does not hold.

    Such a call waits in the memory of the replica that started it (or was cancelled after waiting too long):
    the retry reached another replica, or the router restarted. Nothing is run again.
    """


class PolicyRefusedError(RouterError):
    """The config's governance refuses this call (read-only mode, a declined or impossible confirmation)."""


class EmbedderUnavailableError(RouterError):
    """The embedding model cannot be found or loaded; search keeps working on BM25 alone."""


class SharedStateError(RouterError):
    """The team database cannot be used; the message names what to do, never the password."""
