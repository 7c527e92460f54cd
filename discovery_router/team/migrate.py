"""Numbered SQL migrations (``migrations/NNN_name.sql``), applied in order, once per database.

Replicas starting together all call :func:`migrate`; a session-level advisory lock makes them take turns, so
exactly one applies each file and the others find it recorded in ``schema_migrations``. Each file runs in
its own transaction: a failed one leaves nothing half-made and is retried on the next start.
Other rooms add their files here (``002_search.sql``); this runner knows nothing about what they contain.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from discovery_router.errors import SharedStateError
from discovery_router.team.url import scrub, where

MIGRATIONS = Path(__file__).parent / "migrations"
REQUIRED_EXTENSIONS = {"vector": "pgvector"}
"""Extensions the schema needs, with the package a DBA installs for each."""
LOCK_KEY = int.from_bytes(hashlib.sha256(b"discovery-router/migrations").digest()[:8], "big", signed=True)
"""The advisory lock migrations run under (any 64-bit number no other application uses)."""
_FILE_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations(folder: Path = MIGRATIONS) -> list[Migration]:
    """The migration files in ``folder`` by version; a misnamed or duplicate number is a packaging bug."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise SharedStateError(f"migration file {path.name!r} is not named NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise SharedStateError(f"migrations {found[version].path.name} and {path.name} share the number {version}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


async def connect(url: str, **kwargs: object) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """One connection, or an error that names the database (never the password) and the driver's reason."""
    try:
        return await psycopg.AsyncConnection.connect(url, **kwargs)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise SharedStateError(f"cannot connect to the team {where(url)}: {scrub(str(exc).strip(), url)}") from None


async def migrate(url: str, folder: Path = MIGRATIONS) -> list[int]:
    """Bring the database up to the newest migration; returns the versions this call applied."""
    applied: list[int] = []
    async with await connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            await ensure_extensions(conn, url)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for migration in migrations(folder):
                if migration.version in done:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.path.read_bytes())
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (migration.version, migration.name),
                        )
                except psycopg.Error as exc:
                    raise SharedStateError(
                        f"migration {migration.path.name} failed in the team {where(url)}: "
                        f"{scrub(str(exc).strip(), url)}"
                    ) from None
                applied.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied


async def ensure_extensions(conn: psycopg.AsyncConnection[tuple[object, ...]], url: str) -> None:
    """Create each :data:`REQUIRED_EXTENSIONS` entry if missing, or say exactly what a DBA must run."""
    for extension, package in REQUIRED_EXTENSIONS.items():
        cursor = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (extension,))
        if await cursor.fetchone() is not None:
            continue
        try:
            await conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))
        except psycopg.Error as exc:
            database = where(url)
            raise SharedStateError(
                f'the PostgreSQL extension "{extension}" ({package}) is missing from the team {database} and '
                f"cannot be created by this user ({scrub(str(exc).strip(), url)}). Ask a database administrator "
                f"to install {package} on the server and run, connected to that database as a superuser: "
                f"CREATE EXTENSION IF NOT EXISTS {extension};"
            ) from None
