"""Turning a BM25-only :class:`SearchIndex` hybrid without blocking requests.

The router builds ``SearchIndex(docs)`` (instant, BM25 only) and serves from
it at once; :class:`HybridLoader` loads the embedding model in a background
thread, embeds the catalog through the :class:`discovery_router.cache.IndexCache` (only
tools it has never seen) and attaches the vectors. When the catalog changes
the router builds a new index and calls :meth:`HybridLoader.upgrade` on it
(from a worker thread: it may encode a few changed tools).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from discovery_router.search.embedders.base import Embedder
from discovery_router.paths import OFF
from discovery_router.search.embedders.resolve import EmbedderUnavailableError, resolve_embedder
from discovery_router.search.index import SearchIndex

if TYPE_CHECKING:
    from discovery_router.cache.embeddings import VectorSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpgradeReport:
    model_id: str
    encoded: int
    cached: int
    seconds: float


def attach_from_cache(
    index: SearchIndex,
    embedder: Embedder,
    cache: VectorSource | None = None,
    previous: SearchIndex | None = None,
) -> UpgradeReport:
    """Embed ``index``'s documents (through ``cache`` when given) and attach them. Blocking.

    With ``previous`` (the index this one replaces) the vectors of documents it already had are copied from
    it: when one server's tools change, only that server's new texts go to the cache, the team database or
    the encoder, not the whole catalog's.
    """
    start = time.perf_counter()
    texts = index.embedding_texts()
    known = previous.vectors_by_text(embedder.model_id) if previous is not None else {}
    todo = [i for i, text in enumerate(texts) if text not in known]
    todo_texts = [texts[i] for i in todo]
    if not todo_texts:
        fresh, encoded = np.zeros((0, embedder.dimension), dtype=np.float32), 0
    elif cache is not None:
        result = cache.get_or_embed(embedder, todo_texts)
        fresh, encoded = result.matrix, result.encoded
    else:
        fresh, encoded = np.asarray(embedder.encode(todo_texts), dtype=np.float32), len(todo_texts)
    if known:
        matrix = np.empty((len(texts), embedder.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            if text in known:
                matrix[i] = known[text]
        if todo:
            matrix[todo] = fresh
    else:
        matrix = fresh
    cached = len(texts) - encoded
    index.attach_embeddings(embedder, matrix)
    report = UpgradeReport(embedder.model_id, encoded, cached, time.perf_counter() - start)
    log.info(
        "hybrid search ready: %d tools (%d embedded, %d from cache) in %.2fs",
        len(texts),
        encoded,
        cached,
        report.seconds,
    )
    return report


class HybridLoader:
    """Loads the embedder once in the background and upgrades indexes to hybrid.

    ``setting`` is the router's ``embedding_model`` (None for the default).
    If the model cannot be loaded, :attr:`error` says why and every index
    simply stays BM25-only.
    """

    def __init__(
        self,
        setting: str | None = None,
        cache: VectorSource | None = None,
        *,
        backend: str = "auto",
        on_ready: Callable[[SearchIndex, UpgradeReport], None] | None = None,
    ) -> None:
        self.setting, self.cache, self.backend = setting, cache, backend
        self.on_ready = on_ready
        self.embedder: Embedder | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._pending: SearchIndex | None = None
        self._thread: threading.Thread | None = None

    def start(self, index: SearchIndex | None = None) -> threading.Thread:
        """Begin loading the model (daemon thread); ``index`` is upgraded once it is loaded."""
        with self._lock:
            if index is not None:
                self._pending = index
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="embedder-loader", daemon=True)
                self._thread.start()
            return self._thread

    def _run(self) -> None:
        try:
            # derived model files go beside the index cache; with no cache, in a throwaway folder
            root = self.cache.root if self.cache is not None else None
            cache_dir = str(root) if root is not None else OFF
            self.embedder = resolve_embedder(self.setting, backend=self.backend, cache_dir=cache_dir)
        except EmbedderUnavailableError as exc:
            self.error = exc
            log.warning("semantic search disabled, BM25 only: %s", exc)
        finally:
            self._ready.set()
        with self._lock:
            index, self._pending = self._pending, None
        if index is not None:
            self.upgrade(index)

    def wait(self, timeout: float | None = None) -> bool:
        """True once loading finished (successfully or not)."""
        return self._ready.wait(timeout)

    def upgrade(self, index: SearchIndex, previous: SearchIndex | None = None) -> UpgradeReport | None:
        """Attach vectors to ``index`` if the model is loaded (reusing ``previous``'s); else remember it for later."""
        with self._lock:  # _run sets _ready before it takes the lock to pick up _pending
            if not self._ready.is_set():
                self._pending = index  # attached once the model has loaded
                return None
        if self.embedder is None:
            return None  # the model failed to load: search stays BM25-only
        try:
            report = attach_from_cache(index, self.embedder, self.cache, previous)
        except Exception:  # never take search down: stay lexical
            log.exception("could not attach embeddings; search stays BM25-only")
            return None
        if self.on_ready is not None:
            self.on_ready(index, report)
        return report
