"""Atomic file replacement: the config editor, the installer and the index cache all write this way.

A reader (a running ``serve``, an MCP client reading its own config, another
``reindex``) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], *, mode: int | None = None) -> None:
    """Write through a temporary file in the same folder, fsync it, then ``os.replace`` it into place.

    ``mode`` sets the new file's permissions (default: the temporary file's, 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
