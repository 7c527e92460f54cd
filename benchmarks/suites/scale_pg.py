"""Search past the in-memory range: the catalog in PostgreSQL (``discovery_router.team.search``).

For each size a worker subprocess builds the catalog (the real corpus, then renamed copies with shuffled
description words, as the in-memory rows), loads it into a fresh database with the product's bulk loader
(``COPY``, then the HNSW index) and reports:

- build: tokenising and ``COPY`` of every table, then the HNSW build, in seconds;
- search p50/p99 over the corpus queries, hybrid and BM25-only, **excluding query encoding** (every query
  is encoded once before timing, as the query-vector cache serves a repeated query); measured in a separate
  "replica" subprocess that only connects, loads the embedder and searches, so its RSS is a replica's;
- recall@5 of the Postgres path against the in-memory ``SearchIndex`` over the same tools and vectors
  (hybrid, and the share of BM25-only top 5 lists that are identical);
- the database's size on disk (tables and indexes).

Vectors: the real corpus's tools are embedded for real (through the benchmark's embedding cache). A copy
of a tool gets its original's vector plus Gaussian noise (cosine ~0.9 to it), normalised: encoding a
million texts on two cores would take hours, and a search's cost does not depend on where its vectors came
from (the HNSW graph's shape does a little; these are clustered like real near-duplicates).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.suites.corpus import load_corpus
from benchmarks.suites.report import pct
from devkit.system import child_env, peak_rss_mb, rss_mb

NOISE = 0.025
"""Per-dimension standard deviation of a copy's noise: |noise| ~ 0.49 at 384 dimensions, cosine ~0.9."""
WARMUP = 10
URL_ENV = "SCALE_DATABASE_URL"
"""How a worker gets its database URL: the environment, not argv (a password in argv shows in ``ps``)."""


def catalog(corpus_dir: Path, size: int, cache_dir: Path) -> tuple[list[Any], np.ndarray, Any, list[str]]:
    """(docs, unit vectors, embedder, queries): the corpus plus copies up to ``size`` tools."""
    from benchmarks.suites.scale import _docs, variant_catalog
    from discovery_router.cache import IndexCache
    from discovery_router.search.embedders import resolve_embedder
    from discovery_router.search.text import embedding_text

    corpus = load_corpus(corpus_dir)
    docs = _docs(variant_catalog(corpus.tools, size), corpus.server_descriptions)
    embedder = resolve_embedder()
    real = docs[: len(corpus.tools)]
    base = IndexCache(cache_dir).get_or_embed(embedder, [embedding_text(d) for d in real]).matrix
    matrix = np.empty((len(docs), base.shape[1]), dtype=np.float32)
    rng = np.random.default_rng(5)
    for start in range(0, len(docs), len(real)):
        block = base[: min(len(real), len(docs) - start)]
        if start:
            block = block + rng.standard_normal(block.shape).astype(np.float32) * NOISE
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        matrix[start : start + len(block)] = block
    return docs, matrix, embedder, [q["query"] for q in corpus.queries]


async def _open(url: str) -> Any:
    from psycopg_pool import AsyncConnectionPool

    from discovery_router.team.search import configure

    pool = AsyncConnectionPool(url, configure=configure, min_size=1, max_size=2, open=False)
    await pool.open()
    return pool


async def _database_size(url: str) -> dict[str, int]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT pg_database_size(current_database()), pg_total_relation_size('search_tools'),"
            " pg_indexes_size('search_tools'), pg_total_relation_size('search_postings'),"
            " pg_total_relation_size('search_terms')"
        )
        row = await cur.fetchone()
    assert row is not None
    keys = ("database", "tools_table", "tools_indexes", "postings", "terms")
    return dict(zip(keys, (int(v) for v in row)))


async def _build(size: int, corpus_dir: Path, cache_dir: Path, url: str, n_queries: int, reference: bool) -> dict:
    from discovery_router.team.search import PostgresSearchIndex, ScaleSettings

    t0 = time.perf_counter()
    docs, matrix, embedder, queries = catalog(corpus_dir, size, cache_dir)
    queries = queries[:n_queries]
    out: dict[str, Any] = {"size": len(docs), "servers": len({d.server for d in docs}), "model": embedder.model_id}
    out["catalog_s"] = time.perf_counter() - t0
    pool = await _open(url)
    try:
        store = PostgresSearchIndex(pool, embedder, settings=ScaleSettings(maintenance_work_mem="3GB"))
        report = await store.bulk_load(docs, matrix, embedder.model_id)
        out.update(load_s=report.load_s, index_s=report.index_s, terms=report.terms, postings=report.postings)
        out["database_bytes"] = await _database_size(url)
        out["builder_peak_rss_mb"] = peak_rss_mb()
        out["replica"] = _replica(url, n_queries, corpus_dir)
        if reference:
            out["recall"] = await _recall(store, docs, matrix, embedder, queries)
    finally:
        await pool.close()
    return out


async def _recall(store: Any, docs: list[Any], matrix: np.ndarray, embedder: Any, queries: list[str]) -> dict:
    """Agreement with the in-memory index over the same tools and vectors (top 5)."""
    from discovery_router.search import SearchIndex

    t0 = time.perf_counter()
    memory = SearchIndex(docs)
    lexical = [[h.doc.id for h in memory.search(q, 5)] for q in queries]
    memory.attach_embeddings(embedder, matrix)
    build_s = time.perf_counter() - t0
    hybrid = [[h.doc.id for h in memory.search(q, 5)] for q in queries]
    bm25_store = replace_embedder(store, None)
    hits, same_lexical = 0.0, 0
    for q, want, want_lexical in zip(queries, hybrid, lexical):
        got = [h.doc.id for h in await store.search(q, 5)]
        hits += len(set(got) & set(want)) / max(len(want), 1)
        same_lexical += [h.doc.id for h in await bm25_store.search(q, 5)] == want_lexical
    return {
        "hybrid_recall_at_5": hits / max(len(queries), 1),
        "bm25_identical_top5": same_lexical / max(len(queries), 1),
        "queries": len(queries),
        "in_memory_build_s": build_s,
    }


def replace_embedder(store: Any, embedder: Any) -> Any:
    from discovery_router.team.search import PostgresSearchIndex

    return PostgresSearchIndex(store.pool, embedder, fusion=store.fusion, settings=store.settings)


def _replica(url: str, n_queries: int, corpus_dir: Path) -> dict[str, Any]:
    """Search timing and RSS from a fresh process holding only what a replica holds."""
    argv = [sys.executable, "-m", "benchmarks.suites.scale_pg", "--replica"]
    argv += ["--corpus", str(corpus_dir), "--queries", str(n_queries)]
    proc = subprocess.run(argv, env={**child_env(), URL_ENV: url}, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": " | ".join(proc.stderr.strip().splitlines()[-3:])}
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def _replica_main(url: str, corpus_dir: Path, n_queries: int) -> dict[str, Any]:
    from discovery_router.search.dense import QUERY_VECTORS
    from discovery_router.search.embedders import resolve_embedder
    from discovery_router.team.search import PostgresSearchIndex

    queries = [q["query"] for q in load_corpus(corpus_dir).queries][:n_queries]
    rss_start = rss_mb()
    embedder = resolve_embedder()
    QUERY_VECTORS.encode(embedder, queries)  # encoding excluded: every timed search finds its vector cached
    pool = await _open(url)
    out: dict[str, Any] = {"rss_start_mb": rss_start}
    try:
        for mode, model in (("hybrid", embedder), ("bm25", None)):
            store = PostgresSearchIndex(pool, model)
            for q in queries[:WARMUP]:
                await store.search(q, 5)
            lat = []
            for q in queries:
                t = time.perf_counter_ns()
                await store.search(q, 5)
                lat.append((time.perf_counter_ns() - t) / 1e6)
            out[f"{mode}_ms"] = pct(lat, 50, 99)
        server = (await PostgresSearchIndex(pool, embedder).search(queries[0], 1))[0].doc.server
        filtered = PostgresSearchIndex(pool, embedder)
        lat = []
        for q in queries[:50]:
            t = time.perf_counter_ns()
            await filtered.search(q, 5, server=server)
            lat.append((time.perf_counter_ns() - t) / 1e6)
        out["server_filter_ms"] = pct(lat, 50, 99)
    finally:
        await pool.close()
    out["rss_mb"] = rss_mb()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


REFERENCE_MAX = 100_000
"""Above this the in-memory reference index (for recall) is not built: at 1M it alone takes many minutes."""


def sizes(ctx: Any) -> list[int]:
    """The real corpus as is (real vectors: the recall row), then 100k and 1M tools; --quick: 300 (its first
    300 tools, a few seconds to embed on a fresh cache)."""
    return [300] if ctx.quick else [len(load_corpus(ctx.corpus_dir).tools), 100_000, 1_000_000]


@contextlib.contextmanager
def _server(ctx: Any) -> Iterator[str]:
    if ctx.database_url:
        yield ctx.database_url
        return
    from devkit.postgres import embedded_postgres

    with embedded_postgres() as server:
        yield server.url


async def postgres_rows(ctx: Any, n_queries: int) -> list[dict[str, Any]]:
    """One worker subprocess per size, each on a fresh database of the server (dropped afterwards)."""
    from devkit.postgres import PostgresUnavailable
    from devkit.databases import create_database, drop_database

    rows: list[dict[str, Any]] = []
    try:
        with _server(ctx) as base:
            for size in sizes(ctx):
                ctx.log(f"scale: {size:,} tools in PostgreSQL (worker subprocess)")
                url = create_database(base, prefix="bench_search")
                try:
                    argv = [sys.executable, "-m", "benchmarks.suites.scale_pg", "--worker", str(size)]
                    argv += ["--corpus", str(ctx.corpus_dir), "--cache-dir", str(ctx.cache_dir)]
                    argv += ["--queries", str(n_queries)] + (["--no-reference"] if size > REFERENCE_MAX else [])
                    proc = await asyncio.create_subprocess_exec(
                        *argv, env={**child_env(), URL_ENV: url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                    )
                    stdout, stderr = await proc.communicate()
                finally:
                    drop_database(url)
                if proc.returncode != 0:
                    tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
                    rows.append({"size": size, "error": " | ".join(tail)})
                    continue
                row = json.loads(stdout.decode().strip().splitlines()[-1])
                rows.append(row)
                replica = row.get("replica", {})
                ctx.log(
                    f"scale: {size:,} in PostgreSQL: load {row['load_s']:.0f}s + HNSW {row['index_s']:.0f}s, "
                    f"hybrid p50 {replica.get('hybrid_ms', {}).get('p50', float('nan')):.1f} ms"
                )
    except PostgresUnavailable as exc:
        rows.append({"size": 0, "error": f"PostgreSQL unavailable: {exc}"})
    return rows


def checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from benchmarks.suites.report import p50_check

    out = []
    for row in rows:
        hybrid = row.get("replica", {}).get("hybrid_ms")
        if row.get("size", 0) >= 1_000_000 and hybrid:
            out.append(
                p50_check(
                    f"search p50 at {row['size']:,} tools in PostgreSQL, excluding query encoding (hybrid)",
                    50.0,
                    hybrid,
                    "HNSW halfvec + BM25 from term statistics, fused in Python",
                    digits=2,
                )
            )
    return out


def summary(rows: list[dict[str, Any]]) -> list[str]:
    from benchmarks.suites.report import md_table

    table = []
    for r in rows:
        if "error" in r:
            table.append([f"{r['size']:,}", "error: " + r["error"]] + [""] * 9)
            continue
        rep, rec, db = r.get("replica", {}), r.get("recall") or {}, r["database_bytes"]
        table.append(
            [
                r["size"],
                f"{r['load_s']:.1f} + {r['index_s']:.1f}",
                rep.get("hybrid_ms", {}).get("p50"),
                rep.get("hybrid_ms", {}).get("p99"),
                rep.get("bm25_ms", {}).get("p50"),
                rep.get("server_filter_ms", {}).get("p50"),
                rec.get("hybrid_recall_at_5", "n/a"),
                rec.get("bm25_identical_top5", "n/a"),
                rep.get("rss_mb"),
                f"{db['database'] / 1e9:.2f} GB",
            ]
        )
    return [
        "### In PostgreSQL (`discovery_router.team.search`)",
        "",
        "Real corpus vectors; copies get their original's vector plus noise (cosine ~0.9). Latency excludes query "
        "encoding, measured in a fresh replica process (its RSS). Recall@5 against the in-memory index over the "
        f"same tools and vectors (not measured above {REFERENCE_MAX:,} tools).",
        "",
        md_table(
            [
                "tools",
                "build s (load + HNSW)",
                "hybrid p50 ms",
                "hybrid p99 ms",
                "bm25 p50 ms",
                "server filter p50 ms",
                "hybrid recall@5",
                "bm25 identical top 5",
                "replica RSS MB",
                "database",
            ],
            table,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=int)
    parser.add_argument("--replica", action="store_true", help="time searches as a replica would")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    url = os.environ[URL_ENV]
    if args.replica:
        result = asyncio.run(_replica_main(url, args.corpus, args.queries))
    else:
        result = asyncio.run(_build(args.worker, args.corpus, args.cache_dir, url, args.queries, not args.no_reference))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
