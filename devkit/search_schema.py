"""Stand-in for the team migration runner in the search tests and benchmark, until both land together.

:func:`create_search_database` makes a fresh database on a running server and applies
``discovery_router/team/migrations/002_search.sql`` to it, as ``discovery_router.team.migrate`` will.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import discovery_router

SEARCH_MIGRATION = Path(discovery_router.__file__).parent / "team" / "migrations" / "002_search.sql"


def create_search_database(url: str, prefix: str = "search") -> str:
    """A new database beside ``url``'s with the search tables; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = make_conninfo(**{**conninfo_to_dict(url), "dbname": name})
    with psycopg.connect(target) as conn:
        conn.execute(SEARCH_MIGRATION.read_bytes())
    return target


def drop_database(url: str) -> None:
    """Remove a database :func:`create_search_database` made (connecting to the server's ``postgres`` database)."""
    params = conninfo_to_dict(url)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(params["dbname"]))))
