"""Search in PostgreSQL (``discovery_router.team.search``) against the in-memory index, on a real corpus subset.

A real PostgreSQL 18 + pgvector (the session ``postgres`` fixture), a fresh database per test, the packaged
MiniLM for vectors. BM25 scores must equal the in-memory retriever's; hybrid rankings must agree closely
(HNSW is approximate); writes must show in the next search; hostile strings must stay data.
"""

from __future__ import annotations

import re

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from benchmarks.suites.corpus import load_corpus
from benchmarks.suites.scale import _docs
from devkit.corpus import DEFAULT_CORPUS
from devkit.databases import create_database
from discovery_router.team.migrate import MIGRATIONS
from discovery_router.search import SearchIndex, ToolDoc
from discovery_router.search.bm25 import BM25Retriever
from discovery_router.search.embedders import resolve_embedder
from discovery_router.search.text import split_steps
from discovery_router.team.search import PostgresSearchIndex, ScaleSettings, configure

TOOLS = 250
QUERIES = 60
EVERYTHING = ScaleSettings(candidates=TOOLS * 2)
"""Candidates enough for the whole test catalog: the Postgres ranking must then equal the in-memory one."""


@pytest.fixture(scope="module")
def corpus():
    if not (DEFAULT_CORPUS / "tools.jsonl").exists():
        pytest.skip(f"tool corpus not found at {DEFAULT_CORPUS}")
    small = load_corpus(DEFAULT_CORPUS).subset(max_tools=TOOLS, max_queries=QUERIES)
    return _docs(small.tools, small.server_descriptions), [q["query"] for q in small.queries]


@pytest.fixture(scope="module")
def embedder():
    return resolve_embedder(None)


@pytest.fixture(scope="module")
def vectors(corpus, embedder):
    docs, _ = corpus
    return embedder.encode(SearchIndex(docs).embedding_texts())


@pytest.fixture
async def pool(postgres):
    url = create_database(postgres.url)
    async with AsyncConnectionPool(url, configure=configure, min_size=1, max_size=2, open=False) as pool:
        yield pool


def ids(hits):
    return [h.doc.id for h in hits]


async def test_bm25_scores_and_rankings_equal_the_in_memory_index(pool, corpus):
    docs, queries = corpus
    store = PostgresSearchIndex(pool, settings=EVERYTHING)
    report = await store.bulk_load(docs)
    assert report.tools == len(docs) and report.index_s == 0.0
    memory, retriever = SearchIndex(docs), BM25Retriever()
    retriever.build(docs)
    for query in queries:
        expected = retriever.scores(query)
        got = await store.lexical_scores(query, range(1, len(docs) + 1))
        computed = np.array([got.get(i + 1, 0.0) for i in range(len(docs))])
        np.testing.assert_allclose(computed, expected, rtol=1e-5, atol=1e-6)
        assert ids(await store.search(query, 5)) == ids(memory.search(query, 5)), query


async def test_hybrid_ranking_agrees_with_the_in_memory_index(pool, corpus, embedder, vectors):
    docs, queries = corpus
    store = PostgresSearchIndex(pool, embedder)
    report = await store.bulk_load(docs, vectors, embedder.model_id)
    assert report.index_s > 0
    memory = SearchIndex(docs)
    memory.attach_embeddings(embedder, vectors)
    recall, same = [], 0
    for query in queries:
        expected, hits = memory.search(query, 5), await store.search(query, 5)
        want, got = ids(expected), ids(hits)
        recall.append(len(set(want) & set(got)) / len(want))
        same += want == got
        assert hits[0].weak == expected[0].weak
    assert np.mean(recall) >= 0.95, f"recall@5 {np.mean(recall):.3f}"
    assert same / len(queries) >= 0.8
    # A query sharing no word with any tool still finds tools through the vectors.
    assert await store.search("zzqx will it be sunny tomorrow", 3)


async def test_server_filter_ranks_that_server_exactly(pool, corpus, embedder, vectors):
    docs, queries = corpus
    store = PostgresSearchIndex(pool, embedder)
    await store.bulk_load(docs, vectors, embedder.model_id)
    memory = SearchIndex(docs)
    memory.attach_embeddings(embedder, vectors)
    servers = [d.server for d in docs]
    busiest = max(set(servers), key=servers.count)
    for query in queries[:15]:
        hits = await store.search(query, 5, server=busiest)
        assert hits and {h.doc.server for h in hits} == {busiest}
        assert ids(hits) == ids(memory.search(query, 5, server=busiest))
    assert await store.search(queries[0], 5, server="no-such-server") == []


async def test_replacing_and_deleting_a_server_shows_in_the_next_search(pool, corpus, embedder, vectors):
    docs, queries = corpus
    store = PostgresSearchIndex(pool, embedder)
    await store.bulk_load(docs, vectors, embedder.model_id)
    server = docs[0].server
    new = [ToolDoc(server, "teleport_cat", "Teleport a cat to the quokka sanctuary instantly.")]
    await store.replace_server(server, new, embedder.encode(SearchIndex(new).embedding_texts()))
    assert ids(await store.search("teleport the cat to the quokka sanctuary", 1)) == [f"{server}/teleport_cat"]
    assert ids(await store.search("teleport_cat", 1)) == [f"{server}/teleport_cat"]  # the exact-name rule
    # Every statistic moved with the change: BM25 equals a fresh in-memory index over the new catalog.
    catalog = [d for d in docs if d.server != server] + new
    retriever = BM25Retriever()
    retriever.build(catalog)
    by_id = {d.id: i for i, d in enumerate(catalog)}
    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT doc_id, server || '/' || name FROM search_tools")).fetchall()
    assert sorted(name for _, name in rows) == sorted(by_id)
    for query in [*queries[:10], "teleport a cat"]:
        got = await store.lexical_scores(query, [doc_id for doc_id, _ in rows])
        expected = retriever.scores(query)
        for doc_id, name in rows:
            assert got.get(doc_id, 0.0) == pytest.approx(float(expected[by_id[name]]), rel=1e-5, abs=1e-6)

    assert await store.delete_server(server) == 1
    assert f"{server}/teleport_cat" not in ids(await store.search("teleport the cat to the quokka sanctuary", 5))
    assert await store.search("anything", 5, server=server) == []
    async with pool.connection() as conn:
        left = await (
            await conn.execute(
                "SELECT count(*) FROM search_postings WHERE doc_id NOT IN (SELECT doc_id FROM search_tools)"
            )
        ).fetchone()
        meta = await (await conn.execute("SELECT n_docs FROM search_meta")).fetchone()
    assert left == (0,) and meta == (len(catalog) - 1,)


HOSTILE = [
    "'; DROP TABLE search_tools; --",
    "x' OR '1'='1",
    "%(terms)s %s {} $1 \\",
    "robert'); DELETE FROM search_terms; --",
    "\x00nul",
]


async def test_sql_in_queries_and_server_names_is_only_text(pool, corpus, embedder, vectors):
    docs, _ = corpus
    store = PostgresSearchIndex(pool, embedder)
    await store.bulk_load(docs, vectors, embedder.model_id)
    for text in HOSTILE:
        await store.search(text, 5)
        assert await store.search("send a message", 5, server=text) == []
        assert await store.delete_server(text) == 0
        clean = text.replace("\x00", "")  # a tool's name never holds NUL (PostgreSQL text cannot)
        await store.replace_server(clean, [ToolDoc(clean, "probe", clean)], vectors[:1])
        assert ids(await store.search(clean, 5, server=clean)) == [f"{clean}/probe"]
        await store.delete_server(clean)
    async with pool.connection() as conn:
        counts = await (
            await conn.execute("SELECT (SELECT count(*) FROM search_tools), n_docs FROM search_meta")
        ).fetchone()
    assert counts == (len(docs), len(docs))


async def test_bad_input_is_refused_with_a_reason(pool, corpus, embedder, vectors):
    docs, _ = corpus
    store = PostgresSearchIndex(pool, embedder)
    with pytest.raises(ValueError, match="model id"):
        await store.bulk_load(docs, vectors)
    with pytest.raises(ValueError, match="expected"):
        await store.bulk_load(docs, vectors[:3], embedder.model_id)
    await store.bulk_load(docs, vectors, embedder.model_id)
    with pytest.raises(ValueError, match="belong"):
        await store.replace_server("a", [ToolDoc("b", "t")], vectors[:1])
    with pytest.raises(ValueError, match="need their vectors"):
        await store.replace_server("a", [ToolDoc("a", "t")])

    class OtherModel:
        model_id, dimension = "another-model", vectors.shape[1]

        def encode(self, texts):
            return np.ones((len(texts), vectors.shape[1]), dtype=np.float32) / np.sqrt(vectors.shape[1])

    with pytest.raises(ValueError, match="another-model"):
        await PostgresSearchIndex(pool, OtherModel()).search("send a message")  # type: ignore[arg-type]


def test_the_search_migration_keeps_to_its_own_tables(postgres):
    """002_search.sql, applied by the product's runner after 001, adds only ``search_`` tables."""
    url = create_database(postgres.url)
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == [1, 2]
    search_sql = (MIGRATIONS / "002_search.sql").read_text()
    created = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", search_sql))
    assert created and created <= tables and all(t.startswith("search_") for t in created)


async def test_step_search_groups_as_the_in_memory_index(pool, corpus, embedder, vectors):
    docs, queries = corpus
    store = PostgresSearchIndex(pool, embedder, settings=EVERYTHING)
    await store.bulk_load(docs, vectors, embedder.model_id)
    memory = SearchIndex(docs)
    memory.attach_embeddings(embedder, vectors)
    plans = [(q, split_steps(q)) for q in queries if len(split_steps(q)) > 1][:8]
    assert plans
    for task, steps in plans:
        want = [ids(group) for group in memory.search_steps(task, steps, 3)]
        assert [ids(group) for group in await store.search_steps(task, steps, 3)] == want, task


async def test_exact_names_follow_the_whole_catalog(pool, corpus):
    docs, _ = corpus
    shared = [ToolDoc("alpha", "frobnicate", "Frobnicate a widget."), ToolDoc("beta", "frobnicate", "Frobnicate.")]
    catalog = [*docs, *shared, ToolDoc("gamma", "unique_tool_name", "Does one thing.")]
    store = PostgresSearchIndex(pool, settings=ScaleSettings(candidates=1))
    await store.bulk_load(catalog)
    memory = SearchIndex(catalog)
    for query in ["frobnicate", "alpha/frobnicate", "UNIQUE_TOOL_NAME", "gamma/unique_tool_name"]:
        assert ids(await store.search(query, 2))[0] == ids(memory.search(query, 2))[0], query
    # A bare name two servers share is exact for neither: not boosted, though one candidate alone looks unique.
    got, want = (await store.search("frobnicate", 1))[0], memory.search("frobnicate", 1)[0]
    assert (got.doc.id, got.score) == (want.doc.id, pytest.approx(want.score, rel=1e-5))
    steps = ["unique_tool_name", "frobnicate a widget"]
    assert [ids(g) for g in await store.search_steps("", steps, 1)] == [
        ids(g) for g in memory.search_steps("", steps, 1)
    ]
