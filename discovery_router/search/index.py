"""The router's search entry point: retrievers over one catalog, fused, filtered and ranked.

A :class:`SearchIndex` answers at once with BM25 alone; the dense side can be
attached later (:meth:`SearchIndex.attach_embeddings`) from another thread,
after which the same object answers with the hybrid ranking. Attaching is one
attribute assignment, so a search running meanwhile sees either the old or the
new state, never a mix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from discovery_router.search.base import Hit, Retriever, ToolDoc
from discovery_router.search.bm25 import BM25Retriever
from discovery_router.search.dense import DenseVectors
from discovery_router.search.embedders.base import Embedder
from discovery_router.search.fusion import FusionConfig, fuse, server_pass
from discovery_router.search.text import embedding_text, split_steps, tokenize


class SearchIndex:
    """An index over a catalog snapshot; the router swaps in a new one when the catalog changes."""

    def __init__(
        self,
        docs: Sequence[ToolDoc],
        retriever: Retriever | None = None,
        *,
        fusion: FusionConfig | None = None,
        embedding_text_of: Callable[[ToolDoc], str] = embedding_text,
    ) -> None:
        self.docs: tuple[ToolDoc, ...] = tuple(docs)
        self.fusion = fusion or FusionConfig()
        self._retriever = retriever or BM25Retriever()
        self._retriever.build(self.docs)
        self._embedding_text_of = embedding_text_of
        self._dense: DenseVectors | None = None
        servers = sorted({d.server for d in self.docs})
        position = {s: i for i, s in enumerate(servers)}
        self._servers = servers
        self._server_ids = np.array([position[d.server] for d in self.docs], dtype=np.int64)
        keys = [(key.casefold(), i) for i, d in enumerate(self.docs) for key in (d.id, d.name)]
        seen = Counter(key for key, _ in keys)
        self._exact = {key: i for key, i in keys if seen[key] == 1}  # a bare name two servers share names neither

    # -- the dense side -------------------------------------------------------------

    def embedding_texts(self) -> list[str]:
        """The texts to embed, one per document in index order (what the cache keys on)."""
        return [self._embedding_text_of(d) for d in self.docs]

    def attach_embeddings(self, embedder: Embedder, matrix: np.ndarray) -> None:
        """Switch to hybrid search with ``matrix[i]`` the vector of ``docs[i]`` (thread-safe)."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if not self.docs:
            matrix = np.zeros((0, embedder.dimension), dtype=np.float32)
        if matrix.shape != (len(self.docs), embedder.dimension):
            raise ValueError(f"expected a {(len(self.docs), embedder.dimension)} matrix, got {matrix.shape}")
        self._dense = DenseVectors(embedder, matrix)

    @property
    def hybrid(self) -> bool:
        return self._dense is not None

    @property
    def embedder(self) -> Embedder | None:
        dense = self._dense
        return dense.embedder if dense is not None else None

    # -- search ---------------------------------------------------------------------

    def _scores(
        self, query: str, semantic: np.ndarray | None, allowed: np.ndarray | None
    ) -> np.ndarray:
        lexical = self._retriever.scores(query)
        if allowed is not None:
            # Normalise within the servers searched, not the whole catalog.
            lexical = np.where(allowed, lexical, 0.0)
            if semantic is not None:
                semantic = np.where(allowed, semantic, semantic[allowed].min() if allowed.any() else 0.0)
        fused = fuse(lexical, semantic, self.fusion)
        return server_pass(fused, self._server_ids, len(self._servers), self.fusion.server_weight)

    def _ranked(self, scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        mask = scores > 0
        if allowed is not None:
            mask &= allowed
        candidates = np.flatnonzero(mask)
        return candidates[np.argsort(-scores[candidates], kind="stable")]

    def search(self, query: str, limit: int = 5, server: str | None = None) -> list[Hit]:
        if not self.docs or limit <= 0 or not query.strip():
            return []
        dense = self._dense  # one read: a concurrent attach cannot change this search midway
        allowed = (self._server_ids == self._servers.index(server)) if server in self._servers else None
        if server is not None and allowed is None:
            return []
        steps: list[str] = []
        if self.fusion.split_steps and len(tokenize(query)) >= self.fusion.steps_min_tokens:
            steps = split_steps(query)
            if len(steps) == 1:
                steps = []
        semantic = dense.scores_many([query, *steps]) if dense is not None else [None] * (1 + len(steps))
        scores = self._scores(query, semantic[0], allowed)
        order = self._ranked(scores, allowed)
        if steps:
            rankings = [order] + [
                self._ranked(self._scores(step, vec, allowed), allowed) for step, vec in zip(steps, semantic[1:])
            ]
            order = self._interleave(rankings, limit + 1)
            scores = np.zeros(len(self.docs))
            scores[order] = np.linspace(1.0, 0.5, num=len(order)) if len(order) else 0
        exact = self._exact.get(query.strip().casefold())
        if exact is not None and (allowed is None or allowed[exact]):
            order = np.concatenate(([exact], order[order != exact]))
            scores = scores.copy()
            scores[exact] = max(float(scores.max()), 0.0) + 1.0
        top = order[:limit]
        return [Hit(self.docs[i], float(scores[i])) for i in top]

    @staticmethod
    def _interleave(rankings: list[np.ndarray], limit: int) -> np.ndarray:
        """Round-robin over rankings (whole query first, then each step), skipping repeats."""
        seen: set[int] = set()
        out: list[int] = []
        depth = max((len(r) for r in rankings), default=0)
        for level in range(depth):
            if len(out) >= limit:
                break
            for ranking in rankings:
                if level < len(ranking):
                    i = int(ranking[level])
                    if i not in seen:
                        seen.add(i)
                        out.append(i)
        return np.array(out, dtype=np.int64)
