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

Writes: :meth:`PostgresSearchIndex.bulk_load` (``COPY``, then the HNSW index built once, after the load) and
:meth:`PostgresSearchIndex.replace_server` / :meth:`PostgresSearchIndex.delete_server` for a catalog change,
which keep every statistic exact (N, total length, each term's df) so the next search sees the change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

import numpy as np
from pgvector import HalfVector
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from discovery_router.config.model import IN_MEMORY_MAX as IN_MEMORY_MAX
from discovery_router.search.base import Hit, Retriever, ToolDoc
from discovery_router.search.bm25 import BM25Retriever
from discovery_router.search.dense import QUERY_VECTORS
from discovery_router.search.embedders.base import Embedder
from discovery_router.search.fusion import FusionConfig
from discovery_router.search.index import SearchIndex
from discovery_router.search.text import destructive_name, document_text, split_steps, tokenize

_BM25 = BM25Retriever()
K1, B = _BM25.k1, _BM25.b
"""BM25's parameters: the in-memory retriever's defaults, so both paths score alike."""

HNSW_INDEX = "search_tools_hnsw"


@dataclass(frozen=True)
class ScaleSettings:
    """How much each side fetches, and how the vector index is built."""

    candidates: int = 100
    """Tools each side (BM25, HNSW) proposes per query text; the union is ranked in Python."""
    champions: int = 1000
    """Per term, the documents kept in its candidate list at bulk load (later writes add theirs)."""
    ef_search: int = 100
    """HNSW's search breadth (``hnsw.ef_search``), at least ``candidates``."""
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    maintenance_work_mem: str = "1GB"
    """Raised for the HNSW build only: a graph that fits in it builds several times faster."""


class _Pool(Protocol):
    """What we need of a ``psycopg_pool.AsyncConnectionPool`` (its connections configured by :func:`configure`)."""

    def connection(self) -> Any: ...


async def configure(conn: AsyncConnection[Any]) -> None:
    """Pool ``configure`` hook: pgvector's types on the connection (binary vectors both ways)."""
    from pgvector.psycopg import register_vector_async

    await register_vector_async(conn)


@dataclass(frozen=True)
class LoadReport:
    tools: int
    terms: int
    postings: int
    load_s: float
    """Tokenising, ``COPY`` of every table."""
    index_s: float
    """The HNSW build (0 without vectors)."""


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


class PostgresSearchIndex:
    """The catalog's search in PostgreSQL: same answers as :class:`SearchIndex` over the same tools, at 1M tools.

    ``embedder`` makes searches hybrid (its model must be the one the vectors were loaded with); without it
    they are BM25 only. Every method is a coroutine over connections of ``pool``.
    """

    def __init__(
        self,
        pool: _Pool,
        embedder: Embedder | None = None,
        *,
        fusion: FusionConfig | None = None,
        settings: ScaleSettings | None = None,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.fusion = fusion or FusionConfig()
        self.settings = settings or ScaleSettings()
        self._meta: _Meta | None = None
        """The catalog's model and dimension as last read (every search checks them in its first round trip)."""

    # -- writes ---------------------------------------------------------------------------------------------

    async def bulk_load(
        self, docs: Sequence[ToolDoc], matrix: np.ndarray | None = None, model: str | None = None
    ) -> LoadReport:
        """Replace the whole catalog: ``docs`` with ``matrix[i]`` the unit vector of ``docs[i]`` (from ``model``).

        Rows go in with ``COPY``; the HNSW index is dropped first and built once after the load, with
        ``maintenance_work_mem`` raised: much faster than growing the graph row by row.
        """
        if matrix is not None:
            if model is None:
                raise ValueError("bulk_load: a matrix needs the model id it was embedded with")
            if matrix.ndim != 2 or len(matrix) != len(docs):
                raise ValueError(f"bulk_load: expected {len(docs)} vectors, got a {matrix.shape} matrix")
        start = time.perf_counter()
        rows = await asyncio.to_thread(_tokenized, docs)
        vocab: dict[str, int] = {}
        doc_terms: list[np.ndarray] = []
        doc_tfs: list[np.ndarray] = []
        for counts in rows:
            doc_terms.append(np.array([vocab.setdefault(t, len(vocab) + 1) for t in counts], dtype=np.int32))
            doc_tfs.append(np.fromiter(counts.values(), dtype=np.int16, count=len(counts)))
        lengths = np.array([sum(c.values()) for c in rows], dtype=np.int64)
        postings = _champions(doc_terms, doc_tfs, lengths, self.settings.champions)
        df = np.bincount(np.concatenate(doc_terms) if doc_terms else np.zeros(0, np.int32), minlength=len(vocab) + 1)
        dimension = int(matrix.shape[1]) if matrix is not None else None
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
                await conn.execute("TRUNCATE search_tools, search_terms, search_postings")
                async with conn.cursor().copy("COPY search_terms (term_id, term, df) FROM STDIN") as copy:
                    for term, term_id in vocab.items():
                        await copy.write_row((term_id, term, int(df[term_id])))
                async with conn.cursor().copy(
                    "COPY search_tools (doc_id, server, name, id_key, name_key, destructive, length, terms, tfs,"
                    " doc, embedding) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(
                        ["int4", "text", "text", "text", "text", "bool", "int4", "int4[]", "int2[]", "jsonb", "halfvec"]
                    )
                    for i, doc in enumerate(docs):
                        vector = HalfVector(matrix[i]) if matrix is not None else None
                        await copy.write_row(
                            (
                                i + 1,
                                doc.server,
                                doc.name,
                                doc.id.casefold(),
                                doc.name.casefold(),
                                destructive_name(doc.name),
                                int(lengths[i]),
                                doc_terms[i].tolist(),
                                doc_tfs[i].tolist(),
                                Jsonb(_doc_json(doc)),
                                vector,
                            )
                        )
                async with conn.cursor().copy(
                    "COPY search_postings (term_id, impact, doc_id, tf, length) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    await copy.write(_binary_copy(postings))
                await conn.execute(
                    "UPDATE search_meta SET model = %s, dimension = %s, n_docs = %s, total_length = %s",
                    (model if matrix is not None else None, dimension, len(docs), int(lengths.sum())),
                )
                await conn.execute("SELECT setval('search_tools_id_seq', %s, true)", (max(len(docs), 1),))
                await conn.execute("SELECT setval('search_terms_id_seq', %s, true)", (max(len(vocab), 1),))
            load_s = time.perf_counter() - start
            index_s = 0.0
            if dimension is not None:
                start = time.perf_counter()
                await self._build_vector_index(conn, dimension)
                index_s = time.perf_counter() - start
            await conn.execute("ANALYZE search_tools, search_terms, search_postings")
        return LoadReport(len(docs), len(vocab), len(postings), load_s, index_s)

    async def _build_vector_index(self, conn: AsyncConnection[Any], dimension: int) -> None:
        s = self.settings
        async with conn.transaction():
            await conn.execute(
                sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(s.maintenance_work_mem))
            )
            await conn.execute(
                sql.SQL(
                    "CREATE INDEX {name} ON search_tools USING hnsw ((embedding::halfvec({d})) halfvec_ip_ops)"
                    " WITH (m = {m}, ef_construction = {ef})"
                ).format(
                    name=sql.Identifier(HNSW_INDEX),
                    d=sql.Literal(dimension),
                    m=sql.Literal(s.hnsw_m),
                    ef=sql.Literal(s.hnsw_ef_construction),
                )
            )

    async def replace_server(self, server: str, docs: Sequence[ToolDoc], matrix: np.ndarray | None = None) -> None:
        """A catalog change: ``server``'s tools are now ``docs`` (vectors ``matrix``, the loaded model's)."""
        if any(doc.server != server for doc in docs):
            raise ValueError(f"replace_server({server!r}): every document must belong to that server")
        if matrix is not None and (matrix.ndim != 2 or len(matrix) != len(docs)):
            raise ValueError(f"replace_server: expected {len(docs)} vectors, got a {matrix.shape} matrix")
        rows = _tokenized(docs)
        async with self.pool.connection() as conn:
            async with conn.transaction():
                meta = await (await conn.execute("SELECT dimension FROM search_meta FOR UPDATE")).fetchone()
                dimension = meta[0] if meta else None
                if dimension is not None and matrix is None and docs:
                    raise ValueError("replace_server: the catalog is hybrid; the new tools need their vectors")
                if dimension is not None and matrix is not None and matrix.shape[1] != dimension:
                    raise ValueError(
                        f"replace_server: vectors of {matrix.shape[1]} dimensions, catalog has {dimension}"
                    )
                await self._delete(conn, server)
                if not docs:
                    return
                terms = sorted({t for counts in rows for t in counts})
                await conn.execute(
                    "INSERT INTO search_terms (term_id, term, df)"
                    " SELECT nextval('search_terms_id_seq'), t, 0 FROM unnest(%s::text[]) t"
                    " ON CONFLICT (term) DO NOTHING",
                    (terms,),
                )
                cur = await conn.execute("SELECT term, term_id FROM search_terms WHERE term = ANY(%s)", (terms,))
                ids = dict(await cur.fetchall())
                cur = await conn.execute(
                    "SELECT nextval('search_tools_id_seq') FROM generate_series(1, %s)", (len(docs),)
                )
                doc_ids = [r[0] for r in await cur.fetchall()]
                records = []
                for i, (doc, counts) in enumerate(zip(docs, rows)):
                    records.append(
                        (
                            doc_ids[i],
                            doc.server,
                            doc.name,
                            doc.id.casefold(),
                            doc.name.casefold(),
                            destructive_name(doc.name),
                            sum(counts.values()),
                            [ids[t] for t in counts],
                            list(counts.values()),
                            Jsonb(_doc_json(doc)),
                            HalfVector(matrix[i]) if matrix is not None else None,
                        )
                    )
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO search_tools (doc_id, server, name, id_key, name_key, destructive, length,"
                        " terms, tfs, doc, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        records,
                    )
                await conn.execute(
                    "UPDATE search_terms t SET df = t.df + c.n FROM ("
                    " SELECT x AS term_id, count(*) AS n FROM search_tools, unnest(terms) x"
                    " WHERE doc_id = ANY(%s) GROUP BY x) c WHERE t.term_id = c.term_id",
                    (doc_ids,),
                )
                await conn.execute(
                    "UPDATE search_meta SET n_docs = n_docs + %s, total_length = total_length + %s",
                    (len(docs), sum(r[6] for r in records)),
                )
                # Every new tool joins its terms' candidate lists (impact against the avgdl of now).
                await conn.execute(
                    "INSERT INTO search_postings (term_id, impact, doc_id, tf, length)"
                    " SELECT x.term_id, x.tf * (%(k1)s + 1) / (x.tf + %(k1)s * (1 - %(b)s + %(b)s * d.length"
                    "   / (SELECT greatest(total_length::float8 / greatest(n_docs, 1), 1e-9) FROM search_meta))),"
                    " d.doc_id, x.tf, d.length FROM search_tools d CROSS JOIN LATERAL unnest(d.terms, d.tfs) AS x(term_id, tf)"
                    " WHERE d.doc_id = ANY(%(ids)s)",
                    {"k1": K1, "b": B, "ids": doc_ids},
                )

    async def delete_server(self, server: str) -> int:
        """Remove every tool of ``server``; returns how many there were."""
        if "\x00" in server:
            return 0
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM search_meta FOR UPDATE")
                return await self._delete(conn, server)

    @staticmethod
    async def _delete(conn: AsyncConnection[Any], server: str) -> int:
        """Delete ``server``'s rows and take them out of N, total length, df and the candidate lists."""
        cur = await conn.execute(
            "DELETE FROM search_tools WHERE server = %s RETURNING doc_id, length, terms", (server,)
        )
        gone = await cur.fetchall()
        if not gone:
            return 0
        doc_ids = [r[0] for r in gone]
        per_term = Counter(t for r in gone for t in r[2])
        await conn.execute(
            "UPDATE search_terms t SET df = t.df - c.n FROM unnest(%s::int[], %s::int[]) AS c(term_id, n)"
            " WHERE t.term_id = c.term_id",
            (list(per_term), list(per_term.values())),
        )
        await conn.execute(
            "DELETE FROM search_postings p USING unnest(%s::int[]) AS t(term_id)"
            " WHERE p.term_id = t.term_id AND p.doc_id = ANY(%s)",
            (list(per_term), doc_ids),
        )
        await conn.execute(
            "UPDATE search_meta SET n_docs = n_docs - %s, total_length = total_length - %s",
            (len(gone), sum(r[1] for r in gone)),
        )
        return len(gone)

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


def _tokenized(docs: Sequence[ToolDoc]) -> list[Counter[str]]:
    """Each document's BM25 term counts, from the text and tokenizer the in-memory retriever uses."""
    return [Counter(tokenize(document_text(doc))) for doc in docs]


def _doc_json(doc: ToolDoc) -> dict[str, Any]:
    return {
        "description": doc.description,
        "input_schema": dict(doc.input_schema),
        "server_description": doc.server_description,
    }


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


_POSTING = [("term_id", np.int32), ("impact", np.float32), ("doc_id", np.int32), ("tf", np.int16), ("length", np.int32)]
"""A ``search_postings`` row, in its column order and PostgreSQL types (int4, float4, int4, int2, int4)."""


def _champions(terms: list[np.ndarray], tfs: list[np.ndarray], lengths: np.ndarray, keep: int) -> np.ndarray:
    """For each term, the ``keep`` documents where its BM25 weight (without IDF) is highest.

    Returns a structured array (term_id, impact, doc_id, tf, length); doc ids are 1-based positions.
    """
    out = np.zeros(0, dtype=_POSTING)
    if not terms:
        return out
    counts = np.array([len(t) for t in terms])
    term_ids = np.concatenate(terms)
    tf = np.concatenate(tfs).astype(np.float32)
    doc_ids = np.repeat(np.arange(1, len(terms) + 1, dtype=np.int32), counts)
    avg = float(lengths.mean()) if lengths.sum() else 1.0
    norm = (K1 * (1 - B + B * lengths / avg)).astype(np.float32)
    impact = tf * (K1 + 1) / (tf + norm[doc_ids - 1])
    order = np.lexsort((doc_ids, -impact, term_ids))
    sorted_terms = term_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_terms[1:] != sorted_terms[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    kept = order[rank < keep]
    out = np.zeros(len(kept), dtype=out.dtype)
    out["term_id"], out["impact"], out["doc_id"] = term_ids[kept], impact[kept], doc_ids[kept]
    out["tf"], out["length"] = tf[kept], lengths[doc_ids[kept] - 1]
    return out


def _binary_copy(rows: np.ndarray) -> bytes:
    """``rows`` (a :data:`_POSTING` array) in PostgreSQL's binary COPY format, laid out by numpy (no per-row Python)."""
    fields = [(name, np.dtype(kind).newbyteorder(">")) for name, kind in _POSTING]
    record = np.dtype(
        [("count", ">i2")] + [part for name, kind in fields for part in ((f"{name}_size", ">i4"), (name, kind))]
    )
    body = np.zeros(len(rows), dtype=record)
    body["count"] = len(fields)
    for name, kind in fields:
        body[f"{name}_size"] = kind.itemsize
        body[name] = rows[name]
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
    return header + body.tobytes() + (-1).to_bytes(2, "big", signed=True)
