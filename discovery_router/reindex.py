"""``discovery-router reindex``: refresh tool lists and embeddings in the shared index cache.

It runs the ordinary :class:`Router` (so listing, caching and embedding are the
same code a server runs), diffs each server's tools against what the cache
held before, and bumps the cache generation so running servers re-list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from discovery_router.config.model import RouterConfig
from discovery_router.errors import RouterError, UnknownServerError
from discovery_router.router import Router, open_cache
from discovery_router.search.embedders.resolve import EmbedderUnavailableError, locate_model
from discovery_router.upstreams.status import UpstreamState, UpstreamStatus
from discovery_router.cache import clean_tool

Progress = Callable[[str, int, int], None]
"""``(phase, done, total)``: phase is "connecting" or "embedding" (total 0 when unknown)."""


@dataclass
class ReindexReport:
    statuses: list[UpstreamStatus]
    total: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    embedded: int = 0
    embedded_from_cache: int = 0
    model_id: str | None = None
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)


def _diff(before: list[dict] | None, after: list[dict]) -> tuple[int, int, int]:
    old = {t["name"]: json.dumps(t, sort_keys=True) for t in before or []}
    new = {t["name"]: json.dumps(t, sort_keys=True) for t in after}
    added = sum(1 for name in new if name not in old)
    changed = sum(1 for name in new if name in old and old[name] != new[name])
    removed = sum(1 for name in old if name not in new)
    return added, changed, removed


async def reindex(
    config: RouterConfig,
    *,
    server: str | None = None,
    force: bool = False,
    progress: Progress = lambda _phase, _done, _total: None,
    embed_timeout: float = 600.0,
) -> ReindexReport:
    started = time.perf_counter()
    if server is not None and server not in config.servers:
        raise UnknownServerError(f"Unknown server {server!r}. Servers: {', '.join(config.servers) or 'none'}.")
    servers = config.enabled_servers if server is None else {server: config.servers[server]}
    if open_cache(config.settings) is None:
        raise RouterError('the index cache is disabled (router.cache_dir is "none"): nothing to reindex')
    router = Router(servers, config.settings, redactor=config.redactor)
    cache = router.cache
    assert cache is not None
    before = {name: cache.load_tools(router.cache_key_of(name)) for name in servers}
    if force:
        # Tool lists are re-listed on every run anyway; --force only re-encodes embeddings. Nothing is
        # deleted: new vectors replace the stored ones in one atomic write (a killed run loses nothing).
        try:
            cache.embeddings.refresh(locate_model(config.settings.embedding_model).model_id)
        except EmbedderUnavailableError:
            pass

    report = ReindexReport(statuses=[])
    async with router:
        settled: list[str] = []
        progress("connecting", 0, len(servers))

        def one_more(name: str) -> None:
            settled.append(name)
            progress("connecting", len(settled), len(servers))

        await router.wait_ready(on_settled=one_more)
        progress("connecting", len(servers), len(servers))
        progress("embedding", 0, 0)
        await router.wait_hybrid(timeout=embed_timeout)
        report.statuses = router.status()
        for status in report.statuses:
            name = status.name
            if status.state is not UpstreamState.CONNECTED:
                report.failed.append(name)
                continue
            after = [clean_tool(t) for t in router.listed_tools(name)]  # just listed, not a file that may lag
            added, changed, removed = _diff(before[name], after)
            report.new, report.changed, report.removed = (
                report.new + added,
                report.changed + changed,
                report.removed + removed,
            )
        report.total = len(router.catalog)
        embedding = router.indexer.embedding_counts
        report.embedded, report.embedded_from_cache, report.model_id = (
            embedding.encoded,
            embedding.cached,
            embedding.model_id,
        )
    cache.bump_generation()
    report.seconds = time.perf_counter() - started
    return report


def summary(report: ReindexReport) -> str:
    connected = len(report.statuses) - len(report.failed)
    lines = [
        f"servers: {len(report.statuses)} ({connected} connected"
        + (f", failed: {', '.join(report.failed)})" if report.failed else ")"),
        f"tools: {report.total} indexed, {report.new} new, {report.changed} changed, {report.removed} removed",
        f"embedded: {report.embedded} tools ({report.embedded_from_cache} reused from the cache)"
        + (f" with {report.model_id}" if report.model_id else " (no embedding model: BM25 only)"),
        f"time: {report.seconds:.1f} s",
    ]
    return "\n".join(lines)
