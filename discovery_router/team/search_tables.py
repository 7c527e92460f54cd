"""The catalog's search tables in PostgreSQL, written: a bulk load, and each server's tools replaced or deleted.

The write side of :class:`~discovery_router.team.search.PostgresSearchIndex` (which reads them): the tables of
``migrations/002_search.sql`` hold each tool's text, BM25 term statistics, its champion postings and its
``halfvec``. :meth:`SearchTables.bulk_load` (``COPY``, then the HNSW index built once, after the load) and
:meth:`SearchTables.replace_server` / :meth:`SearchTables.delete_server` for a catalog change keep every
statistic exact (N, total length, each term's df), so the next search sees the change.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pgvector import HalfVector
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from discovery_router.search.base import ToolDoc
from discovery_router.search.bm25 import BM25Retriever
from discovery_router.search.text import destructive_name, document_text, tokenize

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


class Pool(Protocol):
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


class SearchTables:
    """Writes the search tables over connections of ``pool`` (see the module docstring)."""

    def __init__(self, pool: Pool, settings: ScaleSettings | None = None) -> None:
        self.pool = pool
        self.settings = settings or ScaleSettings()

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


# -- helpers --------------------------------------------------------------------------------------------


def _tokenized(docs: Sequence[ToolDoc]) -> list[Counter[str]]:
    """Each document's BM25 term counts, from the text and tokenizer the in-memory retriever uses."""
    return [Counter(tokenize(document_text(doc))) for doc in docs]


def _doc_json(doc: ToolDoc) -> dict[str, Any]:
    return {
        "description": doc.description,
        "input_schema": dict(doc.input_schema),
        "server_description": doc.server_description,
    }


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
