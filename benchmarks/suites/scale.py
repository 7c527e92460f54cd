"""How the product's search index grows with the catalog: 1k, 10k, 100k tools (--quick: 500, 2k) in memory,
then the corpus, 100k and 1M tools in PostgreSQL (``scale_pg``; --quick: 300).

Catalogs are the real corpus plus generated variants (copies of every server,
renamed ``<server> v<k>``, with the words of each description shuffled), cut to
size. Each size runs in a fresh worker subprocess (so RSS is that size's alone):

- BM25 build: ``SearchIndex(docs)`` as the router builds it on every catalog change;
- search p50/p99: ``SearchIndex.search`` over the corpus queries (lexical);
- hybrid search p50/p99 (when the product has a dense side and a model is
  installed): the same index with ``attach_embeddings`` of a matrix of the real
  shape (random unit rows: search cost does not depend on the values), queries
  embedded for real; embedding the whole catalog is *estimated* from a timed sample;
- router ready (small sizes only): a ``Router`` over one in-memory FastMCP server
  per catalog server, start to ``wait_ready`` (the router rebuilds its index as
  each server connects);
- RSS of the worker after building (and its peak);
- on-disk cache: ``discovery_router.cache.IndexCache`` with every server's tool list and one
  vector per tool (random vectors of the model's dimension), bytes on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.suites.report import save_figure, check, md_table, p50_check, pct, pyplot

from benchmarks.suites.context import ROOT, Context

from devkit.system import child_env, peak_rss_mb, rss_mb

from benchmarks.suites.corpus import load_corpus

NAME = "scale"
ROUTER_READY_MAX = 1000  # above this the router's per-connect index rebuilds make start-up impractical here


def variant_catalog(tools: list[dict[str, Any]], size: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = list(tools[:size])
    k = 1
    while len(out) < size:
        for t in tools:
            if len(out) >= size:
                break
            words = (t.get("description") or "").split()
            rng.shuffle(words)
            out.append({**t, "server": f"{t['server']} v{k}", "description": " ".join(words)})
        k += 1
    return out


def _docs(tools: list[dict[str, Any]], descriptions: dict[str, str]):
    from benchmarks.suites.corpus import slugify
    from discovery_router.search import ToolDoc

    return [
        ToolDoc(
            slugify(t["server"]),
            t["name"],
            t.get("description") or "",
            t.get("inputSchema") or {},
            server_description=descriptions.get(t["server"].split(" v")[0], ""),
        )
        for t in tools
    ]


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _RandomEmbedder:
    """Stands in for the model where only the vectors' shape matters (cache file size)."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.model_id = f"bench-random-{dimension}"
        self._rng = np.random.default_rng(0)

    def encode(self, texts):
        m = self._rng.standard_normal((len(texts), self.dimension)).astype(np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)


def worker(size: int, corpus_dir: Path, n_queries: int) -> dict[str, Any]:
    rss_start = rss_mb()
    corpus = load_corpus(corpus_dir)
    tools = variant_catalog(corpus.tools, size)
    servers = sorted({t["server"] for t in tools})
    queries = [q["query"] for q in corpus.queries][:n_queries] or ["send a message"]
    docs = _docs(tools, corpus.server_descriptions)
    rss_loaded = rss_mb()

    from discovery_router.search import SearchIndex

    t0 = time.perf_counter()
    index = SearchIndex(docs)
    build_s = time.perf_counter() - t0
    rss_built = rss_mb()

    def measure() -> dict[str, float]:
        for q in queries[:10]:
            index.search(q, 5)
        lat = []
        for q in queries:
            t = time.perf_counter_ns()
            index.search(q, 5)
            lat.append((time.perf_counter_ns() - t) / 1e6)
        return pct(lat, 50, 99)

    out: dict[str, Any] = {
        "size": size,
        "servers": len(servers),
        "bm25_build_s": build_s,
        "search_ms": measure(),
        "rss_start_mb": rss_start,
        "rss_loaded_mb": rss_loaded,
        "rss_index_mb": rss_built,
    }

    # the dense side, when the product has one
    dimension = 384
    try:
        from discovery_router.search.embedders import resolve_embedder

        embedder = resolve_embedder()
        dimension = embedder.dimension
        sample = index.embedding_texts()[:48]
        t0 = time.perf_counter()
        embedder.encode(sample)
        per_text = (time.perf_counter() - t0) / len(sample)
        rng = np.random.default_rng(1)
        matrix = rng.standard_normal((len(docs), dimension)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        index.attach_embeddings(embedder, matrix)
        out["hybrid_search_ms"] = measure()
        out["hybrid_search_known_ms"] = measure()  # every query's vector now known: search without encoding
        out["embed_catalog_estimated_s"] = per_text * len(docs)
        out["embedder"] = embedder.model_id
    except Exception as exc:  # no dense module / no model: lexical only
        out["hybrid_search_ms"] = None
        out["hybrid_search_known_ms"] = None
        out["embed_catalog_estimated_s"] = None
        out["embedder"] = f"n/a ({type(exc).__name__}: {exc})"
    out["rss_after_mb"] = rss_mb()
    out["peak_rss_mb"] = peak_rss_mb()

    # on-disk cache through the product's own store
    try:
        from discovery_router.cache import IndexCache

        with tempfile.TemporaryDirectory() as tmp:
            cache = IndexCache(tmp)
            by_server: dict[str, list[dict[str, Any]]] = {}
            for t in tools:
                by_server.setdefault(t["server"], []).append(
                    {"name": t["name"], "description": t.get("description"), "inputSchema": t.get("inputSchema")}
                )
            t0 = time.perf_counter()
            for server, items in by_server.items():
                cache.save_tools(server, items)
            tools_bytes = _dir_bytes(Path(tmp))
            result = cache.get_or_embed(_RandomEmbedder(dimension), index.embedding_texts())
            cache_write_s = time.perf_counter() - t0
            stored = cache.embeddings.lookup(f"bench-random-{dimension}")[1].shape[0]
            out["cache"] = {
                "bytes": _dir_bytes(Path(tmp)),
                "tool_list_bytes": tools_bytes,
                "vectors_stored": int(stored),
                "vectors_requested": len(docs),
                "write_s": cache_write_s,
                "encoded": result.encoded,
            }
    except ImportError:
        out["cache"] = None

    if size <= ROUTER_READY_MAX:
        out["router_ready_s"] = asyncio.run(_router_ready(tools, corpus.server_descriptions))
    else:
        out["router_ready_s"] = None
    return out


async def _router_ready(tools: list[dict[str, Any]], descriptions: dict[str, str]) -> float:
    from benchmarks.suites.corpus import Corpus, corpus_servers, router_targets
    from discovery_router.config.model import RouterSettings
    from discovery_router.router import Router

    corpus = Corpus("scale", tools, descriptions, [])
    servers = corpus_servers(corpus)
    router = Router(router_targets(corpus, servers), RouterSettings(connect_timeout=600, health_interval=0))
    t0 = time.perf_counter()
    async with router:
        await router.wait_ready(timeout=1200)
        return time.perf_counter() - t0


async def run(ctx: Context) -> dict[str, Any]:
    t_start = time.perf_counter()
    sizes = [500, 2000] if ctx.quick else [1000, 10000, 100000]
    n_queries = 60 if ctx.quick else 400
    rows = []
    for size in sizes:
        ctx.log(f"scale: {size:,} tools (worker subprocess)")
        argv = [
            sys.executable,
            "-m",
            "benchmarks.suites.scale",
            "--worker",
            str(size),
            "--corpus",
            str(ctx.corpus_dir),
            "--queries",
            str(n_queries),
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=str(ROOT), env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        stdout, stderr = await proc.communicate()
        if proc.returncode != 0:
            tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
            rows.append({"size": size, "error": " | ".join(tail)})
            ctx.log(f"scale: {size} failed: {tail}")
            continue
        row = json.loads(stdout.decode().strip().splitlines()[-1])
        rows.append(row)
        ctx.log(
            f"scale: {size:,}: build {row['bm25_build_s']:.2f}s, search p50 {row['search_ms']['p50']:.2f} ms, "
            f"RSS {row['rss_after_mb']:.0f} MB"
        )
    from benchmarks.suites import scale_pg

    postgres = await scale_pg.postgres_rows(ctx, n_queries)
    checks = scale_pg.checks(postgres)
    good = [r for r in rows if "error" not in r]
    for r in good:
        hyb = r.get("hybrid_search_ms")
        p50 = (hyb or r["search_ms"])["p50"]
        if r["size"] >= 100_000:  # the scale target; the 5 ms one is checked at 2,375 by latency
            checks.append(
                check(
                    f"search p50 at {r['size']:,} tools ({'hybrid' if hyb else 'bm25'})",
                    "<= 30 ms",
                    round(p50, 3),
                    p50 <= 30.0,
                    "hybrid includes encoding the query with the real embedder" if hyb else "",
                )
            )
            known = r.get("hybrid_search_known_ms")
            if known:
                checks.append(
                    p50_check(
                        f"search p50 at {r['size']:,} tools, excluding query encoding (hybrid)",
                        10.0,
                        known,
                        "same queries again, their vectors already encoded",
                    )
                )
    plots = [_plot(ctx, good)] if good else []
    return {
        "suite": NAME,
        "quick": ctx.quick,
        "sizes": sizes,
        "rows": rows,
        "postgres_rows": postgres,
        "checks": checks,
        "plots": plots,
        "elapsed_s": time.perf_counter() - t_start,
        "method": __doc__,
    }


def _plot(ctx: Context, rows: list[dict[str, Any]]) -> str:
    plt = pyplot()
    xs = [r["size"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    axes[0].plot(xs, [r["bm25_build_s"] for r in rows], "o-", label="BM25 index build")
    est = [r.get("embed_catalog_estimated_s") for r in rows]
    if any(e is not None for e in est):
        axes[0].plot(xs, [e or np.nan for e in est], "s--", label="embed catalog (estimated)")
    axes[0].set_ylabel("seconds")
    axes[0].set_title("build time")
    axes[1].plot(xs, [r["search_ms"]["p50"] for r in rows], "o-", label="bm25 p50")
    axes[1].plot(xs, [r["search_ms"]["p99"] for r in rows], "o:", label="bm25 p99")
    if any(r.get("hybrid_search_ms") for r in rows):
        axes[1].plot(xs, [(r.get("hybrid_search_ms") or {}).get("p50", np.nan) for r in rows], "s-", label="hybrid p50")
        axes[1].plot(xs, [(r.get("hybrid_search_ms") or {}).get("p99", np.nan) for r in rows], "s:", label="hybrid p99")
    axes[1].set_ylabel("ms per search")
    axes[1].set_title("search latency")
    axes[2].plot(xs, [r["rss_after_mb"] for r in rows], "o-", label="RSS after build")
    axes[2].plot(xs, [r["peak_rss_mb"] for r in rows], "o:", label="peak RSS")
    axes[2].set_ylabel("MB")
    axes[2].set_title("memory (worker process)")
    axes[3].plot(
        xs, [(r.get("cache") or {}).get("bytes", np.nan) / 1e6 for r in rows], "o-", label="index cache on disk"
    )
    axes[3].set_ylabel("MB")
    axes[3].set_title("on-disk cache")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("tools in catalog")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, ctx, "scale.png")


def summary(result: dict[str, Any]) -> str:
    lines = [
        "## Scale",
        "",
        "Catalogs: the corpus plus renamed copies with shuffled description words. "
        "Each size in a fresh worker process. Hybrid search uses the real query embedder with a catalog "
        "matrix of random unit rows (same cost); catalog embedding time is estimated from a 48-text sample.",
        "",
    ]
    rows = []
    for r in result["rows"]:
        if "error" in r:
            rows.append([f"{r['size']:,}", "error: " + r["error"]] + [""] * 10)
            continue
        hyb = r.get("hybrid_search_ms") or {}
        known = r.get("hybrid_search_known_ms") or {}
        cache = r.get("cache") or {}
        rows.append(
            [
                r["size"],
                r["servers"],
                r["bm25_build_s"],
                r["search_ms"]["p50"],
                r["search_ms"]["p99"],
                hyb.get("p50"),
                hyb.get("p99"),
                known.get("p50"),
                r.get("embed_catalog_estimated_s"),
                r["rss_after_mb"],
                r["peak_rss_mb"],
                f"{cache['bytes'] / 1e6:.1f} MB ({cache['vectors_stored']:,}/{cache['vectors_requested']:,} vectors)"
                if cache
                else "n/a",
                r.get("router_ready_s"),
            ]
        )
    lines.append(
        md_table(
            [
                "tools",
                "servers",
                "BM25 build s",
                "bm25 p50 ms",
                "bm25 p99 ms",
                "hybrid p50 ms",
                "hybrid p99 ms",
                "hybrid p50 ms, query encoded",
                "embed all s (est.)",
                "RSS MB",
                "peak RSS MB",
                "cache on disk",
                "router ready s",
            ],
            rows,
        )
    )
    lines += [
        "",
        f"Router ready is measured only up to {ROUTER_READY_MAX:,} tools (n/a above): the router rebuilds "
        "the whole index each time one server connects.",
        "",
        "![scale](scale.png)",
        "",
    ]
    from benchmarks.suites import scale_pg

    lines += scale_pg.summary(result.get("postgres_rows", []))
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(worker(args.worker, args.corpus, args.queries)))
