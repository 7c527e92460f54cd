"""The embedding contract: texts in, unit-length float32 rows out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalise each row (zero rows stay zero) as contiguous float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors, so a dot product is a cosine.

    ``model_id`` names the model *and* the way it is run (an int8 ONNX export
    does not give the same vectors as the fp32 original), so vectors cached
    under one id are never mixed with another's. ``source`` says where the
    model was found (``"path"``, ``"package"`` or ``"hub"``).
    """

    source: str = "path"
    _model_id: str
    _dimension: int

    @property
    def model_id(self) -> str:
        """A stable identifier of the vectors this embedder produces (set by each variant)."""
        return self._model_id

    @property
    def dimension(self) -> int:
        """Length of each vector (set by each variant from its model)."""
        return self._dimension

    @abstractmethod
    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """Raw vectors, one row per text (normalisation is done by :meth:`encode`)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` as an ``(n, dimension)`` float32 array with unit rows."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalize_rows(self._encode(texts))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, source={self.source!r})"
