"""Small file helpers: atomic writes and safe, collision-free file names."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def safe_name(key: str, suffix: str) -> str:
    """A readable, filesystem-safe file name that two different keys never share."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:48] or "x"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:16]}{suffix}"


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_header(header: object, kind: str, format_version: int, field: str, expected: str) -> None:
    """Raise ValueError unless ``header`` is ours: right kind, format version, and owner field."""
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise ValueError(f"not a {kind} file")
    if header.get("format") != format_version:
        raise ValueError(f"format {header.get('format')!r}, expected {format_version}")
    if header.get(field) != expected:
        raise ValueError(f"holds {field} {header.get(field)!r}")
