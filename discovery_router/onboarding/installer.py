"""``install`` / ``uninstall``: put the router's own entry into a client's config file, and take it out again.

The client's file is copied to ``<file>.discovery-router.bak`` before the first
change. ``--replace`` also removes the client's entries that the router now
serves (no client has a portable "disabled" flag), so the client stops starting
them twice; they stay in the backup, and ``uninstall`` puts them back.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discovery_router.config.loader import read_raw, servers_of
from discovery_router.files import atomic_write
from discovery_router.paths import APP_NAME
from discovery_router.config.edit import write_raw
from discovery_router.errors import ConfigError, RouterError
from discovery_router.onboarding.clients import (
    CLIENTS,
    ClientFormat,
    Environment,
    Source,
    read_client_file,
    server_maps,
)
from discovery_router.onboarding.normalise import identity, is_router_entry, normalise

BACKUP_SUFFIX = ".discovery-router.bak"
ROUTER_NAME = APP_NAME


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def router_command() -> tuple[str, list[str]]:
    """The absolute path of the ``discovery-router`` script this interpreter installed, else ``python -m``."""
    script = f"{APP_NAME}.exe" if sys.platform.startswith("win") else APP_NAME
    beside = Path(sys.executable).parent / script
    if beside.exists():
        return str(beside.absolute()), []
    found = shutil.which(APP_NAME)
    if found:
        return os.path.abspath(found), []
    return sys.executable, ["-m", "discovery_router"]


@dataclass
class InstallResult:
    client: str
    path: Path
    backup: Path | None
    command: str
    args: list[str]
    replaced: list[str] = field(default_factory=list)  # client entries the router now serves, removed
    still_direct: list[str] = field(default_factory=list)  # client entries the router does not serve
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "file": str(self.path),
            "backup": str(self.backup) if self.backup else None,
            "entry": ROUTER_NAME,
            "command": self.command,
            "args": self.args,
            "replaced": self.replaced,
            "still_direct": self.still_direct,
            "notes": self.notes,
            "dry_run": self.dry_run,
        }


@dataclass
class UninstallResult:
    client: str
    path: Path
    action: str  # "restored", "merged", "removed", "deleted"
    restored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "file": str(self.path),
            "action": self.action,
            "restored": self.restored,
            "notes": self.notes,
        }


def _client(name: str) -> ClientFormat:
    client = CLIENTS.get(name)
    if client is None or client.install_path is None:
        installable = ", ".join(n for n, c in CLIENTS.items() if c.install_path)
        raise RouterError(f"cannot install into {name!r} (supported: {installable})")
    return client


def _router_identities(router_config: Path) -> dict[str, str]:
    if not router_config.exists():
        return {}
    raw = read_raw(router_config)
    servers = servers_of(raw)
    return {identity(e): n for n, e in servers.items() if isinstance(e, dict)} if isinstance(servers, dict) else {}


def install(
    client_name: str,
    env: Environment,
    router_config: Path,
    *,
    replace: bool = False,
    dry_run: bool = False,
    command: tuple[str, list[str]] | None = None,
) -> InstallResult:
    client = _client(client_name)
    assert client.install_path is not None
    path = client.install_path(env)
    raw, commented = read_client_file(path) if path.exists() else ({}, False)
    servers = raw.setdefault(client.servers_key, {})
    if not isinstance(servers, dict):
        raise ConfigError(path, None, client.servers_key, "must be an object mapping server names to entries")
    if ROUTER_NAME in servers and not is_router_entry(servers[ROUTER_NAME]):
        raise ConfigError(path, ROUTER_NAME, None, "an entry of that name exists and is not the router; rename it")
    already = ROUTER_NAME in servers
    program, prefix = command or router_command()
    router_config = router_config.expanduser().absolute()
    result = InstallResult(
        client.name, path, None, program, [*prefix, "serve", "--config", str(router_config)], dry_run=dry_run
    )

    served = _router_identities(router_config)
    if not router_config.exists():
        result.notes.append(f"{router_config} does not exist yet: run `discovery-router import` to fill it")
    elif not served:
        result.notes.append(f"{router_config} has no servers yet: run `discovery-router import`")
    source = Source(client.name, path, "user")
    duplicates: list[str] = []
    for smap in server_maps(raw, source):
        container = _get(raw, smap.keys)
        for name, entry in list(container.items()):
            label = name if len(smap.keys) == 1 else f"{name} ({smap.keys[1]})"
            if is_router_entry(entry):
                if not (smap.keys == (client.servers_key,) and name == ROUTER_NAME):
                    result.notes.append(f"{label} also starts the router; remove it to avoid two router processes")
                continue
            ident = identity(normalise(name, entry, env, smap.project).entry)
            if ident in served:
                duplicates.append(label)
            if replace and ident in served:
                del container[name]
                result.replaced.append(label)
            else:
                result.still_direct.append(label)
    if replace and not result.replaced:
        result.notes.append("none of the client's entries match the router's servers; nothing taken out")
    if duplicates and not replace:
        result.notes.append(
            f"{', '.join(duplicates)}: started by the client and by the router; "
            "--replace takes them out of the client (the backup keeps them)"
        )
    if commented:
        result.notes.append(f"comments in {env.display(path)} are not kept (the backup has them)")

    servers[ROUTER_NAME] = client.router_entry(program, result.args)
    backup = backup_path(path)
    # A re-install keeps the backup of the file as it was before the first install.
    keep_backup = already and backup.exists()
    if path.exists():
        result.backup = backup
        if keep_backup:
            result.notes.append(f"kept the backup from the first install: {env.display(backup)}")
    if dry_run:
        return result
    if path.exists() and not keep_backup:
        shutil.copy2(path, backup)
    write_raw(path, raw)
    return result


def uninstall(client_name: str, env: Environment) -> UninstallResult:
    client = _client(client_name)
    assert client.install_path is not None
    path = client.install_path(env)
    backup = backup_path(path)
    if not path.exists() and not backup.exists():
        raise RouterError(f"{client.title} has no config file at {path}: nothing to uninstall")
    current, _ = read_client_file(path) if path.exists() else ({}, False)
    source = Source(client.name, path, "user")
    stripped = copy.deepcopy(current)
    removed = _strip_router(stripped, source)

    if not backup.exists():
        # The file did not exist before install: take our entry out, and the file if nothing else is left.
        result = UninstallResult(client.name, path, "removed")
        if removed == 0:
            raise RouterError(f"{path} has no discovery-router entry and no backup: nothing to uninstall")
        if all(v in ({}, None) for v in stripped.values()):
            path.unlink()
            result.action = "deleted"
        else:
            write_raw(path, stripped)
        return result

    original, _ = read_client_file(backup)
    original_stripped = copy.deepcopy(original)
    had_router = _strip_router(original_stripped, source) > 0  # the router was there before the first install
    merged = copy.deepcopy(stripped)
    restored = _restore(merged, original, source)
    if merged == original_stripped or not path.exists():
        if had_router:
            write_raw(path, original_stripped)
        else:
            _copy_atomically(backup, path)
        backup.unlink()
        return UninstallResult(client.name, path, "restored", restored)
    write_raw(path, merged)
    return UninstallResult(
        client.name,
        path,
        "merged",
        restored,
        notes=[
            f"{env.display(path)} changed since install: removed the router's entry and put back the entries "
            f"--replace took out; the original is still at {env.display(backup)}"
        ],
    )


def _strip_router(raw: dict[str, Any], source: Source) -> int:
    """Remove every entry that starts the router (in place); how many."""
    removed = 0
    for smap in server_maps(raw, source):
        container = _get(raw, smap.keys)
        for name in [n for n, e in container.items() if is_router_entry(e)]:
            del container[name]
            removed += 1
    return removed


def _get(raw: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    for key in keys:
        raw = raw[key]
    return raw


def _restore(current: dict[str, Any], original: dict[str, Any], source: Source) -> list[str]:
    """Put back every server of ``original`` missing from ``current`` (in place); their names."""
    restored: list[str] = []
    for smap in server_maps(original, source):
        target: Any = current
        for key in smap.keys:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        for name, entry in smap.entries.items():
            if name not in target and not is_router_entry(entry):
                target[name] = copy.deepcopy(entry)
                restored.append(name if len(smap.keys) == 1 else f"{name} ({smap.keys[1]})")
    return restored


def _copy_atomically(source: Path, target: Path) -> None:
    mode = source.stat().st_mode & 0o777
    atomic_write(target, lambda handle: handle.write(source.read_bytes()), mode=mode)
