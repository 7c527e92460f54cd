"""Every query the team database answers: catalog, change sequence, embeddings, audit.

Async, over one ``psycopg_pool`` pool; no router logic here (that is :mod:`discovery_router.team.replica`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from discovery_router.errors import SharedStateError
from discovery_router.team.migrate import connect, migrate
from discovery_router.team.url import scrub, where

CATALOG_CHANNEL = "discovery_router_catalog"
"""The NOTIFY channel a catalog change is announced on; the payload is the change's ``seq``."""


@dataclass(frozen=True)
class ServerTools:
    """One server's tool list as the team last saw it."""

    source: str
    server: str
    seq: int
    tools: list[dict[str, Any]]


@dataclass(frozen=True)
class SharedTool:
    """One tool as published: its fields for SQL, and its search document."""

    tool: dict[str, Any]
    document: str


class SharedStore:
    """The team database: migrate, then a small pool of connections with the ``vector`` type registered."""

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        self.url = url
        self._pool: AsyncConnectionPool[Any] | None = None
        self._max = max_connections

    async def open(self, timeout: float = 30.0) -> None:
        await migrate(self.url)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url, min_size=1, max_size=self._max, open=False, configure=register_vector_async, name="team"
        )
        try:
            await pool.open(wait=True, timeout=timeout)
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            raise SharedStateError(
                f"cannot connect to the team {where(self.url)}: {scrub(str(exc), self.url)}"
            ) from None
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        if self._pool is None:
            raise SharedStateError("the team database is not open")
        return self._pool

    # -- catalog and change sequence --------------------------------------------------

    async def publish(self, source: str, server: str, tools: Sequence[SharedTool]) -> int | None:
        """Store ``server``'s tools; the new change's ``seq`` (announced by NOTIFY), or None if nothing changed.

        A per-source transaction lock orders replicas publishing the same server at once.
        """
        listed = [t.tool for t in tools]
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (source,))
            cursor = await conn.execute("SELECT tools FROM team_servers WHERE source = %s", (source,))
            row = await cursor.fetchone()
            if row is not None and row[0] == listed:
                return None
            cursor = await conn.execute(
                "INSERT INTO team_changes (source, server, tool_count) VALUES (%s, %s, %s) RETURNING seq",
                (source, server, len(listed)),
            )
            seq_row = await cursor.fetchone()
            assert seq_row is not None
            seq = int(seq_row[0])
            await conn.execute(
                "INSERT INTO team_servers (source, server, seq, tools) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (source) DO UPDATE"
                " SET server = EXCLUDED.server, seq = EXCLUDED.seq, tools = EXCLUDED.tools, updated_at = now()",
                (source, server, seq, Jsonb(listed)),
            )
            await conn.execute("DELETE FROM team_tools WHERE source = %s", (source,))
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO team_tools (source, position, name, description, input_schema, annotations, document)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            source,
                            position,
                            t.tool["name"],
                            t.tool.get("description") or "",
                            Jsonb(t.tool.get("inputSchema") or {}),
                            Jsonb(t.tool["annotations"]) if t.tool.get("annotations") is not None else None,
                            t.document,
                        )
                        for position, t in enumerate(tools)
                    ],
                )
            await conn.execute("SELECT pg_notify(%s, %s)", (CATALOG_CHANNEL, str(seq)))
        return seq

    async def servers(self, sources: Iterable[str]) -> dict[str, ServerTools]:
        """The stored tool lists of these sources (those the team has seen)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT source, server, seq, tools FROM team_servers WHERE source = ANY(%s)", (list(sources),)
            )
            return {row[0]: ServerTools(row[0], row[1], int(row[2]), row[3]) for row in await cursor.fetchall()}

    async def changes_since(self, seq: int) -> list[tuple[int, str]]:
        """``(seq, source)`` of every change after ``seq``, oldest first."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute("SELECT seq, source FROM team_changes WHERE seq > %s ORDER BY seq", (seq,))
            return [(int(row[0]), row[1]) for row in await cursor.fetchall()]

    async def latest_seq(self) -> int:
        async with self.pool.connection() as conn:
            cursor = await conn.execute("SELECT coalesce(max(seq), 0) FROM team_changes")
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

    # -- embeddings -------------------------------------------------------------------

    async def vectors(self, model_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these text keys for ``model_id`` (the keys the team has embedded)."""
        if not keys:
            return {}
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT text_key, embedding FROM team_embeddings WHERE model_id = %s AND text_key = ANY(%s)",
                (model_id, list(keys)),
            )
            return {row[0]: _array(row[1]) for row in await cursor.fetchall()}

    async def add_vectors(self, model_id: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Store new vectors; a key another replica stored meanwhile keeps its first vector."""
        if not vectors:
            return
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO team_embeddings (model_id, text_key, embedding) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(model_id, key, np.asarray(vector, dtype=np.float32)) for key, vector in vectors.items()],
            )

    # -- confirmation nonces ----------------------------------------------------------------

    async def spend_nonce(self, nonce: str, expires_at: datetime, *, sweep: bool = False) -> bool:
        """True the first time any replica presents ``nonce``; ``sweep`` also deletes expired ones."""
        async with self.pool.connection() as conn:
            if sweep:
                await conn.execute("DELETE FROM team_spent_nonces WHERE expires_at < now()")
            cursor = await conn.execute(
                "INSERT INTO team_spent_nonces (nonce, expires_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (nonce, expires_at),
            )
            return cursor.rowcount == 1

    # -- audit ------------------------------------------------------------------------

    async def add_audit(self, records: Sequence[tuple[datetime, str, dict[str, Any]]]) -> None:
        """Append ``(time, replica, record)`` rows to the one trail."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO team_audit (time, server, tool, outcome, replica, record) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (when, record.get("server"), record.get("tool"), record.get("outcome"), replica, Jsonb(record))
                    for when, replica, record in records
                ],
            )


def _array(value: Any) -> np.ndarray:
    """pgvector hands back a ``Vector`` (binary results) or an array; we want float32 numpy."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


async def read_audit(
    url: str, *, since: datetime | None = None, server: str | None = None, limit: int | None = 50
) -> list[dict[str, Any]]:
    """The shared trail's matching records, oldest first (the newest ``limit``), each naming its ``replica``.

    One connection, no migration: reading needs no rights to create anything; a database no replica has
    used yet has no trail.
    """
    async with await connect(url) as conn:
        cursor = await conn.execute("SELECT to_regclass('team_audit') IS NOT NULL")
        exists = await cursor.fetchone()
        if not exists or not exists[0]:
            return []
        query = "SELECT record, replica FROM team_audit WHERE true"
        params: list[Any] = []
        if since is not None:
            query += " AND time >= %s"
            params.append(since)
        if server is not None:
            query += " AND server = %s"
            params.append(server)
        query += " ORDER BY time DESC, id DESC"
        if limit:
            query += " LIMIT %s"
            params.append(limit)
        cursor = await conn.execute(query.encode(), params)
        rows: list[Any] = await cursor.fetchall()
    records = [{**row[0], "replica": row[1]} for row in rows]  # jsonb arrives as a dict
    return records[::-1]
