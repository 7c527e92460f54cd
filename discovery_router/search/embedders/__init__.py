"""Embedding backends: a small :class:`Embedder` contract and the ways to run a model.

- :mod:`.onnx`: int8 ONNX MiniLM via onnxruntime (default; no PyTorch)
- :mod:`.sentence_transformers`: any sentence-transformers model (PyTorch)
- :mod:`.resolve`: offline-first choice of model and backend

Heavy libraries are imported only when a model is loaded.
"""

from discovery_router.search.embedders.base import Embedder, normalize_rows
from discovery_router.search.embedders.resolve import (
    DEFAULT_MODEL,
    EmbedderUnavailableError,
    ModelLocation,
    load_embedder,
    locate_model,
    resolve_embedder,
)

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "EmbedderUnavailableError",
    "ModelLocation",
    "load_embedder",
    "locate_model",
    "normalize_rows",
    "resolve_embedder",
]
