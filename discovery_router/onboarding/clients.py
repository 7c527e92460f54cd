"""Where each MCP client keeps its servers, and the shape it writes them in.

Every path is derived from an :class:`Environment` (home directory, platform and
environment variables), so tests and dry runs never look at the real user's files.

Documented locations (user scope first, then project files in the current directory):

==============  ==========================================================================
claude-desktop  ``claude_desktop_config.json`` in ``~/Library/Application Support/Claude``
                (macOS), ``%APPDATA%\\Claude`` (Windows) or ``$XDG_CONFIG_HOME/Claude`` (Linux);
                ``{"mcpServers": {...}}`` with command/args/env.
claude-code     ``~/.claude.json`` (or ``$CLAUDE_CONFIG_DIR/.claude.json``): top-level
                ``mcpServers`` (user scope) and ``projects.<path>.mcpServers`` (local scope);
                ``.mcp.json`` in a project. Entries carry ``"type": "stdio"|"http"|"sse"``.
cursor          ``~/.cursor/mcp.json`` and a project's ``.cursor/mcp.json``; ``mcpServers``.
vscode          the user profile's ``mcp.json`` (``Code/User`` beside ``settings.json``), the
                older ``settings.json`` key ``"mcp": {"servers": ...}``, and a project's
                ``.vscode/mcp.json``: top-level ``servers`` and ``inputs``; JSON with comments.
windsurf        ``~/.codeium/windsurf/mcp_config.json``; ``mcpServers``, remote entries use
                ``serverUrl``, ``disabled`` switches one off.
==============  ==========================================================================
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discovery_router.errors import ConfigError
from discovery_router.config.jsonc import strip_jsonc


@dataclass(frozen=True)
class Environment:
    """The user's home, platform and environment: everything a client path depends on."""

    home: Path
    platform: str = sys.platform
    environ: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    @classmethod
    def current(cls) -> Environment:
        return cls(home=Path.home(), platform=sys.platform, environ=dict(os.environ), cwd=Path.cwd())

    @property
    def is_windows(self) -> bool:
        return self.platform.startswith("win")

    @property
    def is_mac(self) -> bool:
        return self.platform == "darwin"

    def _dir(self, variable: str, default: Path) -> Path:
        value = self.environ.get(variable)
        return Path(value) if value and Path(value).is_absolute() else default

    def appdata(self) -> Path:
        return self._dir("APPDATA", self.home / "AppData" / "Roaming")

    def local_appdata(self) -> Path:
        return self._dir("LOCALAPPDATA", self.home / "AppData" / "Local")

    def xdg_config(self) -> Path:
        return self._dir("XDG_CONFIG_HOME", self.home / ".config")

    def app_config_dir(self) -> Path:
        """Where desktop apps keep per-user settings on this platform."""
        if self.is_mac:
            return self.home / "Library" / "Application Support"
        if self.is_windows:
            return self.appdata()
        return self.xdg_config()

    def display(self, path: Path) -> str:
        """``path`` with the home directory shown as ``~``."""
        try:
            return str(Path("~") / path.relative_to(self.home))
        except ValueError:
            return str(path)


@dataclass(frozen=True)
class Source:
    """One file a client reads servers from."""

    client: str
    path: Path
    scope: str  # "user", "project" or "settings"
    project: Path | None = None  # the folder ${workspaceFolder} and relative commands refer to


@dataclass(frozen=True)
class ServerMap:
    """One ``{name: entry}`` object inside a client file, and where it sits."""

    source: Source
    keys: tuple[str, ...]
    entries: dict[str, Any]
    project: Path | None
    inputs: tuple[dict[str, Any], ...] = ()

    @property
    def label(self) -> str:
        where = ".".join(self.keys[:-1]) if len(self.keys) > 1 else ""
        return f"{self.source.client}:{self.source.path}" + (f" ({where})" if where else "")


@dataclass(frozen=True)
class ClientFormat:
    """One client: its files and how it wants the router's own entry written."""

    name: str
    title: str
    sources: Callable[[Environment], list[Source]]
    install_path: Callable[[Environment], Path] | None = None
    servers_key: str = "mcpServers"
    writes_type: bool = False  # entries carry "type": "stdio"

    def router_entry(self, command: str, args: list[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "stdio"} if self.writes_type else {}
        entry.update(command=command, args=args)
        return entry


def _first_existing(paths: list[Path]) -> Path:
    return next((p for p in paths if p.exists()), paths[0])


# -- Claude Desktop ----------------------------------------------------------


def _claude_desktop_paths(env: Environment) -> list[Path]:
    paths = [env.app_config_dir() / "Claude" / "claude_desktop_config.json"]
    if env.is_windows:  # the Microsoft Store (MSIX) build keeps its files in a virtualised folder
        packages = env.local_appdata() / "Packages"
        if packages.is_dir():
            for package in sorted(packages.glob("Claude_*")):
                paths.append(package / "LocalCache" / "Roaming" / "Claude" / "claude_desktop_config.json")
    return paths


def _claude_desktop(env: Environment) -> list[Source]:
    return [Source("claude-desktop", p, "user") for p in _claude_desktop_paths(env)]


# -- Claude Code -------------------------------------------------------------


def _claude_code_user(env: Environment) -> Path:
    custom = env.environ.get("CLAUDE_CONFIG_DIR")
    if custom:
        return Path(custom).expanduser() / ".claude.json"
    return env.home / ".claude.json"


def _claude_code(env: Environment) -> list[Source]:
    sources = [Source("claude-code", _claude_code_user(env), "user")]
    if env.cwd is not None:
        sources.append(Source("claude-code", env.cwd / ".mcp.json", "project", env.cwd))
    return sources


# -- Cursor ------------------------------------------------------------------


def _cursor(env: Environment) -> list[Source]:
    sources = [Source("cursor", env.home / ".cursor" / "mcp.json", "user")]
    if env.cwd is not None and env.cwd != env.home:
        sources.append(Source("cursor", env.cwd / ".cursor" / "mcp.json", "project", env.cwd))
    return sources


# -- VS Code -----------------------------------------------------------------


def _vscode_user_dirs(env: Environment) -> list[Path]:
    base = env.app_config_dir()
    return [base / "Code" / "User", base / "Code - Insiders" / "User"]


def _vscode(env: Environment) -> list[Source]:
    sources: list[Source] = []
    for folder in _vscode_user_dirs(env):
        sources.append(Source("vscode", folder / "mcp.json", "user"))
        sources.append(Source("vscode", folder / "settings.json", "settings"))
    if env.cwd is not None:
        sources.append(Source("vscode", env.cwd / ".vscode" / "mcp.json", "project", env.cwd))
    return sources


# -- Windsurf ----------------------------------------------------------------


def _windsurf(env: Environment) -> list[Source]:
    return [Source("windsurf", env.home / ".codeium" / "windsurf" / "mcp_config.json", "user")]


CLIENTS: dict[str, ClientFormat] = {
    "claude-desktop": ClientFormat(
        "claude-desktop",
        "Claude Desktop",
        _claude_desktop,
        install_path=lambda env: _first_existing(_claude_desktop_paths(env)),
    ),
    "claude-code": ClientFormat(
        "claude-code",
        "Claude Code",
        _claude_code,
        install_path=_claude_code_user,
        writes_type=True,
    ),
    "cursor": ClientFormat(
        "cursor",
        "Cursor",
        _cursor,
        install_path=lambda env: env.home / ".cursor" / "mcp.json",
    ),
    "vscode": ClientFormat(
        "vscode",
        "VS Code",
        _vscode,
        install_path=lambda env: _vscode_user_dirs(env)[0] / "mcp.json",
        servers_key="servers",
        writes_type=True,
    ),
    "windsurf": ClientFormat("windsurf", "Windsurf", _windsurf),
}
INSTALLABLE = [name for name, client in CLIENTS.items() if client.install_path is not None]


# -- reading ------------------------------------------------------------------


def read_client_file(path: Path) -> tuple[dict[str, Any], bool]:
    """A client's JSON object and whether it had comments (which a rewrite will not keep)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    if not text.strip():
        return {}, False
    try:
        raw, commented = json.loads(text), False
    except json.JSONDecodeError:
        try:
            raw, commented = json.loads(strip_jsonc(text)), True
        except json.JSONDecodeError as exc:
            raise ConfigError(
                path, None, None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    if not isinstance(raw, dict):
        raise ConfigError(path, None, None, "the top level must be a JSON object")
    return raw, commented


def server_maps(raw: Mapping[str, Any], source: Source) -> list[ServerMap]:
    """Every servers object in a client file, in whichever shape that client writes."""
    inputs = (
        tuple(i for i in raw.get("inputs", []) if isinstance(i, dict)) if isinstance(raw.get("inputs"), list) else ()
    )
    found: list[ServerMap] = []
    for keys in (("mcpServers",), ("servers",)):
        value = raw.get(keys[0])
        if isinstance(value, dict):
            found.append(ServerMap(source, keys, value, source.project, inputs))
    mcp = raw.get("mcp")
    if isinstance(mcp, dict) and isinstance(mcp.get("servers"), dict):  # VS Code settings.json
        mcp_inputs = (
            tuple(i for i in mcp.get("inputs", []) if isinstance(i, dict))
            if isinstance(mcp.get("inputs"), list)
            else ()
        )
        found.append(ServerMap(source, ("mcp", "servers"), mcp["servers"], source.project, mcp_inputs))
    projects = raw.get("projects")
    if isinstance(projects, dict):  # Claude Code's per-project (local scope) servers
        for project, settings in projects.items():
            if isinstance(settings, dict) and isinstance(settings.get("mcpServers"), dict) and settings["mcpServers"]:
                found.append(
                    ServerMap(source, ("projects", project, "mcpServers"), settings["mcpServers"], Path(project))
                )
    return found


def file_source(path: Path) -> Source:
    """A file named on the command line: any of the shapes above."""
    path = path.expanduser()
    project = path.parent.parent if path.parent.name in (".vscode", ".cursor") else path.parent
    return Source("file", path, "file", project if path.name != ".claude.json" else None)
