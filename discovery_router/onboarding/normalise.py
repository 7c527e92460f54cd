"""One client's server entry in the router's own format, with a note of everything changed or dropped."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from discovery_router.config.loader import SERVER_NAME, EVERY_VARIABLE_SET, infer_transport, parse_config
from discovery_router.errors import ConfigError
from discovery_router.onboarding.clients import Environment

_KEPT = ("command", "args", "env", "cwd", "url", "headers", "description")
_TRANSPORTS = {"http": "http", "streamable-http": "http", "streamableHttp": "http", "sse": "sse"}
_WHY_DROPPED = {
    "envFile": "its variables are not read; set them in the environment and reference them as ${VAR}",
    "timeout": "clients disagree on its unit; set `timeout` (seconds per call) yourself if needed",
}
_VARIABLE = re.compile(r"\$\{(env|input):([^}]+)\}|\$\{(workspaceFolder|workspaceRoot|userHome|pathSeparator|/)\}")


@dataclass
class Normalised:
    """The converted entry, or the reason it cannot be imported."""

    name: str
    entry: dict[str, Any]
    converted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    error: str | None = None


def safe_name(name: str) -> str:
    """A server name the router accepts: letters, digits, '_', '-', '.'; no '/'."""
    if SERVER_NAME.match(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")
    return cleaned or "server"


def env_var_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()
    return name if name and not name[0].isdigit() else f"V_{name}"


def normalise(name: str, raw: Any, env: Environment, project: Path | None = None) -> Normalised:
    """Convert ``raw`` (any client's entry) to the router's format and validate its shape."""
    result = Normalised(safe_name(name), {})
    if not isinstance(raw, dict):
        result.error = "entry is not a JSON object"
        return result
    entry: dict[str, Any] = {}
    url = raw.get("url")
    for alias in ("serverUrl", "httpUrl"):
        if alias in raw:
            if url is None:
                url = raw[alias]
                result.converted.append(f"{alias} -> url")
            else:
                result.dropped.append(alias)
    if "command" in raw:
        for key in ("command", "args", "env", "cwd"):
            if key in raw:
                entry[key] = raw[key]
    elif url is not None:
        entry["url"] = url
        if "headers" in raw:
            entry["headers"] = raw["headers"]
    if "description" in raw:
        entry["description"] = raw["description"]

    declared = raw.get("transport", raw.get("type"))
    if isinstance(declared, str) and declared in _TRANSPORTS and "url" in entry and isinstance(entry["url"], str):
        transport = _TRANSPORTS[declared]
        if transport != infer_transport(entry["url"]):
            entry["transport"] = transport
            result.converted.append(f"{'transport' if 'transport' in raw else 'type'}: {declared} -> transport")
    elif declared not in (None, "stdio") and not (declared in _TRANSPORTS and "url" in entry):
        result.dropped.append(f"type={declared}")

    if raw.get("disabled") is True or raw.get("enabled") is False:
        entry["enabled"] = False
        if "disabled" in raw:
            result.converted.append("disabled -> enabled: false")

    handled = {*_KEPT, "serverUrl", "httpUrl", "type", "transport", "disabled", "enabled"}
    if "command" in raw:
        handled -= {"url", "headers"}
    else:
        handled -= {"args", "env", "cwd"}
    for key in raw:
        if key not in handled and key not in result.dropped:
            result.dropped.append(f"{key} ({_WHY_DROPPED[key]})" if key in _WHY_DROPPED else key)

    inputs_seen: list[str] = []
    entry = _convert_variables(entry, env, project, result, inputs_seen)
    if project is not None and "command" in entry and "cwd" not in entry and _relative_command(entry):
        entry["cwd"] = str(project)
        result.converted.append("cwd set to the project folder (the command is relative)")
    result.entry = entry
    try:
        parse_config({"mcpServers": {result.name: entry}}, path=None, environ=EVERY_VARIABLE_SET)
    except ConfigError as exc:
        result.error = exc.message if exc.field is None else f"{exc.field}: {exc.message}"
    return result


def _relative_command(entry: dict[str, Any]) -> bool:
    command = entry.get("command")
    return isinstance(command, str) and command.startswith(("./", "../", ".\\", "..\\"))


def _convert_variables(
    value: Any, env: Environment, project: Path | None, result: Normalised, inputs_seen: list[str]
) -> Any:
    if isinstance(value, dict):
        return {k: _convert_variables(v, env, project, result, inputs_seen) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert_variables(v, env, project, result, inputs_seen) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        kind, ref, builtin = match.groups()
        if kind == "env":
            note = "${env:NAME} -> ${NAME}"
            if note not in result.converted:
                result.converted.append(note)
            return "${" + ref + "}"
        if kind == "input":
            var = env_var_name(ref)
            if ref not in inputs_seen:
                inputs_seen.append(ref)
                result.converted.append(f"${{input:{ref}}} (a prompt in the client) -> ${{{var}}}: export {var}")
            return "${" + var + "}"
        if builtin in ("workspaceFolder", "workspaceRoot"):
            if project is None:
                return match.group(0)
            result.converted.append(f"${{{builtin}}} -> {project}")
            return str(project)
        if builtin == "userHome":
            return str(env.home)
        return "\\" if env.is_windows else "/"

    converted = _VARIABLE.sub(replace, value)
    if re.search(r"\$\{(workspaceFolder|workspaceRoot)\}", converted):
        note = "${workspaceFolder} has no meaning outside a project: replace it with a path"
        if note not in result.converted:
            result.converted.append(note)
    return converted


def identity(entry: dict[str, Any]) -> str:
    """What makes two entries the same server: how it is started or reached, not its name or switches."""
    if "command" in entry:
        key = {
            "command": _command_key(entry.get("command")),
            "args": entry.get("args", []),
            "env": entry.get("env", {}),
            "cwd": entry.get("cwd"),
        }
    else:
        url = entry.get("url", "")
        declared = entry.get("transport", entry.get("type"))
        transport = _TRANSPORTS.get(declared) if isinstance(declared, str) else None
        key = {
            "url": url.rstrip("/") if isinstance(url, str) else url,
            "headers": entry.get("headers", {}),
            "transport": transport or (infer_transport(url) if isinstance(url, str) else None),
        }
    return json.dumps(key, sort_keys=True)


def _command_key(command: Any) -> Any:
    """``/usr/bin/npx`` and ``npx`` start the same thing often enough; ``npx.cmd`` too."""
    if not isinstance(command, str):
        return command
    stem = PurePath(command.replace("\\", "/")).name
    for suffix in (".exe", ".cmd", ".bat"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def is_router_entry(entry: Any) -> bool:
    """The router's own entry (``discovery-router ...`` or ``python -m discovery_router``), never imported."""
    if not isinstance(entry, dict):
        return False
    tokens = [entry.get("command")] + list(entry.get("args") or [])
    tokens = [t for t in tokens if isinstance(t, str)]
    for i, token in enumerate(tokens):
        if _command_key(token) in ("discovery-router", "discovery_router"):
            return True
        if token == "-m" and i + 1 < len(tokens) and str(tokens[i + 1]).split(".")[0] == "discovery_router":
            return True
    return False
