"""Dense retrieval: cosine similarity between a query vector and precomputed tool vectors."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from discovery_router.search.embedders.base import Embedder


class QueryVectorCache:
    """A small LRU of query vectors per model: repeated queries (and the whole query
    of a multi-step request searched again) skip the encoder."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, embedder: Embedder, texts: Sequence[str]) -> list[np.ndarray]:
        model = embedder.model_id
        out: list[np.ndarray | None] = []
        with self._lock:
            for text in texts:
                vector = self._items.get((model, text))
                if vector is not None:
                    self._items.move_to_end((model, text))
                out.append(vector)
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:
            fresh = embedder.encode([texts[i] for i in missing])
            with self._lock:
                for i, vector in zip(missing, fresh):
                    out[i] = vector
                    self._items[(model, texts[i])] = vector
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return out  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


QUERY_VECTORS = QueryVectorCache()


@dataclass(frozen=True)
class DenseVectors:
    """An embedder and the unit vectors of a catalog, row ``i`` for document ``i``."""

    embedder: Embedder
    matrix: np.ndarray

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.dtype != np.float32:
            raise ValueError("matrix must be a 2-d float32 array")

    def scores_many(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Cosine similarity of every document to each query (queries encoded in one batch)."""
        return [self.matrix @ v for v in QUERY_VECTORS.encode(self.embedder, list(queries))]

    def scores(self, query: str) -> np.ndarray:
        """Cosine similarity of every document to ``query`` (in [-1, 1])."""
        return self.scores_many([query])[0]
