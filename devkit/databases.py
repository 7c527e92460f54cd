"""Fresh databases on a running PostgreSQL for tests and benchmarks, migrated by the product's own runner.

:func:`create_database` makes a new database beside ``url``'s and applies every
migration in ``discovery_router/team/migrations`` through ``discovery_router.team.migrate``
(the code a replica runs at start), so tests and the scale benchmark see the real schema.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from discovery_router.team.migrate import migrate


def create_database(url: str, prefix: str = "search") -> str:
    """A new, migrated database on ``url``'s server; returns its URL. Callable with or without a running loop."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = make_conninfo(**{**conninfo_to_dict(url), "dbname": name})
    with ThreadPoolExecutor(max_workers=1) as worker:  # its own event loop: the caller's may be running
        worker.submit(asyncio.run, migrate(target)).result()
    return target


def drop_database(url: str) -> None:
    """Remove a database :func:`create_database` made (connecting to the server's ``postgres`` database)."""
    params = conninfo_to_dict(url)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(params["dbname"]))))
