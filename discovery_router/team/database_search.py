"""The router's search past the in-memory range: answered by PostgreSQL, its tables a mirror of the served index.

Below ``router.database_search_from`` tools nothing changes (each replica ranks in memory). From there on,
:class:`DatabaseSearch` answers ``search`` and step search from :class:`~discovery_router.team.search.PostgresSearchIndex`
over the team pool. Before answering it brings the search tables in step with the index the router serves (the
same documents, the same vectors): the whole catalog with ``bulk_load`` the first time (or when the embedding
model changed), afterwards ``replace_server`` / ``delete_server`` for each server whose tools changed. Syncing at
search time, from the served index, means every hit is a tool of the catalog the router resolves it in.

The tables hold one catalog per database: replicas sharing a database must serve the same tools (the same
config and policy), which the team's shared catalog already assumes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import numpy as np
import psycopg

from discovery_router.errors import SharedStateError
from discovery_router.search import SearchIndex
from discovery_router.search.base import Hit, ToolDoc
from discovery_router.team.search import PostgresSearchIndex
from discovery_router.team.store import SharedStore

logger = logging.getLogger(__name__)

_Servers = dict[str, tuple[ToolDoc, ...]]


class DatabaseSearch:
    """Search in PostgreSQL over the index the router serves (which catalogs go here is the router's setting)."""

    def __init__(self, store: SharedStore, warn: Callable[[str, BaseException], None]) -> None:
        """``warn(what, exc)`` logs a database failure (with the URL's secrets scrubbed)."""
        self._warn = warn
        self._store = store
        self._index: PostgresSearchIndex | None = None
        self._synced_from: tuple[SearchIndex, bool] | None = None
        """The in-memory index the tables were last made equal to, and whether it was hybrid then."""
        self._servers: _Servers = {}
        """Per server, the documents in the tables."""
        self._model: str | None = None
        """The model of the vectors in the tables (None: BM25 only, or nothing loaded yet)."""
        self._loaded = False
        self._lock = asyncio.Lock()

    async def search(self, index: SearchIndex, query: str, limit: int, server: str | None) -> list[Hit] | None:
        """:meth:`SearchIndex.search` over ``index``'s catalog, answered by PostgreSQL; None if it cannot answer."""
        try:
            return await (await self._synced(index)).search(query, limit, server)
        except (psycopg.Error, SharedStateError) as exc:
            self._failed(exc)
            return None

    async def search_steps(
        self, index: SearchIndex, task: str, steps: Sequence[str], per_step: int, server: str | None
    ) -> list[list[Hit]] | None:
        """:meth:`SearchIndex.search_steps` over ``index``'s catalog, answered by PostgreSQL; None if it cannot."""
        try:
            return await (await self._synced(index)).search_steps(task, steps, per_step, server)
        except (psycopg.Error, SharedStateError) as exc:
            self._failed(exc)
            return None

    def _failed(self, exc: BaseException) -> None:
        """The database could not answer: the caller ranks in memory (the served index is always there)."""
        self._warn("search failed; searching in memory", exc)

    async def _synced(self, index: SearchIndex) -> PostgresSearchIndex:
        """The database's search, its tables first made to hold ``index``'s documents and vectors."""
        async with self._lock:
            if self._index is None or self._index.pool is not self._store.pool:  # first use, or after a restart
                self._index = PostgresSearchIndex(self._store.pool, fusion=index.fusion)
            if self._synced_from != (index, index.hybrid):
                self._synced_from = None
                try:
                    await self._sync(self._index, index)
                except BaseException:
                    self._loaded = False  # the tables' state is unknown: load them whole next time
                    raise
                self._synced_from = (index, index.hybrid)
            return self._index

    async def _sync(self, target: PostgresSearchIndex, index: SearchIndex) -> None:
        matrix, embedder = index.vectors, index.embedder
        if matrix is None or embedder is None:
            matrix, embedder = None, None
        model = embedder.model_id if embedder is not None else None
        servers = _by_server(index.docs)
        target.embedder = embedder
        if not self._loaded or model != self._model:
            report = await target.bulk_load(index.docs, matrix, model)
            logger.info(
                "search tables loaded: %d tools (%.1fs, vector index %.1fs)",
                report.tools,
                report.load_s,
                report.index_s,
            )
        else:
            rows = _rows_by_server(index.docs)
            for server in sorted(servers.keys() | self._servers.keys()):
                docs = servers.get(server, ())
                if docs == self._servers.get(server):
                    continue
                if not docs:
                    await target.delete_server(server)
                else:
                    vectors = matrix[rows[server]] if matrix is not None else None
                    await target.replace_server(server, docs, vectors)
        self._servers, self._model, self._loaded = servers, model, True


def _by_server(docs: Sequence[ToolDoc]) -> _Servers:
    grouped: dict[str, list[ToolDoc]] = {}
    for doc in docs:
        grouped.setdefault(doc.server, []).append(doc)
    return {server: tuple(group) for server, group in grouped.items()}


def _rows_by_server(docs: Sequence[ToolDoc]) -> dict[str, np.ndarray]:
    """Per server, the positions of its documents (to pick its rows of the vector matrix)."""
    rows: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        rows.setdefault(doc.server, []).append(i)
    return {server: np.array(positions, dtype=np.int64) for server, positions in rows.items()}
