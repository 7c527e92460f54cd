"""The cache folder and what lives in it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from discovery_router.cache.embeddings import EmbedderLike, EmbedResult, EmbeddingStore
from discovery_router.files import atomic_write
from discovery_router.cache.tools import ToolStore
from discovery_router.paths import default_cache_dir

#: Bumped whenever a file's layout changes; older and newer files are rebuilt.
FORMAT_VERSION = 1


class IndexCache:
    """Tool lists per server and embeddings per model, under ``directory/v<FORMAT_VERSION>/``."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, max_embeddings: int = 250_000) -> None:
        self.root = Path(directory) if directory is not None else default_cache_dir()
        base = self.root / f"v{FORMAT_VERSION}"
        self.tools = ToolStore(base / "tools", FORMAT_VERSION)
        self.embeddings = EmbeddingStore(base / "embeddings", FORMAT_VERSION, max_entries=max_embeddings)

    def load_tools(self, server: str) -> list[dict[str, Any]] | None:
        """The tools ``server`` listed last time, or None (never cached, or unusable)."""
        return self.tools.load(server)

    def save_tools(self, server: str, tools: Iterable[Any]) -> None:
        """Remember ``server``'s tool list (dicts or MCP ``Tool`` objects; tool fields only)."""
        self.tools.save(server, tools)

    def forget_tools(self, server: str) -> None:
        self.tools.forget(server)

    @property
    def generation_file(self) -> Path:
        return self.root / f"v{FORMAT_VERSION}" / "generation"

    def generation(self) -> int:
        """Changes whenever :meth:`bump_generation` runs: running routers poll it to pick up a reindex."""
        try:
            return self.generation_file.stat().st_mtime_ns
        except OSError:
            return 0

    def bump_generation(self) -> None:
        atomic_write(self.generation_file, lambda handle: handle.write(str(time.time_ns()).encode()))

    def get_or_embed(self, embedder: EmbedderLike, texts: Sequence[str]) -> EmbedResult:
        """Vectors of ``texts`` for ``embedder.model_id``; ``.encoded`` says how many were computed."""
        return self.embeddings.get_or_embed(embedder, texts)
