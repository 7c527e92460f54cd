"""The config as data: the router's settings and one entry per backend server, already validated.

No I/O and no fastmcp here: :mod:`discovery_router.config.loader` builds these
from a file, :mod:`discovery_router.upstreams.spec` turns a :class:`ServerConfig`
into a connection.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints
from pydantic.dataclasses import dataclass as pydantic_dataclass

from discovery_router.governance.policy import ServerPolicy
from discovery_router.governance.redact import Redactor

Transport = Literal["stdio", "http", "sse"]
MANAGE_SERVERS = ("off", "remote", "all")
"""The values of ``router.manage_servers``."""

IN_MEMORY_MAX = 100_000
"""Catalogs up to this many tools are searched in each replica's memory (which the issue measured at ~53 ms hybrid
at 100k); with a team database, larger ones in PostgreSQL. The default of ``router.database_search_from``."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return value


Seconds = Annotated[float, Field(ge=0)]
"""A duration setting: a number (an integer is fine), never negative."""
Count = Annotated[int, Field(ge=0)]
"""A count setting: an integer, never negative."""
Names = Annotated[tuple[Annotated[str, StringConstraints(pattern=r"\S")], ...], Field(strict=False)]
"""A list setting: non-empty strings (a JSON list becomes a tuple)."""
LogLevel = Annotated[str, AfterValidator(_log_level)]


def _manage_servers(value: str) -> str:
    if value not in MANAGE_SERVERS:
        raise ValueError(f"must be one of {', '.join(MANAGE_SERVERS)}")
    return value


ManageServers = Annotated[str, AfterValidator(_manage_servers)]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True))
class RouterSettings:
    """The router's own knobs; every one has a default so the section is optional.

    Validated when made (a pydantic dataclass, strict: ``true`` is not a number, and no value ever
    appears in an error); ``dataclasses.replace`` validates too.
    """

    connect_timeout: Seconds = 30.0
    """Seconds a server gets to start, initialize and list its tools."""
    call_timeout: Seconds = 120.0
    """Default seconds per forwarded call when a server sets no ``timeout``."""
    retry_initial: Seconds = 2.0
    """First delay before reconnecting a failed server; doubles up to ``retry_max``."""
    retry_max: Seconds = 60.0
    health_interval: Seconds = 30.0
    """Seconds between pings of connected servers (0 disables)."""
    refresh_interval: Seconds = 300.0
    """Seconds between re-listing each server's tools, for servers that never send list_changed (0 disables)."""
    search_limit: Count = 5
    max_search_limit: Count = 25
    summary_chars: Count = 96
    """Longest one-line summary shown per search hit."""
    step_limit: Count = 3
    """Most tools shown per step when a search is given the plan's steps (a 4-step plan: 12 lines)."""
    cache_dir: str | None = None
    """Where the index cache keeps tool lists and embeddings (default: the user cache dir; "none" disables)."""
    cache_poll_interval: Seconds = 2.0
    """Seconds between checks for a ``reindex`` run by another process (0 disables)."""
    database_url: str | None = Field(default=None, repr=False)
    """A PostgreSQL URL (``${VAR}`` allowed) shared by a team of replicas: catalog, embeddings, audit and change
    sequence live there (default: $DISCOVERY_ROUTER_DATABASE_URL; unset: this machine only, no database)."""
    database_search_from: Count = IN_MEMORY_MAX
    """With ``database_url`` set, catalogs of at least this many tools are searched in PostgreSQL, not in memory."""
    embedding_model: str | None = None
    """A local model path, or a model name; unset means the bundled all-MiniLM-L6-v2, "none" BM25 only."""
    log_level: LogLevel = "INFO"
    """How much the router logs to stderr while serving (``--verbose`` means DEBUG)."""
    # -- governance (README "Governance") --
    read_only: bool = False
    """Only tools annotated readOnlyHint: true (or listed in a server's tools.safe) are callable; per server: readOnly."""
    confirm_destructive: bool = False
    """Destructive tools need the user's confirmation through MCP elicitation; per server: confirmDestructive."""
    audit_log: str | None = None
    """The audit JSON Lines file (default: audit.jsonl in the user log dir; "none" disables)."""
    audit_max_bytes: Count = 5_000_000
    """Rotate the audit log when it would grow past this size (0: never rotate)."""
    audit_backups: Count = 3
    """Rotated audit files to keep (audit.jsonl.1 is the newest)."""
    manage_servers: ManageServers = "off"
    """Let the agent add and remove servers (add_server / remove_server / list_servers): "off", "remote"
    (http(s) URLs only) or "all" (stdio commands too)."""
    pinned: Names = ()
    """Tool ids or globs over ids listed directly in tools/list, beside the three meta-tools."""
    http_allowed_origins: Names = ()
    """Browser origins allowed besides loopback ones when serving over HTTP (e.g. "https://app.example.com")."""
    http_require_token: bool = False
    """Refuse to serve over HTTP without a bearer token even on a loopback address."""
    # -- serving over HTTP (README "Governance", HTTP access: stopping and limits) --
    shutdown_drain: Seconds = 10.0
    """Seconds calls in flight get to finish after SIGTERM/SIGINT before they are answered with an error."""
    http_max_sessions: Count = 1000
    """Live streamable-HTTP sessions at most; a new one beyond it is refused with 503 (0: no limit)."""
    http_session_idle_timeout: Seconds = 1800.0
    """Seconds a session with no request in flight and no open stream lives on (0: until DELETE)."""
    http_header_timeout: Seconds = 10.0
    """Seconds a connection gets to send a complete request head before it is closed (0: no limit)."""
    http_max_connections: Count = 500
    """Open HTTP connections at most; more are turned away with 503 (0, or more than the descriptor limit allows:
    the limit less 64, kept for upstream pipes and files)."""
    # -- several replicas behind a load balancer (README "Team deployment") --
    shutdown_delay: Seconds = 0.0
    """Seconds between SIGTERM and the drain over HTTP: ``/readyz`` already answers 503 but new calls are still
    served, so a load balancer stops sending before anything is refused (0: drain at once)."""
    state_key: str | None = dataclasses.field(default=None, repr=False)
    """The key ring sealing ``requestState`` (``${VAR}``/``${keyring:...}`` allowed; a secret, never shown):
    comma-separated, the first seals and all unseal. Unset: ``$DISCOVERY_ROUTER_STATE_KEY``, else a per-process key."""


@dataclass(frozen=True, repr=False)
class OAuthSettings:
    """A remote server's ``"auth": "oauth"`` with its optional ``oauth`` object.

    Everything is optional: servers with dynamic client registration need none of it; the rest
    need a pre-registered ``client_id`` (and maybe ``client_secret``) whose redirect URI is
    ``http://127.0.0.1:<callback_port>/callback``. ``repr`` is bare: the secret is a secret.
    """

    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    client_secret: str | None = None
    callback_port: int | None = None
    """The fixed port of ``login``'s local callback (default: any free port)."""

    def __repr__(self) -> str:
        return f"OAuthSettings(scopes={self.scopes!r}, client_id={self.client_id!r})"


@dataclass(frozen=True, repr=False)
class ServerConfig:
    """One backend server, with ``${VAR}`` already expanded.

    ``repr`` is deliberately bare: env, headers, args and url may hold secrets.
    """

    name: str
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    timeout: float | None = None
    description: str | None = None
    protocol: str = "auto"
    """Protocol era towards this server: "auto" (negotiate) or "legacy" (force the initialize handshake)."""
    policy: ServerPolicy = ServerPolicy()
    """Governance: tools allow/deny/safe, readOnly, confirmDestructive, auditArguments."""
    roots: tuple[str, ...] | None = None
    """The server's answer to ``roots/list`` (``file://`` URIs), set in its entry; None: ask the client."""
    oauth: OAuthSettings | None = None
    """Set for ``"auth": "oauth"`` remote servers: tokens come from ``discovery-router login NAME``."""
    error: str | None = None
    """Why this entry could not be used (file, server and field named, never a value): the server is
    shown as failed and never started, while every other server serves."""

    def __repr__(self) -> str:
        return f"ServerConfig(name={self.name!r}, transport={self.transport!r})"


@dataclass(frozen=True)
class RouterConfig:
    """A whole config file: servers in file order, settings, and what to redact."""

    servers: dict[str, ServerConfig]
    settings: RouterSettings = RouterSettings()
    path: Path | None = None
    redactor: Redactor = field(default_factory=Redactor)

    @property
    def enabled_servers(self) -> dict[str, ServerConfig]:
        return {name: s for name, s in self.servers.items() if s.enabled}
