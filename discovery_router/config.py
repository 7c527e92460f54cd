"""Loading and validating the router's config file.

The file is the ``{"mcpServers": {...}}`` JSON that Claude Desktop, Cursor and
VS Code already use, plus an optional ``router`` object for our own settings.
Validation is hand-written rather than delegated to pydantic so that every
complaint names the file, the server and the field, and never echoes a value
(values may be secrets).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import platformdirs

from discovery_router.errors import ConfigError
from discovery_router.expand import MissingVariable, expand
from discovery_router.jsonc import strip_jsonc
from discovery_router.keyring_refs import KeyringError, expand_keyring, has_reference, placeholder_lookup
from discovery_router.policy import SERVER_POLICY_KEYS, ServerPolicy, parse_server_policy
from discovery_router.redact import Redactor

APP_NAME = "discovery-router"
CONFIG_ENV_VAR = "DISCOVERY_ROUTER_CONFIG"

Transport = Literal["stdio", "http", "sse"]

logger = logging.getLogger("discovery_router.config")
_STDIO_KEYS = {"command", "args", "env", "cwd", "envFile"}
_REMOTE_KEYS = {"url", "headers", "transport"}
_OTHER_CLIENTS_KEYS = {"autoApprove", "alwaysAllow"}
"""Approval lists other clients write; accepted and ignored (the router's ``tools`` policy decides instead)."""
_COMMON_KEYS = {"enabled", "disabled", "timeout", "type", "description", "protocol"}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRANSPORT_ALIASES: dict[str, Transport] = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamableHttp": "http",
    "sse": "sse",
    "local": "stdio",
}


class _EveryVariableSet(dict):
    """An environment where every variable is set, to check a file's shape without its secrets.

    It answers ``${keyring:...}`` references too (``keyring_lookup``), so a
    shape check never opens the OS keyring.
    """

    keyring_lookup = staticmethod(placeholder_lookup)

    def get(self, key: str, default: Any = None) -> str:  # type: ignore[override]
        return "set"


EVERY_VARIABLE_SET: Mapping[str, str] = _EveryVariableSet()


@dataclass(frozen=True)
class RouterSettings:
    """The router's own knobs; every one has a default so the section is optional."""

    connect_timeout: float = 30.0
    """Seconds a server gets to start, initialize and list its tools."""
    call_timeout: float = 120.0
    """Default seconds per forwarded call when a server sets no ``timeout``."""
    retry_initial: float = 2.0
    """First delay before reconnecting a failed server; doubles up to ``retry_max``."""
    retry_max: float = 60.0
    health_interval: float = 30.0
    """Seconds between pings of connected servers (0 disables)."""
    refresh_interval: float = 300.0
    """Seconds between re-listing each server's tools, for servers that never send list_changed (0 disables)."""
    search_limit: int = 5
    max_search_limit: int = 25
    summary_chars: int = 96
    """Longest one-line summary shown per search hit."""
    cache_dir: str | None = None
    """Where index_cache/ keeps tool lists and embeddings (default: the user cache dir; "none" disables)."""
    cache_poll_interval: float = 2.0
    """Seconds between checks for a ``reindex`` run by another process (0 disables)."""
    embedding_model: str | None = None
    """A local model path, or a model name; unset means the bundled all-MiniLM-L6-v2, "none" BM25 only."""
    log_level: str = "INFO"
    """How much the router logs to stderr while serving (``--verbose`` means DEBUG)."""
    # -- governance (README "Governance") --
    read_only: bool = False
    """Only tools annotated readOnlyHint: true (or listed in a server's tools.safe) are callable; per server: readOnly."""
    confirm_destructive: bool = False
    """Destructive tools need the user's confirmation through MCP elicitation; per server: confirmDestructive."""
    audit_log: str | None = None
    """The audit JSON Lines file (default: audit.jsonl in the user log dir; "none" disables)."""
    audit_max_bytes: int = 5_000_000
    """Rotate the audit log when it would grow past this size (0: never rotate)."""
    audit_backups: int = 3
    """Rotated audit files to keep (audit.jsonl.1 is the newest)."""
    pinned: tuple[str, ...] = ()
    """Tool ids or globs over ids listed directly in tools/list, beside the three meta-tools."""
    http_allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed besides loopback ones when serving over HTTP (e.g. "https://app.example.com")."""
    http_require_token: bool = False
    """Refuse to serve over HTTP without a bearer token even on a loopback address."""
    # -- serving over HTTP (README "Governance", HTTP access: stopping and limits) --
    shutdown_drain: float = 10.0
    """Seconds calls in flight get to finish after SIGTERM/SIGINT before they are answered with an error."""
    http_max_sessions: int = 1000
    """Live streamable-HTTP sessions at most; a new one beyond it is refused with 503 (0: no limit)."""
    http_session_idle_timeout: float = 1800.0
    """Seconds a session with no request in flight and no open stream lives on (0: until DELETE)."""
    http_header_timeout: float = 10.0
    """Seconds a connection gets to send a complete request head before it is closed (0: no limit)."""
    http_max_connections: int = 500
    """Open HTTP connections at most; more are turned away with 503 (0, or more than the descriptor limit allows:
    the limit less 64, kept for upstream pipes and files)."""


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
    error: str | None = None
    """Why this entry could not be used (file, server and field named, never a value): the server is
    shown as failed and never started, while every other server serves."""

    def __repr__(self) -> str:
        return f"ServerConfig(name={self.name!r}, transport={self.transport!r})"

    def to_transport(self) -> Any:
        """A fresh fastmcp client transport for one connection attempt."""
        from fastmcp.client.transports import SSETransport, StdioTransport, StreamableHttpTransport

        if self.transport == "stdio":
            assert self.command is not None
            return StdioTransport(
                command=resolve_command(self.command),
                args=list(self.args),
                env=dict(self.env) or None,
                cwd=self.cwd,
                keep_alive=False,
            )
        assert self.url is not None
        if self.transport == "sse":
            return SSETransport(self.url, headers=dict(self.headers))
        return StreamableHttpTransport(self.url, headers=dict(self.headers))


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


def infer_transport(url: str) -> Transport:
    """What the common clients infer: a URL path ending in ``/sse`` means SSE."""
    return "sse" if re.search(r"/sse/?$", urlparse(url).path) else "http"


def resolve_command(command: str) -> str:
    """Find a bare command on PATH, else beside this interpreter.

    Lets the example config say ``mcp-server-time`` and work when the router
    runs from a virtualenv that was never activated.
    """
    if os.sep in command or shutil.which(command):
        return command
    beside = Path(sys.executable).parent / command
    return str(beside) if beside.exists() else command


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.json"


def locate_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``$DISCOVERY_ROUTER_CONFIG``, else the user config dir."""
    if explicit:
        return Path(explicit).expanduser()
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return default_config_path()


def read_raw(path: Path) -> dict[str, Any]:
    """The file's JSON object, unexpanded (what ``add``/``remove`` edit)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, None, "file not found (create it with `discovery-router add`)") from None
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc.strerror}") from None
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        try:  # pasted from VS Code or Cursor: comments and trailing commas are fine
            raw = json.loads(strip_jsonc(text))
        except json.JSONDecodeError:
            raise ConfigError(path, None, None,
                              f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(path, None, None, "the top level must be a JSON object")
    return raw


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    missing_ok: bool = False,
) -> RouterConfig:
    """Locate, read, validate and expand a config file.

    ``missing_ok`` turns a missing file at the located path into an empty
    config, so ``serve`` and ``list`` work before the first ``add``.
    """
    located = locate_config(path)
    if missing_ok and not located.exists():
        return RouterConfig(servers={}, path=located)
    return parse_config(read_raw(located), path=located, environ=environ, strict=False)


OFF = "none"
"""The value that turns a path or model setting off: ``cache_dir``, ``embedding_model``, ``audit_log``."""


def turned_off(setting: str | None) -> bool:
    """Whether a path or model setting says ``"none"`` (any case, surrounding spaces ignored)."""
    return (setting or "").strip().casefold() == OFF


def servers_key(raw: Mapping[str, Any]) -> str:
    """The key a file keeps its servers under: ``mcpServers``, or VS Code's ``servers`` when only that is used."""
    return "servers" if "servers" in raw and "mcpServers" not in raw else "mcpServers"


def servers_of(raw: Mapping[str, Any]) -> Any:
    """The raw server entries of a config file's JSON (not validated)."""
    return raw.get(servers_key(raw), {})


def parse_config(
    raw: Mapping[str, Any],
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    strict: bool = True,
) -> RouterConfig:
    """Validate an already-parsed config object (the testable core of ``load_config``).

    ``strict`` raises on the first bad server entry (``add``, ``import`` and ``doctor`` validate
    with it); otherwise a bad entry becomes a server carrying its ``error``, so it alone fails.
    """
    environ = os.environ if environ is None else environ
    redactor = Redactor()
    unknown = set(raw) - {"mcpServers", "servers", "router", "$schema", "inputs"}
    if unknown:
        raise ConfigError(path, None, sorted(unknown)[0], "unknown top-level key (expected mcpServers and router)")
    servers_raw = servers_of(raw)
    if not isinstance(servers_raw, dict):
        raise ConfigError(path, None, "mcpServers", "must be an object mapping server names to entries")
    base_dir = path.parent if path else Path.cwd()
    servers: dict[str, ServerConfig] = {}
    for name, entry in servers_raw.items():
        try:
            servers[name] = _parse_server(name, entry, path, base_dir, environ, redactor)
        except ConfigError as exc:
            if strict or not SERVER_NAME.match(name) or "/" in name:
                raise  # no id can be built for it: the file itself must be fixed
            # One bad entry stops only its own server; the message goes to status and the log.
            logger.error("%s", exc)
            servers[name] = ServerConfig(name=name, transport="stdio", enabled=_entry_enabled(entry), error=str(exc))
    redactor.discard(*servers)
    settings = _parse_settings(raw.get("router", {}), path)
    return RouterConfig(servers=servers, settings=settings, path=path, redactor=redactor)


def _parse_settings(raw: Any, path: Path | None) -> RouterSettings:
    if not isinstance(raw, dict):
        raise ConfigError(path, None, "router", "must be an object")
    known = {f.name: f for f in fields(RouterSettings)}
    defaults = RouterSettings()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(path, None, f"router.{key}", f"unknown setting (known: {hint})")
        default = getattr(defaults, key)
        if isinstance(default, tuple):  # list settings: strings only
            if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
                raise ConfigError(path, None, f"router.{key}", "must be a list of non-empty strings")
            values[key] = tuple(value)
            continue
        expected = type(default) if default is not None else str  # optional settings are strings
        if expected is float and type(value) is int:
            value = float(value)
        nullable_and_null = value is None and default is None
        if not nullable_and_null and type(value) is not expected:  # exact type: True is not an int
            raise ConfigError(path, None, f"router.{key}", f"must be {_type_word(expected)}")
        if isinstance(value, (int, float)) and value < 0:
            raise ConfigError(path, None, f"router.{key}", "must not be negative")
        if key == "log_level" and value.upper() not in _LOG_LEVELS:
            raise ConfigError(path, None, "router.log_level", f"must be one of {', '.join(_LOG_LEVELS)}")
        values[key] = value
    return RouterSettings(**values)


def _entry_enabled(entry: Any) -> bool:
    """Whether a raw entry is switched on: ``enabled: false`` and other clients' ``disabled: true`` both turn it off."""
    if not isinstance(entry, dict):
        return True
    return entry.get("enabled", True) is not False and entry.get("disabled", False) is not True


def _parse_server(
    name: str,
    entry: Any,
    path: Path | None,
    base_dir: Path,
    environ: Mapping[str, str],
    redactor: Redactor,
) -> ServerConfig:
    def fail(field_name: str | None, message: str) -> ConfigError:
        return ConfigError(path, name, field_name, message)

    if not SERVER_NAME.match(name) or "/" in name:
        raise fail(None, "server names may use letters, digits, '_', '-' and '.', and must not contain '/'")
    if not isinstance(entry, dict):
        raise fail(None, "entry must be a JSON object")
    known = _STDIO_KEYS | _REMOTE_KEYS | _COMMON_KEYS | SERVER_POLICY_KEYS
    ignored = sorted(set(entry) & _OTHER_CLIENTS_KEYS)
    if ignored:
        logger.warning("%s: server %r: ignoring %s (another client's approval list; use the router's `tools` "
                       "allow/deny/safe instead)", path or "config", name, ", ".join(ignored))
    unknown = set(entry) - known - _OTHER_CLIENTS_KEYS
    if unknown:
        key = sorted(unknown)[0]
        near = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise fail(key, f"unknown field ({hint}stdio servers take command/args/env/envFile/cwd, "
                   "remote ones url/headers/transport; both take enabled/timeout/description/protocol "
                   "and tools/readOnly/confirmDestructive/auditArguments)")
    has_command, has_url = "command" in entry, "url" in entry
    if has_command and has_url:
        raise fail("url", "an entry has either `url` (remote) or `command` (stdio), not both")
    if not has_command and not has_url:
        raise fail(None, "needs `command` (a local stdio server) or `url` (a remote one)")
    enabled = _typed(entry, "enabled", bool, True, fail) and not _typed(entry, "disabled", bool, False, fail)
    timeout = entry.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise fail("timeout", "must be a positive number of seconds")
    description = _typed(entry, "description", str, None, fail)
    policy = parse_server_policy(entry, fail)
    protocol = _typed(entry, "protocol", str, "auto", fail)
    if protocol not in ("auto", "legacy"):
        raise fail("protocol", 'must be "auto" (negotiate) or "legacy" (force the initialize handshake)')

    def expanded(value: str, field_name: str, secret: bool) -> str:
        if not enabled:  # a switched-off server is never started: its ${VAR}s and keyring refs are not needed
            return value
        try:
            result, substituted = expand(value, environ)
        except MissingVariable as exc:
            raise fail(field_name, f"environment variable {exc.name} is not set "
                       f"(export it, or write ${{{exc.name}:-default}})") from None
        if has_reference(result):  # ${keyring:SERVICE/NAME}
            if not secret:
                raise fail(field_name, "${keyring:...} references work only in env and headers values")
            try:  # the real keyring, unless the environment supplies keyring values itself
                result, from_keyring = expand_keyring(result, getattr(environ, "keyring_lookup", None))
            except KeyringError as exc:
                raise fail(field_name, str(exc)) from None
            substituted = [*substituted, *from_keyring]
        if secret:
            redactor.add(result)
        redactor.add(*substituted)
        return result

    declared = entry.get("transport", entry.get("type"))
    if declared is not None and declared not in _TRANSPORT_ALIASES:
        raise fail("transport", "must be one of stdio, http, streamable-http, sse")
    transport = _TRANSPORT_ALIASES.get(declared) if declared else None

    if has_command:
        if set(entry) & {"url", "headers"}:
            raise fail(sorted(set(entry) & {"headers"})[0], "only remote (url) entries take headers")
        if transport not in (None, "stdio"):
            raise fail("transport", "a command entry is a stdio server")
        command = entry["command"]
        if not isinstance(command, str) or not command.strip():
            raise fail("command", "must be a non-empty string")
        args = _string_list(entry.get("args", []), "args", fail)
        env = _string_map(entry.get("env", {}), "env", fail)
        env_file = _typed(entry, "envFile", str, None, fail)
        if env_file and enabled:
            env = {**_read_env_file(base_dir / Path(expanded(env_file, "envFile", secret=False)).expanduser(),
                                    fail), **env}  # an explicit env entry wins, as in VS Code
        cwd = _typed(entry, "cwd", str, None, fail)
        return ServerConfig(
            name=name,
            transport="stdio",
            command=expanded(command, "command", secret=False),
            args=tuple(expanded(a, f"args[{i}]", secret=False) for i, a in enumerate(args)),
            env={k: expanded(v, f"env.{k}", secret=True) for k, v in env.items()},
            cwd=str((base_dir / Path(expanded(cwd, "cwd", secret=False)).expanduser()).resolve()) if cwd else None,
            enabled=enabled,
            timeout=float(timeout) if timeout is not None else None,
            description=description,
            protocol=protocol,
            policy=policy,
        )

    if set(entry) & {"args", "env", "cwd"}:
        raise fail(sorted(set(entry) & {"args", "env", "cwd"})[0], "only stdio (command) entries take args/env/cwd")
    url = entry["url"]
    if not isinstance(url, str):
        raise fail("url", "must be a string")
    url = expanded(url, "url", secret=False)
    if not re.match(r"^https?://[^/\s]+", url):
        raise fail("url", "must start with http:// or https:// and name a host")
    headers = _string_map(entry.get("headers", {}), "headers", fail)
    if transport is None:
        transport = infer_transport(url)
    if transport == "stdio":
        raise fail("transport", "a url entry is http, streamable-http or sse")
    return ServerConfig(
        name=name,
        transport=transport,
        url=url,
        headers={k: expanded(v, f"headers.{k}", secret=True) for k, v in headers.items()},
        enabled=enabled,
        timeout=float(timeout) if timeout is not None else None,
        description=description,
        protocol=protocol,
        policy=policy,
    )


def _read_env_file(path: Path, fail: Callable[[str | None, str], ConfigError]) -> dict[str, str]:
    """VS Code's ``envFile``: ``KEY=VALUE`` lines, ``#`` comments, optional quotes. Values are never echoed."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise fail("envFile", f"cannot read {path}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise fail("envFile", f"{path} line {number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _type_word(expected: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(expected, expected.__name__)


def _typed(entry: Mapping[str, Any], key: str, expected: type, default: Any, fail: Any) -> Any:
    value = entry.get(key, default)
    if value is not None and not isinstance(value, expected):
        raise fail(key, f"must be {_type_word(expected)}")
    return value


def _string_list(value: Any, key: str, fail: Any) -> list[str]:
    if not isinstance(value, list):
        raise fail(key, "must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise fail(f"{key}[{i}]", "must be a string")
    return value


def _string_map(value: Any, key: str, fail: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail(key, "must be an object of string values")
    for k, v in value.items():
        if not isinstance(v, str):
            raise fail(f"{key}.{k}", "must be a string")
    return value
