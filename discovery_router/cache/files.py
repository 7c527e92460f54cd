"""Small file helpers: safe, collision-free file names and the header every cache file carries."""

from __future__ import annotations

import hashlib
import re


def safe_name(key: str, suffix: str) -> str:
    """A readable, filesystem-safe file name that two different keys never share."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:48] or "x"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:16]}{suffix}"


def check_header(header: object, kind: str, format_version: int, field: str, expected: str) -> None:
    """Raise ValueError unless ``header`` is ours: right kind, format version, and owner field."""
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise ValueError(f"not a {kind} file")
    if header.get("format") != format_version:
        raise ValueError(f"format {header.get('format')!r}, expected {format_version}")
    if header.get(field) != expected:
        raise ValueError(f"holds {field} {header.get(field)!r}")
