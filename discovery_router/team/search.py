"""Search past the in-memory range: candidates come from PostgreSQL, the ranking from the in-memory code.

Up to ~100k tools each replica ranks its whole catalog in memory (:class:`~discovery_router.search.SearchIndex`).
Past that, :class:`PostgresSearchIndex` keeps the catalog in the tables of ``migrations/002_search.sql`` and
answers a search in two steps:

1. **Candidates in SQL.** The lexical side computes real BM25 (the tokenizer, IDF and ``k1``/``b`` of
   :class:`~discovery_router.search.bm25.BM25Retriever`; Postgres's ``ts_rank`` has no IDF) from stored term
   statistics: per-term document frequency (``search_terms``) and per-document term frequencies and lengths
   (``search_tools.terms/tfs/length``). Whom to score comes from each query term's *champion list*
   (``search_postings``: the documents where the term weighs most), so a common word costs at most
   ``champions`` rows, not its whole posting list. The dense side is an HNSW index over ``halfvec``
   vectors: the ``candidates`` nearest tools, and the farthest one (nearest to the negated query), whose
   cosine is the catalog's minimum that min-max fusion scales by.
2. **Ranking in Python.** The union of both sides (each with its exact BM25 score and its vector) becomes
   a small :class:`SearchIndex`, whose own ``search`` fuses, adds the server pass, the destructive penalty,
   the exact-name rule and the weak flag: the same functions as in memory, not a re-implementation.

A ``server=`` filter scores every tool of that server exactly (no candidates: a server is small), so a
filtered search ranks exactly as in memory.

Vectors are stored as ``halfvec`` (2 bytes a dimension): half the table, index and build time of ``vector``,
for MiniLM-sized unit vectors no measurable loss in ranking (cosines differ by ~1e-3).

What is approximate (measured by ``python -m benchmarks.run scale``): HNSW; the server pass (a server's best
tool among the candidates, not among all its tools); and BM25 candidates, scored over champion lists only.
The last one bites when many tools share one text: on the benchmark's 1M catalog (the 2,375-tool corpus
copied ~420 times with shuffled words) the 100 BM25 candidates are copies of one or two tools, and BM25-only
top 5 matched the in-memory one for 42% of queries (92% at 100k, 99.5% on the corpus itself). Exact
top-k over full posting lists (WAND/MaxScore) is the next step if real catalogs show it.

Writes (a bulk load, a server's tools replaced or deleted) are :class:`~discovery_router.team.search_tables.SearchTables`,
which this class extends with the reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from pgvector import HalfVector
from psycopg import AsyncConnection, sql

from discovery_router.config.model import IN_MEMORY_MAX as IN_MEMORY_MAX
from discovery_router.search.base import Hit, Retriever, ToolDoc
from discovery_router.search.dense import QUERY_VECTORS
from discovery_router.search.embedders.base import Embedder
from discovery_router.search.fusion import FusionConfig
from discovery_router.search.index import SearchIndex
from discovery_router.search.text import split_steps, tokenize
from discovery_router.team.search_tables import K1, B, ScaleSettings, SearchTables, Pool
from discovery_router.team.search_tables import configure as configure


class _Meta(NamedTuple):
    model: str | None
    dimension: int | None
    n_docs: int


class _GivenScores(Retriever):
    """The lexical side of a candidate index: BM25 scores already computed in SQL, one array per query text."""

    def __init__(self, scores: Mapping[str, np.ndarray]) -> None:
        self._scores = scores

    def build(self, docs: Sequence[ToolDoc]) -> None:
        pass

    def scores(self, query: str) -> np.ndarray:
        return self._scores[query]


# -- SQL --------------------------------------------------------------------------------------------------

_QUERY_TERMS = """
    m AS (SELECT n_docs,
                 CASE WHEN total_length > 0 THEN total_length::float8 / n_docs ELSE 1.0 END AS avgdl
          FROM search_meta),
    q AS (SELECT t.term_id, ln(1 + (m.n_docs - t.df + 0.5::float8) / (t.df + 0.5::float8)) AS idf
          FROM search_terms t CROSS JOIN m WHERE t.term = ANY(%(terms)s) AND t.df > 0)
"""
"""The query's terms with their IDF (Lucene's, as ``BM25Retriever``), and N and avgdl."""


def _bm25(tf: str, length: str) -> str:
    """One term's Okapi BM25 contribution in SQL: the one formula every query here uses."""
    return f"q.idf * {tf} * (%(k1)s + 1) / ({tf} + %(k1)s * (1 - %(b)s + %(b)s * {length} / m.avgdl))"


_BM25_CANDIDATES = (
    "WITH"
    + _QUERY_TERMS
    + """
    SELECT p.doc_id FROM q CROSS JOIN m CROSS JOIN LATERAL (
        SELECT doc_id, tf, length FROM search_postings p WHERE p.term_id = q.term_id
        ORDER BY p.impact DESC LIMIT %(champions)s) p
    GROUP BY p.doc_id
    ORDER BY sum("""
    + _bm25("p.tf", "p.length")
    + ") DESC, p.doc_id LIMIT %(n)s"
)
"""The ``n`` documents with the best BM25 counted over the query terms' champion lists (each term's
contribution exact; a term the document is no champion of is left out, so these are candidates)."""

_BM25_OF = (
    "WITH"
    + _QUERY_TERMS
    + """
    SELECT d.doc_id, sum("""
    + _bm25("x.tf", "d.length")
    + """)
    FROM search_tools d CROSS JOIN m CROSS JOIN q
         CROSS JOIN LATERAL (SELECT d.tfs[array_position(d.terms, q.term_id)] AS tf) AS x
    WHERE d.doc_id = ANY(%(ids)s) AND x.tf IS NOT NULL
    GROUP BY d.doc_id"""
)
"""Exact BM25 of given documents from their term frequencies (a document with no query term is absent: 0)."""


def _vector_sql(dimension: int, limit: str) -> sql.Composed:
    """The HNSW lookup: nearest by inner product (unit vectors: cosine), on the indexed expression."""
    return sql.SQL(
        "SELECT doc_id FROM search_tools ORDER BY embedding::halfvec({d}) <#> %(v)s::halfvec({d}) LIMIT {n}"
    ).format(d=sql.Literal(dimension), n=sql.SQL(limit))


class PostgresSearchIndex(SearchTables):
    """The catalog's search in PostgreSQL: same answers as :class:`SearchIndex` over the same tools, at 1M tools.

    ``embedder`` makes searches hybrid (its model must be the one the vectors were loaded with); without it
    they are BM25 only. Every method is a coroutine over connections of ``pool``.
    """

    def __init__(
        self,
        pool: Pool,
        embedder: Embedder | None = None,
        *,
        fusion: FusionConfig | None = None,
        settings: ScaleSettings | None = None,
    ) -> None:
        super().__init__(pool, settings)
        self.embedder = embedder
        self.fusion = fusion or FusionConfig()
        self._meta: _Meta | None = None
        """The catalog's model and dimension as last read (every search checks them in its first round trip)."""

    # -- reads ----------------------------------------------------------------------------------------------

    async def lexical_scores(self, query: str, doc_ids: Sequence[int]) -> dict[int, float]:
        """BM25 of ``query`` for the given documents, computed in SQL (absent: 0)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_BM25_OF, self._bm25_params(query, ids=list(doc_ids)))
            return {int(d): float(s) for d, s in await cur.fetchall()}

    async def search(self, query: str, limit: int = 5, server: str | None = None) -> list[Hit]:
        """The ``limit`` best tools for ``query``, as :meth:`SearchIndex.search` ranks them."""
        if limit <= 0 or not query.strip():
            return []
        texts = [query]
        if self.fusion.split_steps and len(tokenize(query)) >= self.fusion.steps_min_tokens:
            steps = split_steps(query)
            if len(steps) > 1:
                texts += steps
        index = await self._candidate_index(texts, server, exact=[query.strip()])
        return index.search(query, limit) if index is not None else []

    async def search_steps(
        self, task: str, steps: Sequence[str], per_step: int = 3, server: str | None = None
    ) -> list[list[Hit]]:
        """The best tools for each step of a plan, as :meth:`SearchIndex.search_steps` groups them."""
        steps = [s for s in (step.strip() for step in steps) if s]
        if per_step <= 0 or not steps:
            return [[] for _ in steps]
        texts = [*steps, task.strip()] if task.strip() else list(steps)
        index = await self._candidate_index(texts, server, exact=steps, steps=steps)
        return index.search_steps(task, steps, per_step) if index is not None else [[] for _ in steps]

    async def _candidate_index(
        self, texts: list[str], server: str | None, *, exact: Sequence[str], steps: Sequence[str] = ()
    ) -> SearchIndex | None:
        """A :class:`SearchIndex` over the candidates of ``texts`` (or over every tool of ``server``).

        Two round trips, each a pipeline of statements: whom to rank, then their rows and exact BM25.
        """
        if server is not None and "\x00" in server:
            return None  # PostgreSQL text cannot hold NUL: no server is named so
        embedder = self.embedder
        vectors = QUERY_VECTORS.encode(embedder, texts) if embedder is not None else None
        exact_keys = sorted({text.casefold() for text in exact if "\x00" not in text})
        async with self.pool.connection() as conn:
            async with conn.transaction():
                if self._meta is None:
                    self._meta = await self._read_meta(conn)
                candidates = await self._candidates(conn, texts, vectors, server, exact_keys, self._meta)
                if candidates is None:  # the catalog's model or dimension changed since the last search
                    self._meta = await self._read_meta(conn)
                    candidates = await self._candidates(conn, texts, vectors, server, exact_keys, self._meta)
                assert candidates is not None
                ids, exact_ids = candidates
                if not ids:
                    return None
                id_list = sorted(ids)
                async with conn.pipeline():
                    rows_cur = await conn.execute(
                        "SELECT doc_id, server, name, doc->>'description', doc->>'server_description',"
                        " (doc->'input_schema')::text, embedding FROM search_tools WHERE doc_id = ANY(%s)"
                        " ORDER BY doc_id",
                        (id_list,),
                        binary=True,
                    )
                    score_curs = {
                        text: await conn.execute(_BM25_OF, self._bm25_params(text, ids=id_list))
                        for text in dict.fromkeys(texts)
                    }
                rows = await rows_cur.fetchall()
                position = {r[0]: i for i, r in enumerate(rows)}
                lexical: dict[str, np.ndarray] = {}
                for text, cur in score_curs.items():
                    scores = np.zeros(len(rows), dtype=np.float32)
                    for doc_id, score in await cur.fetchall():
                        scores[position[doc_id]] = score
                    lexical[text] = scores
        docs = [ToolDoc(r[1], r[2], r[3] or "", _LazySchema(r[5] or "{}"), server_description=r[4] or "") for r in rows]
        fusion = self.fusion if steps else replace(self.fusion, step_server_doc_weight=0.0)
        # The exact-name rule is catalog-wide (a name two servers share is exact for neither): decided in SQL.
        exact_names = {key: position[doc_id] for key, doc_id in exact_ids.items()}
        index = SearchIndex(docs, _GivenScores(lexical), fusion=fusion, exact_names=exact_names)
        if embedder is not None and self._meta.dimension is not None:
            matrix = np.zeros((len(rows), embedder.dimension), dtype=np.float32)
            for i, row in enumerate(rows):
                if row[6] is not None:
                    matrix[i] = row[6].to_numpy()
            index.attach_embeddings(embedder, matrix)
        return index

    async def _read_meta(self, conn: AsyncConnection[Any]) -> _Meta:
        row = await (await conn.execute("SELECT model, dimension, n_docs FROM search_meta")).fetchone()
        meta = _Meta(*row) if row else _Meta(None, None, 0)
        if self.embedder is not None and meta.model is not None and self.embedder.model_id != meta.model:
            raise ValueError(
                f"the search tables hold vectors of {meta.model!r}, not of the embedder {self.embedder.model_id!r}"
            )
        return meta

    async def _candidates(
        self,
        conn: AsyncConnection[Any],
        texts: list[str],
        vectors: list[np.ndarray] | None,
        server: str | None,
        exact_keys: list[str],
        meta: _Meta,
    ) -> tuple[set[int], dict[str, int]] | None:
        """(document ids to rank, exact-name matches by key) in one pipeline; None if ``meta`` is out of date."""
        n = self.settings.candidates
        dense = vectors is not None and meta.dimension is not None
        async with conn.pipeline():
            meta_cur = await conn.execute("SELECT model, dimension, n_docs FROM search_meta")
            curs = []
            if server is not None:
                curs.append(await conn.execute("SELECT doc_id FROM search_tools WHERE server = %s", (server,)))
            else:
                for text in texts:
                    curs.append(await conn.execute(_BM25_CANDIDATES, self._bm25_params(text, n=n)))
                if dense and vectors is not None and meta.dimension is not None:
                    await conn.execute(
                        "SELECT set_config('hnsw.ef_search', %s, true)", (str(max(self.settings.ef_search, n)),)
                    )
                    near, far = _vector_sql(meta.dimension, str(n)), _vector_sql(meta.dimension, "1")
                    for vector in vectors:
                        curs.append(await conn.execute(near, {"v": HalfVector(vector)}))
                        curs.append(await conn.execute(far, {"v": HalfVector(-vector)}))
            exact_cur = None
            if exact_keys:
                # Two rows per key at most: enough to tell "one tool, by one key" from "shared".
                exact_cur = await conn.execute(
                    "SELECT k.key, t.doc_id, t.server, (t.id_key = k.key)::int + (t.name_key = k.key)::int"
                    " FROM unnest(%s::text[]) AS k(key) CROSS JOIN LATERAL ("
                    "  SELECT * FROM search_tools WHERE id_key = k.key OR name_key = k.key LIMIT 2) t",
                    (exact_keys,),
                )
        now = await meta_cur.fetchone()
        if now is None or _Meta(*now)[:2] != meta[:2]:
            return None
        if not now[2]:
            return set(), {}
        ids = {row[0] for cur in curs for row in await cur.fetchall()}
        exact_ids: dict[str, int] = {}
        if exact_cur is not None:
            matches: dict[str, list[tuple[int, str, int]]] = {}
            for key, doc_id, doc_server, keys in await exact_cur.fetchall():
                matches.setdefault(key, []).append((doc_id, doc_server, keys))
            for key, found in matches.items():
                # unique in the catalog: one tool, matched by one key (an id that is also another's name is not)
                if len(found) == 1 and found[0][2] == 1 and server in (None, found[0][1]):
                    exact_ids[key] = found[0][0]
                    ids.add(found[0][0])
        return ids, exact_ids

    def _bm25_params(self, text: str, **extra: Any) -> dict[str, Any]:
        return {"terms": sorted(set(tokenize(text))), "k1": K1, "b": B, "champions": self.settings.champions, **extra}


# -- helpers ------------------------------------------------------------------------------------------------


class _LazySchema(Mapping[str, Any]):
    """A tool's ``inputSchema`` parsed on first use: ranking reads it for the top hit only."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: dict[str, Any] | None = None

    def _parsed(self) -> dict[str, Any]:
        if self._value is None:
            self._value = json.loads(self._text)
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())
