"""The audit log: one JSON line per tool call, append-only, size-rotated, secrets masked.

A plain file rather than a logging handler: every line is a complete JSON
object written with one ``write`` on an ``O_APPEND`` descriptor, so a
``serve`` process and a CLI ``call`` can share the file, and ``audit`` can
read it back without a parser for log formats.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from discovery_router.paths import AUDIT_ENV_VAR, default_audit_path, turned_off

OK, TOOL_ERROR, REFUSED, UPSTREAM_FAILURE = "ok", "tool error", "refused", "upstream failure"
INVALID, CANCELLED, ERROR = "invalid", "cancelled", "error"
"""Outcomes: the upstream answered; it answered with isError; policy or the user said no; the upstream
failed or was unreachable; the router rejected the request itself (unknown tool, bad arguments); the
client cancelled; a bug in the router."""


def audit_path(setting: str | None) -> Path | None:
    """The file ``router.audit_log`` names; None when it (or the environment variable) says ``"none"``."""
    chosen = setting or os.environ.get(AUDIT_ENV_VAR) or ""
    if turned_off(chosen):
        return None
    return Path(chosen).expanduser() if chosen else default_audit_path()


class AuditSink(Protocol):
    """Where audit records go: this file (:class:`AuditLog`), or it and the team's shared trail."""

    @property
    def where(self) -> str:
        """Named in a warning when a write fails."""
        ...

    def write(self, record: dict[str, Any]) -> None: ...


class AuditLog:
    """Appends redacted JSON lines to ``path``, rotating to ``path.1`` .. ``path.N`` past ``max_bytes``."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 5_000_000,
        backups: int = 3,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.path, self.max_bytes, self.backups, self._redact = path, max_bytes, backups, redact
        self._folder_made = False

    @property
    def where(self) -> str:
        return str(self.path)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; every string in it (keys too) goes through the redactor before JSON encoding."""
        # ASCII-only JSON: a lone surrogate or a line separator (U+2028, U+0085, ...) in a key becomes its
        # escape, so every record is exactly one line for any reader, ``str.splitlines`` included.
        data = (json.dumps(redacted(record, self._redact)) + "\n").encode("ascii")
        if not self._folder_made:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._folder_made = True
        self._rotate_if_full(len(data))
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the folder was removed meanwhile
            self._folder_made = False
            raise
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _rotate_if_full(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if not self.max_bytes or size == 0 or size + incoming <= self.max_bytes:
            return
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            older = backup_path(self.path, index)
            if older.exists():
                os.replace(older, backup_path(self.path, index + 1))
        os.replace(self.path, backup_path(self.path, 1))


def backup_path(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def redacted(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with every string in it (keys too) passed through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redacted(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v, redact) for v in value]
    return value


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- reading ------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    server: str | None = None
    limit: int | None = 50


def read_entries(path: Path, query: AuditQuery = AuditQuery()) -> list[dict[str, Any]]:
    """Matching records, oldest first, from the rotated backups and the live file; the newest ``limit``."""
    found = [record for record in _all_records(path) if _matches(record, query)]
    return found[-query.limit :] if query.limit else found


def _all_records(path: Path) -> Iterator[dict[str, Any]]:
    backups = sorted(path.parent.glob(f"{path.name}.*"), key=_backup_index, reverse=True)
    for file in [*[b for b in backups if _backup_index(b) > 0], path]:
        try:
            lines = file.read_text(encoding="utf-8", errors="replace").split("\n")
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write
            if isinstance(record, dict):
                yield record


def _backup_index(path: Path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _matches(record: dict[str, Any], query: AuditQuery) -> bool:
    if query.server is not None and record.get("server") != query.server:
        return False
    if query.since is not None:
        when = parse_time(str(record.get("time", "")))
        if when is None or when < query.since:
            return False
    return True


def parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``7d`` (ago) or an ISO date/time; raises ValueError with a usage hint."""
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    when = parse_time(text.strip())
    if when is None:
        raise ValueError(f"--since takes a duration like 30m, 2h or 7d, or an ISO date/time, not {text!r}")
    return when
