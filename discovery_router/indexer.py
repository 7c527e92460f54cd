"""Keeping the catalog and its search index in step with the upstreams' tool lists.

Rebuilds run one at a time in a worker thread (tokenizing thousands of tools
must not stall the event loop) and coalesce: a burst of servers connecting at
start costs one or two builds, not one per server. Search uses
:attr:`Indexer.served`, a catalog and index swapped together, so it never
ranks a tool its catalog cannot resolve. Describe and call need no index:
:attr:`Indexer.catalog` is rebuilt on demand from the newest tool lists, so a
call never waits for an index rebuild (or for embedding). The dense side comes from :class:`HybridLoader`: BM25 answers until
the embedding model is loaded, then every new index is made hybrid before it
is swapped in (only tools never embedded before are encoded).

A rebuild is incremental where it costs: the new index takes the served one's BM25 term counts and
vectors for every tool whose document is unchanged, so one server's change tokenizes and embeds only that
server's new or changed tools (the postings, which depend on every document's length, are reassembled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from discovery_router.cache.embeddings import VectorSource
from discovery_router.catalog import Catalog, ToolEntry
from discovery_router.paths import turned_off
from discovery_router.search import SearchIndex
from discovery_router.search.hybrid import HybridLoader, UpgradeReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingCounts:
    encoded: int
    cached: int
    model_id: str | None


class Indexer:
    def __init__(
        self,
        snapshot: Callable[[], Sequence[ToolEntry]],
        *,
        server_descriptions: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        embedding_model: str | None = None,
        cache: VectorSource | None = None,
    ) -> None:
        """``server_descriptions``: each server's description for its search documents, or a function giving
        them at each rebuild (they may change when a server connects and says what it is)."""
        self._snapshot = snapshot
        if callable(server_descriptions):
            self._descriptions: Callable[[], Mapping[str, str]] = server_descriptions
        else:
            fixed = dict(server_descriptions or {})
            self._descriptions = lambda: fixed
        self.served: tuple[Catalog, SearchIndex] = (Catalog(), SearchIndex([]))
        """What search ranks with: a catalog and its index, always replaced together."""
        self._catalog = Catalog()
        self._catalog_at = 0
        self.last_upgrade: UpgradeReport | None = None
        self._encoded_total = 0
        self.hybrid: HybridLoader | None = None
        if not turned_off(embedding_model):  # "none": BM25 only
            self.hybrid = HybridLoader(embedding_model, cache, on_ready=self._upgraded)
        self._requested = 0
        self._built = 0
        self._wake: asyncio.Event | None = None
        self._done: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def index(self) -> SearchIndex:
        return self.served[1]

    @property
    def catalog(self) -> Catalog:
        """Every tool known now (rebuilt here when a change is pending; cheap next to an index build)."""
        if self._catalog_at != self._requested:
            self._catalog, self._catalog_at = Catalog(self._snapshot()), self._requested
        return self._catalog

    def start(self) -> None:
        if self._task is None:
            self._wake, self._done = asyncio.Event(), asyncio.Condition()
            self._task = asyncio.create_task(self._run(), name="indexer")
            if self.hybrid is not None:
                self.hybrid.start()
            if self._requested:
                self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request_rebuild(self) -> None:
        self._requested += 1
        if self._wake is not None:
            self._wake.set()

    async def up_to_date(self) -> None:
        """Wait until every change requested so far is in the served catalog and index."""
        target = self._requested
        if self._built >= target or self._done is None:
            return
        async with self._done:
            await self._done.wait_for(lambda: self._built >= target)

    async def wait_hybrid(self, timeout: float) -> bool:
        """For one-shot users (the CLI): wait until the served index is hybrid, or the model failed."""
        if self.hybrid is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not await asyncio.to_thread(self.hybrid.wait, timeout):
            return False
        while not self.index.hybrid and self.hybrid.error is None and loop.time() < deadline:
            await self.up_to_date()
            await asyncio.sleep(0.02)
        return self.index.hybrid

    async def _run(self) -> None:
        assert self._wake is not None and self._done is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            target = self._requested
            entries = list(self._snapshot())
            descriptions = dict(self._descriptions())
            try:
                catalog, index = await asyncio.to_thread(self._build, entries, descriptions)
            except Exception:  # noqa: BLE001 - keep serving the previous index
                logger.exception("rebuilding the search index failed; keeping the previous one")
            else:
                self.served = (catalog, index)
            async with self._done:
                self._built = target
                self._done.notify_all()

    def _build(self, entries: Sequence[ToolEntry], descriptions: Mapping[str, str]) -> tuple[Catalog, SearchIndex]:
        docs = [e.to_doc(descriptions.get(e.server, "")) for e in entries]
        if tuple(docs) == self.index.docs:  # e.g. a server reconnecting with the tools it had: keep the index
            return Catalog(entries), self.index
        index = SearchIndex(docs, previous=self.index)  # unchanged tools keep their BM25 term counts
        if self.hybrid is not None:
            # hybrid now if the model is loaded (unchanged tools keep the served index's vectors); else later
            self.hybrid.upgrade(index, previous=self.index)
        return Catalog(entries), index

    def _upgraded(self, _index: SearchIndex, report: UpgradeReport) -> None:
        self.last_upgrade = report
        self._encoded_total += report.encoded

    @property
    def embedding_counts(self) -> EmbeddingCounts:
        """Tools encoded by this process so far, and how many of the served index came from the cache."""
        last = self.last_upgrade
        if last is None:
            return EmbeddingCounts(0, 0, None)
        size = last.encoded + last.cached
        return EmbeddingCounts(self._encoded_total, max(0, size - self._encoded_total), last.model_id)
