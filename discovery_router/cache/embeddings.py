"""Embedding vectors keyed by (model id, sha256 of the embedded text), one ``.npz`` per model.

Keying on the text's hash rather than on the server or tool name is what
makes the store shareable: an unchanged tool hits whatever router embedded
it, a changed description misses, and a tool moved between configs still hits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from discovery_router.cache.files import check_header, safe_name
from discovery_router.files import atomic_write

log = logging.getLogger(__name__)


class EmbedderLike(Protocol):
    @property
    def model_id(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedResult:
    matrix: np.ndarray  # (len(texts), dim) float32, row i for texts[i]
    encoded: int  # texts the embedder had to encode
    cached: int  # texts found in the store


class VectorSource(Protocol):
    """What the hybrid index embeds through: the on-disk :class:`~discovery_router.cache.IndexCache`, or the
    team database's vectors (:class:`discovery_router.team.replica.SharedEmbeddings`)."""

    @property
    def root(self) -> Path | None:
        """The cache folder on this machine (derived model files go beside it), or None."""
        ...

    def get_or_embed(self, embedder: EmbedderLike, texts: Sequence[str]) -> EmbedResult: ...


def text_key(text: str) -> str:
    """The key a vector is stored under, on disk and in the team database: sha256 of the embedded text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingStore:
    KIND = "discovery-router/embeddings"

    def __init__(self, directory: Path, format_version: int, max_entries: int = 250_000) -> None:
        self.directory = directory
        self.format_version = format_version
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[dict[str, int], np.ndarray]] = {}
        self._stamps: dict[str, int] = {}
        self._refreshing: dict[str, set[str]] = {}
        """Per model, the keys encoded since :meth:`refresh`: older stored vectors are ignored, not deleted."""

    def path(self, model_id: str) -> Path:
        return self.directory / safe_name(model_id, ".npz")

    # -- file format ----------------------------------------------------------------

    def _read(self, model_id: str) -> tuple[dict[str, int], np.ndarray] | None:
        path = self.path(model_id)
        try:
            with np.load(path, allow_pickle=False) as data:
                check_header(json.loads(str(data["meta"])), self.KIND, self.format_version, "model_id", model_id)
                keys = data["keys"]
                vectors = data["vectors"]
            if vectors.dtype != np.float32 or vectors.ndim != 2 or keys.shape != (vectors.shape[0],):
                raise ValueError("keys and vectors do not match")
            index = {key: i for i, key in enumerate(keys.astype(str).tolist())}
            return index, vectors
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("embedding cache %s is unusable (%s); it will be rebuilt", path, exc)
            return None

    def _write(self, model_id: str, index: dict[str, int], vectors: np.ndarray) -> None:
        keys = np.array(sorted(index, key=index.__getitem__), dtype="<U64")
        meta = json.dumps({"kind": self.KIND, "format": self.format_version, "model_id": model_id})
        atomic_write(
            self.path(model_id),
            lambda handle: np.savez(
                handle, meta=np.array(meta), keys=keys, vectors=np.ascontiguousarray(vectors, dtype=np.float32)
            ),
        )

    # -- API ------------------------------------------------------------------------

    def _stamp(self, model_id: str) -> int:
        try:
            return self.path(model_id).stat().st_mtime_ns
        except OSError:
            return 0

    def lookup(self, model_id: str) -> tuple[dict[str, int], np.ndarray]:
        """The stored vectors, re-read when another process (e.g. ``reindex``) rewrote the file."""
        with self._lock:
            stamp = self._stamp(model_id)
            state = self._memory.get(model_id)
            if state is None or self._stamps.get(model_id) != stamp:
                state = self._read(model_id) or ({}, np.zeros((0, 0), dtype=np.float32))
                self._memory[model_id], self._stamps[model_id] = state, stamp
            fresh = self._refreshing.get(model_id)
            if fresh is not None:
                state = ({key: row for key, row in state[0].items() if key in fresh}, state[1])
            return state

    def refresh(self, model_id: str) -> None:
        """Re-encode every text of ``model_id`` from now on (``reindex --force``), without deleting anything.

        The stored file stays in place until new vectors replace its rows in one
        atomic write, so a run killed midway leaves the old vectors usable.
        """
        with self._lock:
            self._refreshing[model_id] = set()

    def forget(self, model_id: str) -> None:
        """Drop every stored vector of ``model_id`` (``reindex --force``)."""
        with self._lock:
            self._memory.pop(model_id, None)
            self._stamps.pop(model_id, None)
            self.path(model_id).unlink(missing_ok=True)

    def get_or_embed(self, embedder: EmbedderLike, texts: Sequence[str]) -> EmbedResult:
        """Vectors for ``texts`` in order, encoding (in one call) only those not stored yet."""
        model_id = embedder.model_id
        keys = [text_key(t) for t in texts]
        index, vectors = self.lookup(model_id)
        missing: dict[str, int] = {}
        for position, key in enumerate(keys):
            if key not in index and key not in missing:
                missing[key] = position
        fresh = embedder.encode([texts[p] for p in missing.values()]) if missing else None
        if fresh is not None:
            fresh = np.asarray(fresh, dtype=np.float32)
            index, vectors = self._add(model_id, list(missing), fresh, keep=set(keys))
        dim = vectors.shape[1] if vectors.size else (fresh.shape[1] if fresh is not None else 0)
        matrix = np.empty((len(texts), dim), dtype=np.float32)
        if texts:
            matrix[:] = vectors[[index[k] for k in keys]]
        return EmbedResult(matrix, encoded=len(missing), cached=len(texts) - len(missing))

    def _add(
        self, model_id: str, new_keys: list[str], new_vectors: np.ndarray, keep: set[str]
    ) -> tuple[dict[str, int], np.ndarray]:
        with self._lock:
            # Merge with what is on disk now, if another router wrote it since we last read or wrote it.
            index, vectors = self._memory.get(model_id) or ({}, np.zeros((0, 0), dtype=np.float32))
            changed = self._stamp(model_id) != self._stamps.get(model_id)
            on_disk = self._read(model_id) if changed else None
            if on_disk is not None and on_disk[1].shape[1:] == new_vectors.shape[1:]:
                extra = [k for k in on_disk[0] if k not in index]
                if extra:
                    index, vectors = self._append(index, vectors, extra, on_disk[1][[on_disk[0][k] for k in extra]])
            if vectors.size and vectors.shape[1] != new_vectors.shape[1]:
                index, vectors = {}, np.zeros((0, 0), dtype=np.float32)  # the model changed shape
            fresh = self._refreshing.get(model_id)
            if fresh is not None:
                stale = [i for i, k in enumerate(new_keys) if k in index]
                if stale:  # replace re-encoded rows in place (a copy: callers may hold the old array)
                    vectors = vectors.copy()
                    for i in stale:
                        vectors[index[new_keys[i]]] = new_vectors[i]
                fresh.update(new_keys)
            index, vectors = self._append(index, vectors, new_keys, new_vectors)
            if len(index) > self.max_entries:
                index, vectors = self._trim(index, vectors, keep)
            try:
                self._write(model_id, index, vectors)
            except OSError as exc:
                log.warning("cannot write embedding cache %s (%s)", self.path(model_id), exc)
            self._memory[model_id], self._stamps[model_id] = (index, vectors), self._stamp(model_id)
            return index, vectors

    @staticmethod
    def _append(
        index: dict[str, int], vectors: np.ndarray, keys: list[str], rows: np.ndarray
    ) -> tuple[dict[str, int], np.ndarray]:
        index = dict(index)
        todo = [i for i, k in enumerate(keys) if k not in index]
        base = len(index)
        for offset, i in enumerate(todo):
            index[keys[i]] = base + offset
        vectors = rows[todo] if not vectors.size else np.concatenate([vectors, rows[todo]])
        return index, np.ascontiguousarray(vectors, dtype=np.float32)

    def _trim(self, index: dict[str, int], vectors: np.ndarray, keep: set[str]) -> tuple[dict[str, int], np.ndarray]:
        """Drop the oldest entries not needed now, down to ``max_entries``."""
        order = sorted(index, key=index.__getitem__)
        drop = len(index) - self.max_entries
        survivors = [k for k in order if k in keep or (drop := drop - 1) < 0]
        rows = vectors[[index[k] for k in survivors]]
        return {k: i for i, k in enumerate(survivors)}, np.ascontiguousarray(rows)
