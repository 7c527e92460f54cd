"""The router's search entry point: retrievers over one catalog, filtered and ranked."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from discovery_router.search.base import Hit, Retriever, ToolDoc
from discovery_router.search.bm25 import BM25Retriever


class SearchIndex:
    """An immutable index over a catalog snapshot; the router swaps in a new one on change."""

    def __init__(self, docs: Sequence[ToolDoc], retriever: Retriever | None = None) -> None:
        self.docs: tuple[ToolDoc, ...] = tuple(docs)
        self._retriever = retriever or BM25Retriever()
        self._retriever.build(self.docs)
        self._server_of = np.array([d.server for d in self.docs], dtype=object)
        self._exact = {key.casefold(): i for i, d in enumerate(self.docs) for key in (d.id, d.name)}

    def search(self, query: str, limit: int = 5, server: str | None = None) -> list[Hit]:
        if not self.docs or limit <= 0:
            return []
        scores = self._retriever.scores(query).astype(np.float64)
        exact = self._exact.get(query.strip().casefold())
        if exact is not None:
            scores[exact] = np.inf
        if server is not None:
            scores[self._server_of != server] = -np.inf
        candidates = np.flatnonzero(scores > 0)
        if candidates.size == 0:
            return []
        top = candidates[np.argsort(-scores[candidates], kind="stable")[:limit]]
        return [Hit(self.docs[i], float(scores[i])) for i in top]
