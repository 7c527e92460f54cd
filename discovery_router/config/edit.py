"""Editing the config file in place for ``add`` / ``remove``: every other entry keeps its content and order.

The raw JSON (with its ``${VAR}`` references unexpanded) is what we edit, so
secrets kept in the environment never get written into the file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from discovery_router.config.loader import EVERY_VARIABLE_SET, parse_config, read_raw, servers_key, servers_of
from discovery_router.errors import ConfigError
from discovery_router.files import atomic_write


def add_server(path: Path, name: str, entry: dict[str, Any], *, replace: bool = False) -> None:
    """Add (or with ``replace``, overwrite) one server entry, validating the result first."""
    add_servers(path, {name: entry}, replace=replace)


def add_servers(path: Path, entries: Mapping[str, dict[str, Any]], *, replace: bool = False) -> None:
    """Add server entries in one validated, atomic write (``add`` and ``import`` both use it)."""
    with locked(path):
        raw = read_raw(path) if path.exists() else {}
        servers = raw.setdefault(servers_key(raw), {})
        for name, entry in entries.items():
            if name in servers and not replace:
                raise ConfigError(path, name, None, "already exists (remove it first, or pass --replace)")
            servers[name] = entry
        parse_config(raw, path=path, environ=EVERY_VARIABLE_SET)
        write_raw(path, raw)


def remove_server(path: Path, name: str) -> None:
    with locked(path):
        raw = read_raw(path)
        servers = servers_of(raw)
        if name not in servers:
            known = ", ".join(servers) or "none"
            raise ConfigError(path, name, None, f"no such server (configured: {known})")
        del servers[name]
        write_raw(path, raw)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.NAME.lock`` beside the config file for one read-modify-write.

    Without it two concurrent ``add``s both read the old file and the second
    rename drops the first one's entry. The lock file (not the config, which is
    replaced by rename) is what every editor locks; it is left in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock")):  # flock on POSIX, msvcrt on Windows
        yield


def write_raw(path: Path, raw: Mapping[str, Any]) -> None:
    """Atomically replace the file (temp file + rename), keeping its permissions."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    text = json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), mode=mode)
