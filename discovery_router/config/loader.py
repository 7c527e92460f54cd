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
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError


from discovery_router.errors import ConfigError, MissingVariableError, SecretError
from discovery_router.paths import CONFIG_ENV_VAR, default_config_path
from discovery_router.config.expand import expand
from discovery_router.team.url import passwords_in
from discovery_router.config.jsonc import strip_jsonc
from discovery_router.config.keyring import expand_keyring, has_reference, placeholder_lookup
from discovery_router.governance.policy import SERVER_POLICY_KEYS, parse_server_policy
from discovery_router.config.model import OAuthSettings, RouterConfig, RouterSettings, ServerConfig, Transport
from discovery_router.governance.redact import Redactor


logger = logging.getLogger(__name__)
_STDIO_KEYS = {"command", "args", "env", "cwd", "envFile"}
_REMOTE_KEYS = {"url", "headers", "transport", "auth", "oauth"}
_OTHER_CLIENTS_KEYS = {"autoApprove", "alwaysAllow"}
"""Approval lists other clients write; accepted and ignored (the router's ``tools`` policy decides instead)."""
_COMMON_KEYS = {"enabled", "disabled", "timeout", "type", "description", "protocol", "roots"}
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


def infer_transport(url: str) -> Transport:
    """What fastmcp's own clients infer from a URL (a path segment ``/sse`` means SSE); anything else is http."""
    from fastmcp.mcp_config import infer_transport_type_from_url

    try:
        return infer_transport_type_from_url(url)
    except ValueError:  # not an http(s) URL: the URL check reports it
        return "http"


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
            raise ConfigError(
                path, None, None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
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


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> RouterSettings:
    """Only the ``router`` section of a config file, expanded with the real environment (no server entry is
    read, so no server's secret is needed)."""
    raw = read_raw(path).get("router", {})
    return _parse_settings(
        _expand_secret_settings(raw, path, os.environ if environ is None else environ, Redactor()), path
    )


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
    settings = _parse_settings(_expand_secret_settings(raw.get("router", {}), path, environ, redactor), path)
    return RouterConfig(servers=servers, settings=settings, path=path, redactor=redactor)


SECRET_SETTINGS = ("state_key", "database_url")
"""``router`` settings that hold a secret: ``${VAR}`` and ``${keyring:...}`` are expanded, the value is masked
(a database URL's password on its own too, wherever it shows up without the rest of the URL)."""


def _expand_secret_settings(raw: Any, path: Path | None, environ: Mapping[str, str], redactor: Redactor) -> Any:
    """The ``router`` object with its secret settings expanded (and registered with the redactor)."""
    if not isinstance(raw, dict):
        return raw  # _parse_settings says what is wrong
    expanded = dict(raw)
    for key in SECRET_SETTINGS:
        value = raw.get(key)
        if not isinstance(value, str):
            continue  # absent, or the wrong type: pydantic's complaint, in our words, follows
        try:
            result, substituted = expand(value, environ)
        except MissingVariableError as exc:
            raise ConfigError(
                path,
                None,
                f"router.{key}",
                f"environment variable {exc.name} is not set (export it, or write ${{{exc.name}:-default}})",
            ) from None
        if has_reference(result):
            try:
                result, from_keyring = expand_keyring(result, getattr(environ, "keyring_lookup", None))
            except SecretError as exc:
                raise ConfigError(path, None, f"router.{key}", str(exc)) from None
            substituted = [*substituted, *from_keyring]
        redactor.add(result, *(part.strip() for part in result.split(",")), *substituted, *passwords_in(result))
        expanded[key] = result
    return expanded


def _parse_settings(raw: Any, path: Path | None) -> RouterSettings:
    """The ``router`` object as settings; pydantic validates, the complaint is said in our words."""
    if not isinstance(raw, dict):
        raise ConfigError(path, None, "router", "must be an object")
    try:
        return RouterSettings(**raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "router"
        raise ConfigError(path, None, f"router.{key}", _setting_problem(error, key)) from None


_SETTING_TYPE_WORDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
}


def _setting_problem(error: Any, key: str) -> str:
    """One pydantic error on a setting, as the rest of the loader says things (never with the value)."""
    kind = error["type"]
    if kind == "unexpected_keyword_argument":
        known = sorted(f.name for f in fields(RouterSettings))
        close = difflib.get_close_matches(key, known, n=1)
        return f"unknown setting{f' (did you mean {close[0]!r}?)' if close else ''} (known: {', '.join(known)})"
    if kind in ("tuple_type", "string_pattern_mismatch") or len(error["loc"]) > 1:
        return "must be a list of non-empty strings"
    if kind in _SETTING_TYPE_WORDS:
        return f"must be {_SETTING_TYPE_WORDS[kind]}"
    if kind in ("greater_than_equal", "greater_than"):
        return "must not be negative"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


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
        logger.warning(
            "%s: server %r: ignoring %s (another client's approval list; use the router's `tools` "
            "allow/deny/safe instead)",
            path or "config",
            name,
            ", ".join(ignored),
        )
    unknown = set(entry) - known - _OTHER_CLIENTS_KEYS
    if unknown:
        key = sorted(unknown)[0]
        near = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise fail(
            key,
            f"unknown field ({hint}stdio servers take command/args/env/envFile/cwd, "
            "remote ones url/headers/transport/auth/oauth; both take enabled/timeout/description/protocol/roots "
            "and tools/readOnly/confirmDestructive/auditArguments)",
        )
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
        except MissingVariableError as exc:
            raise fail(
                field_name, f"environment variable {exc.name} is not set (export it, or write ${{{exc.name}:-default}})"
            ) from None
        if has_reference(result):  # ${keyring:SERVICE/NAME}
            if not secret:
                raise fail(field_name, "${keyring:...} references work only in env and headers values")
            try:  # the real keyring, unless the environment supplies keyring values itself
                result, from_keyring = expand_keyring(result, getattr(environ, "keyring_lookup", None))
            except SecretError as exc:
                raise fail(field_name, str(exc)) from None
            substituted = [*substituted, *from_keyring]
        if secret:
            redactor.add(result)
        redactor.add(*substituted)
        return result

    roots = None
    if "roots" in entry:
        roots = tuple(
            _root_uri(expanded(root, f"roots[{i}]", secret=False), base_dir, f"roots[{i}]", fail)
            for i, root in enumerate(_string_list(entry["roots"], "roots", fail))
        )
    common: dict[str, Any] = {
        "name": name,
        "enabled": enabled,
        "timeout": float(timeout) if timeout is not None else None,
        "description": description,
        "protocol": protocol,
        "policy": policy,
        "roots": roots,
    }
    """What stdio and remote entries share, once."""

    declared = entry.get("transport", entry.get("type"))
    if declared is not None and declared not in _TRANSPORT_ALIASES:
        raise fail("transport", "must be one of stdio, http, streamable-http, sse")
    transport = _TRANSPORT_ALIASES.get(declared) if declared else None

    if has_command:
        if set(entry) & {"url", "headers", "auth", "oauth"}:
            raise fail(
                sorted(set(entry) & {"headers", "auth", "oauth"})[0],
                "only remote (url) entries take headers/auth/oauth",
            )
        if transport not in (None, "stdio"):
            raise fail("transport", "a command entry is a stdio server")
        command = entry["command"]
        if not isinstance(command, str) or not command.strip():
            raise fail("command", "must be a non-empty string")
        args = _string_list(entry.get("args", []), "args", fail)
        env = _string_map(entry.get("env", {}), "env", fail)
        env_file = _typed(entry, "envFile", str, None, fail)
        if env_file and enabled:
            env = {
                **_read_env_file(base_dir / Path(expanded(env_file, "envFile", secret=False)).expanduser(), fail),
                **env,
            }  # an explicit env entry wins, as in VS Code
        cwd = _typed(entry, "cwd", str, None, fail)
        return ServerConfig(
            transport="stdio",
            command=expanded(command, "command", secret=False),
            args=tuple(expanded(a, f"args[{i}]", secret=False) for i, a in enumerate(args)),
            env={k: expanded(v, f"env.{k}", secret=True) for k, v in env.items()},
            cwd=str((base_dir / Path(expanded(cwd, "cwd", secret=False)).expanduser()).resolve()) if cwd else None,
            **common,
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
    oauth = _parse_oauth(entry, fail, lambda value, key: expanded(value, key, secret=True))
    return ServerConfig(
        transport=transport,
        url=url,
        headers={k: expanded(v, f"headers.{k}", secret=True) for k, v in headers.items()},
        oauth=oauth,
        **common,
    )


_OAUTH_KEYS = {"scopes", "clientId", "clientSecret", "callbackPort"}


def _parse_oauth(entry: Mapping[str, Any], fail: Any, secret: Callable[[str, str], str]) -> OAuthSettings | None:
    """``"auth": "oauth"`` and its optional ``oauth`` object; ``clientSecret`` is expanded and redacted."""
    auth = entry.get("auth")
    if auth is None:
        if "oauth" in entry:
            raise fail("oauth", 'takes effect only with "auth": "oauth"')
        return None
    if auth != "oauth":
        raise fail("auth", 'must be "oauth" (for a static token use headers: {"Authorization": "Bearer ${TOKEN}"})')
    raw = entry.get("oauth", {})
    if not isinstance(raw, dict):
        raise fail("oauth", "must be an object (scopes, clientId, clientSecret, callbackPort)")
    unknown = set(raw) - _OAUTH_KEYS
    if unknown:
        key = sorted(unknown)[0]
        near = difflib.get_close_matches(key, sorted(_OAUTH_KEYS), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise fail(f"oauth.{key}", f"unknown field ({hint}oauth takes scopes, clientId, clientSecret, callbackPort)")
    scopes = _string_list(raw.get("scopes", []), "oauth.scopes", fail)
    client_id = raw.get("clientId")
    if client_id is not None and (not isinstance(client_id, str) or not client_id.strip()):
        raise fail("oauth.clientId", "must be a non-empty string")
    client_secret = raw.get("clientSecret")
    if client_secret is not None:
        if not isinstance(client_secret, str):
            raise fail("oauth.clientSecret", "must be a string (write ${VAR} or ${keyring:NAME})")
        if client_id is None:
            raise fail("oauth.clientSecret", "needs oauth.clientId (the client the secret belongs to)")
        client_secret = secret(client_secret, "oauth.clientSecret")
    port = raw.get("callbackPort")
    if port is not None and (type(port) is not int or not 1 <= port <= 65535):
        raise fail("oauth.callbackPort", "must be a port number (1-65535)")
    return OAuthSettings(scopes=tuple(scopes), client_id=client_id, client_secret=client_secret, callback_port=port)


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
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        expected, expected.__name__
    )


def _typed(entry: Mapping[str, Any], key: str, expected: type, default: Any, fail: Any) -> Any:
    value = entry.get(key, default)
    if value is not None and not isinstance(value, expected):
        raise fail(key, f"must be {_type_word(expected)}")
    return value


def _root_uri(root: str, base_dir: Path, key: str, fail: Any) -> str:
    """A ``roots`` item as the ``file://`` URI MCP roots are: a path (``~`` and relative to the
    config file allowed) or a ``file://`` URI as given."""
    if root.startswith("file://"):
        return root
    if "://" in root or not root.strip():
        raise fail(key, "must be a directory path or a file:// URI")
    return (base_dir / Path(root).expanduser()).resolve().as_uri()


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
