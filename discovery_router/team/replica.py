"""One replica's side of the team database: publish what it lists, adopt what others listed, share vectors and audit.

The router talks to this through :class:`SharedState` only. Catalog changes flow both ways:

* a replica's own upstream lists new tools -> :meth:`SharedState.tools_listed` stores them (a new ``seq``,
  announced with NOTIFY) unless the team already has exactly that list;
* another replica's change -> NOTIFY wakes :meth:`SharedState.catch_up`, which reads every change after the
  last ``seq`` this replica applied (so a replica that missed NOTIFYs while down or disconnected catches up
  the same way) and hands each changed server's list to :meth:`Replica.adopt_shared_tools`.

A replica only publishes lists its *own* connection produced and that differ from the last list it saw
for that server, so two replicas whose upstream processes disagree (one upgraded, one not) settle instead of
echoing each other: the database holds the newest list anyone listed, each replica calls its own upstream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import mcp_types
import numpy as np
import psycopg
from psycopg import sql

from discovery_router.cache import IndexCache, clean_tool
from discovery_router.cache.embeddings import EmbedderLike, EmbedResult, text_key
from discovery_router.catalog import ToolEntry
from discovery_router.errors import SharedStateError
from discovery_router.governance.audit import AuditSink, parse_time, redacted
from discovery_router.governance.nonces import SpentNonces
from discovery_router.search.text import document_text
from discovery_router.team.database_search import DatabaseSearch
from discovery_router.team.migrate import connect
from discovery_router.team.store import CATALOG_CHANNEL, ServerTools, SharedStore, SharedTool
from discovery_router.team.url import redacted_url, scrub

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_INTERVAL = 30.0
"""Seconds between catch-ups from the sequence when no NOTIFY came (a backstop, not the path)."""
RECONNECT_MAX = 30.0
"""Longest wait between attempts to re-open the change feed."""
AUDIT_BACKLOG = 10_000
"""Audit records kept in memory while the database is unreachable; older ones are dropped (and said so)."""
STOP_GRACE = 5.0
"""Seconds :meth:`SharedState.stop` gives publishes and the audit trail's last write."""
FOLLOWER = "team-changes"
"""The name of the task that follows the change feed (the one task stop cancels at once)."""
BRIDGE_TIMEOUT = 60.0
"""Seconds a worker thread waits for a database answer before carrying on without it."""


class Replica(Protocol):
    """What the team state needs from the router."""

    def shared_sources(self) -> Mapping[str, str]:
        """Every enabled server's cache key (the team's name for it) -> its name here."""
        ...

    def adopt_shared_tools(self, server: str, tools: list[dict[str, Any]]) -> None:
        """Another replica listed ``server`` with these tools."""
        ...


class SharedState:
    """The team database as one replica uses it; made by :func:`discovery_router.team.open_shared_state`."""

    def __init__(
        self,
        url: str,
        redact: Callable[[str], str] = lambda text: text,
        *,
        replica_id: str | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.store = SharedStore(url)
        self.redact = redact
        self.replica_id = replica_id or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_interval = poll_interval
        self.seq = 0
        """The newest change this replica has applied."""
        self.listening = asyncio.Event()
        """Set while the change feed (LISTEN) is open."""
        self._seen: dict[str, list[dict[str, Any]]] = {}
        """Per source, the list this replica last published or adopted."""
        self._replica: Replica | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._publishing = asyncio.Lock()
        self._audit: list[tuple[datetime, str, dict[str, Any]]] = []
        self._audit_wake = asyncio.Event()
        self._audit_failed = False
        self._stopping = False

    @property
    def where(self) -> str:
        return redacted_url(self.store.url)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, replica: Replica) -> None:
        """Migrate, open the pool, adopt the shared catalog, then follow changes; raises SharedStateError."""
        self._replica, self._loop, self._stopping = replica, asyncio.get_running_loop(), False
        self._publishing, self.listening, self._audit_wake = asyncio.Lock(), asyncio.Event(), asyncio.Event()
        await self.store.open()
        try:
            try:
                self.seq = await self.store.latest_seq()  # before loading: a change meanwhile is caught up later
            except psycopg.Error as exc:
                raise self._error("cannot read the change sequence", exc) from None
            await self.load_new_servers()
        except BaseException:
            await self.store.close()  # a failed start leaves no pool behind (``async with`` will not call stop)
            raise
        self._spawn(self._follow_changes(), FOLLOWER)
        self._spawn(self._flush_audit_forever(), "team-audit")

    async def stop(self) -> None:
        """Stop following changes; let publishes and the audit trail's last records land (bounded), then close."""
        self._stopping = True
        self._audit_wake.set()
        for task in [t for t in self._tasks if t.get_name() == FOLLOWER]:
            task.cancel()
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._flush_audit()
        await self.store.close()
        self._loop = None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _error(self, what: str, exc: BaseException) -> SharedStateError:
        return SharedStateError(f"team database ({self.where}): {what}: {scrub(str(exc), self.store.url)}")

    def _say(self, what: str, exc: BaseException) -> None:
        logger.warning("team database (%s): %s: %s", self.where, what, self.redact(scrub(str(exc), self.store.url)))

    # -- the catalog --------------------------------------------------------------------

    async def load_new_servers(self) -> None:
        """Adopt the shared lists of servers this replica has not seen yet (at start; added by a config reload)."""
        assert self._replica is not None
        sources = self._replica.shared_sources()
        new = [source for source in sources if source not in self._seen]
        try:
            found = await self.store.servers(new) if new else {}
        except psycopg.Error as exc:
            raise self._error("cannot read the shared catalog", exc) from None
        for shared in found.values():
            self._adopt(shared, sources)

    def tools_listed(self, source: str, server: str, tools: Sequence[mcp_types.Tool], description: str = "") -> None:
        """This replica's own connection to ``server`` listed ``tools``: share them (in the background)."""
        listed = [clean_tool(t) for t in tools]
        if self._loop is None or self._seen.get(source) == listed:
            return
        self._seen[source] = listed
        shared = [
            SharedTool(clean, document_text(ToolEntry(server, tool).to_doc(description)))
            for clean, tool in zip(listed, tools)
        ]
        self._spawn(self._publish(source, server, shared), f"team-publish-{server}")

    async def _publish(self, source: str, server: str, tools: list[SharedTool]) -> None:
        async with self._publishing:  # in listing order
            try:
                seq = await self.store.publish(source, server, tools)
            except (psycopg.Error, SharedStateError) as exc:
                self._seen.pop(source, None)  # published again on the next listing
                self._say(f"cannot publish {server}'s tools", exc)
                return
            if seq is not None:
                logger.info("published %s's %d tools to the team (change %d)", server, len(tools), seq)

    async def catch_up(self) -> int:
        """Apply every change after :attr:`seq`; returns how many servers changed here."""
        assert self._replica is not None
        changes = await self.store.changes_since(self.seq)
        if not changes:
            return 0
        sources = self._replica.shared_sources()
        wanted = {source for _, source in changes} & sources.keys()
        shared = await self.store.servers(wanted) if wanted else {}
        self.seq = max(seq for seq, _ in changes)
        return sum(self._adopt(s, sources) for s in shared.values())

    def _adopt(self, shared: ServerTools, sources: Mapping[str, str]) -> bool:
        name = sources.get(shared.source)
        if name is None or self._seen.get(shared.source) == shared.tools:
            return False
        self._seen[shared.source] = shared.tools
        assert self._replica is not None
        self._replica.adopt_shared_tools(name, shared.tools)
        return True

    async def _follow_changes(self) -> None:
        """LISTEN for changes; on each NOTIFY (and every ``poll_interval``) catch up from the sequence."""
        delay = 0.5
        while True:
            try:
                async with await connect(self.store.url, autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CATALOG_CHANNEL)))
                    await self.catch_up()  # after LISTEN: a change between the two is not missed
                    self.listening.set()
                    delay = 0.5
                    while True:
                        async for _ in conn.notifies(timeout=self.poll_interval):
                            await self.catch_up()
                        await self.catch_up()
            except (psycopg.Error, SharedStateError) as exc:
                self.listening.clear()
                self._say(f"the change feed was lost; reconnecting in {delay:g}s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    # -- search -----------------------------------------------------------------------

    def database_search(self) -> DatabaseSearch:
        """Search in the team database (for catalogs past ``router.database_search_from``), over this state's pool."""
        return DatabaseSearch(self.store, self._say)

    # -- embeddings ---------------------------------------------------------------------

    def embeddings(self, local: IndexCache | None) -> SharedEmbeddings:
        """The vector source the indexer uses: the team's vectors, then ``local``'s, then the encoder."""
        return SharedEmbeddings(self, local)

    def run(self, coro: Coroutine[Any, Any, T], what: str) -> T | None:
        """Run ``coro`` on the router's loop from a worker thread; None (said once in the log) when it cannot."""
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop.is_closed() or running is loop:
            coro.close()
            return None
        try:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(BRIDGE_TIMEOUT)
        except (psycopg.Error, SharedStateError, concurrent.futures.TimeoutError, RuntimeError) as exc:
            self._say(what, exc)
            return None

    # -- audit --------------------------------------------------------------------------

    def nonces(self, fallback: SpentNonces) -> SharedNonces:
        """The spent-nonce store every replica shares (``fallback`` answers while the database cannot)."""
        return SharedNonces(self, fallback)

    def audit_sink(self, local: AuditSink | None) -> SharedAudit:
        return SharedAudit(self, local)

    def queue_audit(self, record: dict[str, Any]) -> None:
        """Keep an (already redacted) record for the next write to the shared trail."""
        when = parse_time(str(record.get("time", ""))) or datetime.now(UTC)
        self._audit.append((when, self.replica_id, record))
        if len(self._audit) > AUDIT_BACKLOG:
            del self._audit[: len(self._audit) - AUDIT_BACKLOG]
            logger.warning("team audit backlog full: oldest records dropped")
        self._audit_wake.set()

    async def _flush_audit_forever(self) -> None:
        while not self._stopping:
            await self._audit_wake.wait()
            self._audit_wake.clear()
            await self._flush_audit()

    async def _flush_audit(self) -> None:
        batch, self._audit = self._audit, []
        if not batch:
            return
        try:
            await self.store.add_audit(batch)
            self._audit_failed = False
        except (psycopg.Error, SharedStateError) as exc:
            self._audit[:0] = batch  # kept for the next attempt
            if not self._audit_failed:
                self._say("cannot write the audit trail (kept in memory, retried)", exc)
            self._audit_failed = True


class SharedNonces:
    """Spent confirmation nonces for the whole team (:class:`~discovery_router.governance.nonces.SpentNonces`).

    While the database cannot answer, the replica's own memory decides (said in the log): a confirmation
    still works, with the per-replica limit the README describes, rather than failing every destructive call.
    """

    SWEEP_EVERY = 200
    """Spends between deletions of expired rows."""

    def __init__(self, state: SharedState, fallback: SpentNonces) -> None:
        self._state, self._fallback, self._spends = state, fallback, 0

    async def spend(self, nonce: str, expires_at: float) -> bool:
        self._spends += 1
        try:
            return await self._state.store.spend_nonce(
                nonce, datetime.fromtimestamp(expires_at, UTC), sweep=self._spends % self.SWEEP_EVERY == 0
            )
        except (psycopg.Error, SharedStateError) as exc:
            self._state._say("cannot record a spent confirmation; this replica's memory decides", exc)
            return await self._fallback.spend(nonce, expires_at)


class SharedEmbeddings:
    """``get_or_embed`` over the team's vectors: what another replica embedded is never encoded again.

    Called from the indexer's worker threads; database calls run on the router's loop.
    """

    def __init__(self, state: SharedState, local: IndexCache | None) -> None:
        self._state, self._local = state, local

    @property
    def root(self) -> Path | None:
        return self._local.root if self._local is not None else None

    def get_or_embed(self, embedder: EmbedderLike, texts: Sequence[str]) -> EmbedResult:
        model_id = embedder.model_id
        keys = [text_key(t) for t in texts]
        text_of = dict(zip(keys, texts))
        found = self._state.run(self._state.store.vectors(model_id, list(text_of)), "cannot read vectors") or {}
        missing = [key for key in text_of if key not in found]
        encoded = 0
        if missing:
            wanted = [text_of[key] for key in missing]
            if self._local is not None:
                result = self._local.get_or_embed(embedder, wanted)
                fresh, encoded = result.matrix, result.encoded
            else:
                fresh, encoded = np.asarray(embedder.encode(wanted), dtype=np.float32), len(wanted)
            new = dict(zip(missing, np.asarray(fresh, dtype=np.float32)))
            found.update(new)
            self._state.run(self._state.store.add_vectors(model_id, new), "cannot store vectors")
        matrix = np.stack([found[key] for key in keys]).astype(np.float32) if keys else np.zeros((0, 0), np.float32)
        return EmbedResult(matrix, encoded=encoded, cached=len(texts) - encoded)


class SharedAudit:
    """An audit sink writing the local JSONL file (when there is one) and the team's one trail."""

    def __init__(self, state: SharedState, local: AuditSink | None) -> None:
        self._state, self.local = state, local

    @property
    def where(self) -> str:
        team = f"the team trail in {self._state.where}"
        return f"{self.local.where} and {team}" if self.local is not None else team

    def write(self, record: dict[str, Any]) -> None:
        self._state.queue_audit(redacted(record, self._state.redact))
        if self.local is not None:
            self.local.write(record)
