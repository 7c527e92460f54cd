"""Team deployment, part A: the state replicas share in PostgreSQL (catalog, embeddings, audit, change sequence).

Two in-process routers on one real database (the session's embedded PostgreSQL 18 + pgvector) stand for two
replicas; every test gets a database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from fastmcp import FastMCP

from devkit.postgres import EmbeddedPostgres
from discovery_router.cli import main
from discovery_router.config.loader import parse_config
from discovery_router.config.model import RouterConfig, RouterSettings
from discovery_router.errors import ConfigError, SharedStateError
from discovery_router.router import Router
from discovery_router.team.migrate import migrations, migrate
from discovery_router.team.replica import FOLLOWER
from discovery_router.team.store import SharedStore, SharedTool
from discovery_router.team.url import redacted_url
from tests.conftest import FAST
from tests.upstreams import build_notes, build_weather

REPO = Path(__file__).parent.parent
PASSWORD = "pw-Zq81-never-shown"


def with_password(url: str, password: str = PASSWORD) -> str:
    """The same URL with a password (the test cluster trusts local connections, so any password works)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")


def new_database(postgres: EmbeddedPostgres, owner: str = "postgres") -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"'.encode())
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> str:
    """A fresh, empty database on the session's cluster: its URL (with a password in it)."""
    return with_password(new_database(postgres))


def team(database: str, **overrides) -> RouterSettings:
    return replace(FAST, database_url=database, **overrides)


async def eventually(check: Callable[[], bool], what: str, attempts: int = 300) -> None:
    """Poll ``check`` (bounded; a failure says what never happened, never how long it took)."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@contextlib.asynccontextmanager
async def _fails_at_start(_server: FastMCP) -> AsyncIterator[None]:
    raise RuntimeError("this replica cannot reach the server")
    yield


def unreachable() -> FastMCP:
    """A server that fails at start: as a replica sees a server it cannot reach (same cache key as any FastMCP)."""
    return FastMCP("unreachable", lifespan=_fails_at_start)


def add_tool(server: FastMCP, name: str) -> None:
    server.tool(lambda: "extra", name=name, description=f"An extra tool called {name.replace('_', ' ')}")


async def change_tools(router: Router, server: FastMCP, name: str) -> None:
    """``server`` gains a tool and ``router``'s connection re-lists (as on notifications/tools/list_changed)."""
    add_tool(server, name)
    router.upstreams["extra"].request_refresh()
    await eventually(lambda: f"extra/{name}" in router.catalog, f"{name} was listed")


async def found(router: Router, query: str) -> list[str]:
    return [entry.id for entry in await router.search(query, limit=10)]


# -- migrations ---------------------------------------------------------------------------


async def test_migrations_apply_once_when_replicas_start_together(database: str):
    results = await asyncio.gather(*(migrate(database) for _ in range(5)))
    everything = sorted(m.version for m in migrations())
    assert sorted(v for applied in results for v in applied) == everything  # each file once, by one of them
    assert await migrate(database) == []  # idempotent
    with psycopg.connect(database) as conn:
        recorded = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert recorded == everything
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (1,)


async def test_a_vector_extension_the_user_cannot_create_names_what_the_dba_must_run(postgres: EmbeddedPostgres):
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS plain_user")
        conn.execute("CREATE ROLE plain_user LOGIN")  # not a superuser: pgvector is not a trusted extension
    url = new_database(postgres, owner="plain_user").replace("postgresql://postgres@", "postgresql://plain_user@")
    name = url.rsplit("/", 1)[1]
    with pytest.raises(SharedStateError) as caught:
        await migrate(with_password(url).replace("postgres:", "plain_user:"))
    message = str(caught.value)
    assert '"vector"' in message and "pgvector" in message
    assert f'database "{name}"' in message
    assert "CREATE EXTENSION IF NOT EXISTS vector;" in message
    assert PASSWORD not in message


# -- the catalog and its change sequence ----------------------------------------------------


async def test_catalog_round_trip_and_a_sequence_number_per_change(database: str):
    store = SharedStore(database)
    await store.open()
    try:
        tools = [
            {"name": "get_forecast", "description": "Forecast for a city", "inputSchema": {"type": "object"}},
            {"name": "drop", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": True}},
        ]
        shared = [SharedTool(t, f"document of {t['name']}") for t in tools]
        first = await store.publish("weather@abc", "weather", shared)
        assert first is not None
        assert await store.publish("weather@abc", "weather", shared) is None  # the same list is no change
        second = await store.publish("weather@abc", "weather", shared[:1])
        assert second is not None and second > first
        back = await store.servers(["weather@abc", "unknown@000"])
        assert list(back) == ["weather@abc"]
        assert back["weather@abc"].tools == tools[:1] and back["weather@abc"].seq == second
        assert await store.changes_since(0) == [(first, "weather@abc"), (second, "weather@abc")]
        assert await store.changes_since(second) == []
        async with store.pool.connection() as conn:
            cursor = await conn.execute("SELECT name, description, document FROM team_tools")
            assert await cursor.fetchall() == [("get_forecast", "Forecast for a city", "document of get_forecast")]
    finally:
        await store.close()


async def test_a_replica_publishes_its_tools_with_their_search_documents(database: str):
    async with Router({"weather": build_weather()}, team(database)) as router:
        await router.wait_ready()
        assert router.team is not None
        await eventually(lambda: router.team.seq > 0 or _published(database), "the catalog was published")
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT name, document FROM team_tools ORDER BY position").fetchall()
    assert [name for name, _ in rows] == [tool.name for tool in router.listed_tools("weather")]
    forecast = dict(rows)["get_forecast"]
    assert "forecast" in forecast.casefold() and "weather" in forecast  # the BM25 document: server and description


def _published(database: str) -> bool:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM team_changes").fetchone()
        return bool(row and row[0])


async def test_a_change_on_one_replica_reaches_the_others_search(database: str):
    """B cannot reach the server itself, so what it searches is what A listed."""
    settings, upstream = team(database), build_notes()
    async with Router({"extra": upstream}, settings) as a:
        await a.wait_ready()
        await eventually(lambda: _published(database), "A published its tools")
        async with Router({"extra": unreachable()}, settings) as b:
            assert "extra/create_note" in await found(b, "create note")  # served from the shared catalog at once
            assert b.team is not None
            await eventually(b.team.listening.is_set, "B follows changes")
            await change_tools(a, upstream, "delta_tool")
            await eventually(lambda: "extra/delta_tool" in b.catalog, "B learned of A's change")
            assert "extra/delta_tool" in await found(b, "delta tool")
            assert b.upstreams["extra"].status.state.value != "connected"  # from the team, not B's own server

        # A replica started after the change serves it from its first search.
        async with Router({"extra": unreachable()}, settings) as c:
            assert "extra/delta_tool" in await found(c, "delta tool")


async def test_a_replica_whose_change_feed_was_down_catches_up_from_the_sequence(database: str):
    settings, upstream = team(database), build_notes()
    async with Router({"extra": upstream}, settings) as a, Router({"extra": unreachable()}, settings) as b:
        await a.wait_ready()
        assert a.team is not None and b.team is not None
        await eventually(lambda: _published(database), "A published its tools")
        await eventually(b.team.listening.is_set, "B follows changes")
        await b.team.catch_up()
        for task in list(b.team._tasks):  # B's feed goes down: every NOTIFY from now on is lost to it
            if task.get_name() == FOLLOWER:
                task.cancel()
        before = await b.team.store.latest_seq()
        await change_tools(a, upstream, "gamma_tool")
        while await b.team.store.latest_seq() == before:  # A's publish is in the background
            await asyncio.sleep(0.05)
        assert "extra/gamma_tool" not in b.catalog
        assert await b.team.catch_up() == 1  # from the sequence, no NOTIFY involved
        assert "extra/gamma_tool" in await found(b, "gamma tool")


async def test_the_change_feed_reconnects_after_the_database_drops_it(
    database: str, postgres: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    settings, upstream = team(database), build_notes()
    async with Router({"extra": upstream}, settings) as a, Router({"extra": unreachable()}, settings) as b:
        await a.wait_ready()
        assert b.team is not None
        await eventually(b.team.listening.is_set, "B follows changes")
        with psycopg.connect(postgres.url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND datname = %s",
                (database.rsplit("/", 1)[1],),
            ).fetchall()
        assert killed
        await eventually(lambda: not b.team.listening.is_set(), "B noticed its feed was cut")
        await eventually(b.team.listening.is_set, "B reopened its feed")
        await change_tools(a, upstream, "omega_tool")
        await eventually(lambda: "extra/omega_tool" in b.catalog, "B learned the change after reconnecting")
    assert "the change feed was lost" in caplog.text and PASSWORD not in caplog.text


# -- embeddings ----------------------------------------------------------------------------


async def test_the_second_replica_encodes_nothing(database: str):
    """No disk cache on either: the only way B can skip encoding is the team's vectors."""
    settings = team(database, embedding_model=None, cache_dir="none")
    async with Router({"weather": build_weather(), "notes": build_notes()}, settings) as a:
        await a.wait_ready()
        assert await a.wait_hybrid(timeout=120)
        total = len(a.catalog)
        assert a.indexer.embedding_counts.encoded == total > 0
    async with Router({"weather": build_weather(), "notes": build_notes()}, settings) as b:
        await b.wait_ready()
        assert await b.wait_hybrid(timeout=120)
        assert b.indexer.embedding_counts.encoded == 0
        assert b.indexer.embedding_counts.cached == total
        assert "notes/create_note" in [e.id for e in await b.search("jot down a memo", limit=3)]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM team_embeddings").fetchone() == (total,)


async def test_one_server_changing_encodes_only_its_new_tools():
    """The incremental path, with no cache anywhere: the served index's vectors are reused."""
    upstream = build_notes()
    router = Router({"extra": upstream, "weather": build_weather()}, replace(FAST, embedding_model=None))
    async with router:
        await router.wait_ready()
        assert await router.wait_hybrid(timeout=120)
        first = router.indexer.embedding_counts.encoded
        await change_tools(router, upstream, "delta_tool")
        await router.wait_hybrid(timeout=120)
        await eventually(lambda: router.indexer.embedding_counts.encoded > first, "the new tool was embedded")
        assert router.indexer.embedding_counts.encoded == first + 1


# -- audit -----------------------------------------------------------------------------------


async def test_calls_through_two_replicas_read_back_as_one_trail(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    settings = team(database, audit_log=str(tmp_path / "local-audit.jsonl"))
    a = Router({"weather": build_weather()}, settings)
    b = Router({"weather": build_weather()}, settings)
    async with a, b:
        assert a.team is not None and b.team is not None
        a.team.replica_id, b.team.replica_id = "replica-a", "replica-b"
        await a.call("weather/get_forecast", {"city": "Oslo"})
        await b.call("weather/get_forecast", {"city": "Lima"})
        await a.call("weather/get_forecast", {"city": "Pune"})
    assert len((tmp_path / "local-audit.jsonl").read_text().splitlines()) == 3  # the JSONL file is still written

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "router": {"database_url": "${TEAM_DB}"}}))
    monkeypatch.setenv("TEAM_DB", database)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--config", str(config), "audit", "--json", "--limit", "0"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["replica"], r["tool"], r["outcome"]) for r in records] == [
        ("replica-a", "get_forecast", "ok"),
        ("replica-b", "get_forecast", "ok"),
        ("replica-a", "get_forecast", "ok"),
    ]
    assert await asyncio.to_thread(main, ["--config", str(config), "audit", "--json", "--server", "nowhere"]) == 0
    assert json.loads(capsys.readouterr().out) == []


# -- settings, secrets, the driver -------------------------------------------------------------


def test_database_url_expands_variables_and_its_password_is_redacted():
    config = parse_config(
        {"mcpServers": {}, "router": {"database_url": "postgresql://team:${DB_PASSWORD}@db.internal:5432/router"}},
        environ={"DB_PASSWORD": PASSWORD},
    )
    assert config.settings.database_url == f"postgresql://team:{PASSWORD}@db.internal:5432/router"
    assert PASSWORD not in config.redactor(f"connecting with {config.settings.database_url}")
    assert redacted_url(config.settings.database_url) == "postgresql://team:***@db.internal:5432/router"
    assert PASSWORD not in repr(config.settings) and PASSWORD not in str(config.settings)
    with pytest.raises(ConfigError) as caught:
        parse_config({"mcpServers": {}, "router": {"database_url": "${NOT_SET_ANYWHERE}"}}, environ={})
    assert "router.database_url" in str(caught.value) and "NOT_SET_ANYWHERE" in str(caught.value)


async def test_an_unreachable_database_is_a_clear_error_without_the_password(caplog: pytest.LogCaptureFixture):
    from devkit.system import free_port

    url = f"postgresql://team:{PASSWORD}@127.0.0.1:{free_port()}/router"
    caplog.set_level(logging.DEBUG)
    router = Router({"weather": build_weather()}, team(url))
    with pytest.raises(SharedStateError) as caught:
        await router.start()
    await router.stop()
    message = str(caught.value)
    assert "cannot connect to the team" in message and 'database "router"' in message
    assert PASSWORD not in message and PASSWORD not in caplog.text


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        check=False,
    )


def test_without_a_url_the_driver_is_never_imported_and_with_one_its_absence_names_the_extra():
    """One interpreter (imports are slow): first no URL, then a URL with psycopg made unimportable."""
    code = (
        "import os, sys\n"
        "from discovery_router.router import Router\n"
        "from discovery_router.config.model import RouterSettings\n"
        "from discovery_router.errors import SharedStateError\n"
        "settings = RouterSettings(cache_dir='none', embedding_model='none')\n"
        "assert Router({}, settings).team is None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool', 'pgvector')))\n"
        "sys.modules['psycopg'] = None\n"
        f"os.environ['DISCOVERY_ROUTER_DATABASE_URL'] = 'postgresql://team:{PASSWORD}@127.0.0.1:1/router'\n"
        "try:\n"
        "    Router({}, settings)\n"
        "except SharedStateError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "DISCOVERY_ROUTER_DATABASE_URL": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    no_driver, missing = done.stdout.strip().split("\n", 1)
    assert no_driver == "[]"
    assert "discovery-router[team]" in missing and "psycopg" in missing
    assert PASSWORD not in done.stdout + done.stderr


def test_every_migration_ships_in_the_package():
    import tomllib
    from fnmatch import fnmatch

    from discovery_router.team.migrate import MIGRATIONS

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = globs["discovery_router.team"]
    files = [m.path.relative_to(MIGRATIONS.parent).as_posix() for m in migrations()]
    assert files and all(any(fnmatch(f, g) for g in shipped) for f in files)


async def test_a_server_added_by_a_reload_is_searchable_from_the_team_catalog(database: str):
    settings, upstream = team(database), build_notes()
    async with Router({"extra": upstream}, settings) as a:
        await a.wait_ready()
        await eventually(lambda: _published(database), "A published its tools")
        async with Router({}, settings) as b:
            await b.apply_config(RouterConfig(servers={"extra": unreachable()}, settings=settings))  # type: ignore[dict-item]
            assert "extra/create_note" in b.catalog


async def test_a_connected_replica_relists_its_own_server_when_another_saw_a_change(database: str):
    """B reaches the server too: told of A's change, it re-lists through its own connection (what its calls reach)."""
    settings, upstream = team(database), build_notes()
    async with Router({"extra": upstream}, settings) as a, Router({"extra": upstream}, settings) as b:
        await a.wait_ready()
        await b.wait_ready()
        assert b.team is not None
        await eventually(b.team.listening.is_set, "B follows changes")
        await change_tools(a, upstream, "delta_tool")  # only A's connection is asked to re-list
        await eventually(lambda: "extra/delta_tool" in b.catalog, "B re-listed after A's change")
        assert b.upstreams["extra"].status.state.value == "connected"
        await b.call("extra/delta_tool", {})  # B's own connection knows the tool
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM team_changes").fetchone() == (2,)  # first listing, A's change


def test_an_index_rebuilt_after_one_change_tokenizes_only_the_changed_documents():
    from discovery_router.search.base import ToolDoc
    from discovery_router.search.bm25 import BM25Retriever
    from discovery_router.search.index import SearchIndex
    from discovery_router.search.text import document_text

    counted: list[str] = []

    def text_of(doc: ToolDoc) -> str:
        counted.append(doc.name)
        return document_text(doc)

    docs = [ToolDoc("files", f"tool_{i}", f"reads file number {i}", {"type": "object"}) for i in range(50)]
    before = SearchIndex(docs, BM25Retriever(text_of=text_of))
    counted.clear()
    changed = [*docs[:10], ToolDoc("files", "tool_10", "deletes a file", {}), *docs[11:], ToolDoc("git", "log", "")]
    after = SearchIndex(changed, BM25Retriever(text_of=text_of), previous=before)
    assert sorted(counted) == ["log", "tool_10"]
    fresh = SearchIndex(changed, BM25Retriever(text_of=text_of))
    for query in ("delete a file", "read file 7", "git log"):
        assert [h.doc.id for h in after.search(query, 5)] == [h.doc.id for h in fresh.search(query, 5)]
        assert after._retriever.scores(query).tolist() == fresh._retriever.scores(query).tolist()


async def test_a_confirmation_nonce_spent_on_one_replica_is_spent_on_all(database: str):
    import time

    async with Router({"weather": build_weather()}, team(database)) as a, Router({}, team(database)) as b:
        expires = time.time() + 600
        assert await a.governance.nonces.spend("nonce-1", expires) is True
        assert await b.governance.nonces.spend("nonce-1", expires) is False  # a replay on another replica
        assert await a.governance.nonces.spend("nonce-1", expires) is False
        assert await b.governance.nonces.spend("nonce-2", expires) is True


async def test_an_accepted_confirmation_replayed_on_another_replica_runs_nothing(database: str):
    """The replicas' in-process confirmation flow, with the spent nonces in the team database (nothing shared by
    hand): leg 2 runs on B, and the same answer again on B or on A is asked again."""
    from fastmcp import Client
    import mcp_types

    from discovery_router.mcp.server import build_server
    from discovery_router.mcp.state_key import request_state_security
    from tests.governance_upstreams import build_inventory
    from tests.test_replicas import CONFIRM, DELETE, KEY, _accept, _yes

    settings = team(database, confirm_destructive=True, audit_log="none")
    inventories = [build_inventory(), build_inventory()]
    routers = [Router({"inv": inventory}, settings) for inventory in inventories]
    security = request_state_security(replace(settings, state_key=KEY), environ={})
    async with (
        Client(build_server(routers[0], state_security=security), elicitation_handler=_yes) as a,
        Client(build_server(routers[1], state_security=security), elicitation_handler=_yes) as b,
    ):
        asked = await a.session.call_tool("call_tool", DELETE, allow_input_required=True)
        assert isinstance(asked, mcp_types.InputRequiredResult) and CONFIRM in asked.input_requests
        done = await b.session.call_tool(
            "call_tool", DELETE, input_responses=_accept(), request_state=asked.request_state, allow_input_required=True
        )
        assert isinstance(done, mcp_types.CallToolResult)
        for replica in (b, a):
            replayed = await replica.session.call_tool(
                "call_tool",
                DELETE,
                input_responses=_accept(),
                request_state=asked.request_state,
                allow_input_required=True,
            )
            assert isinstance(replayed, mcp_types.InputRequiredResult)
    assert [len(inventory.calls) for inventory in inventories] == [0, 1]
