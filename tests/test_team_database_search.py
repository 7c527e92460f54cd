"""Search past the in-memory range, wired: a Router on a team database answers from PostgreSQL's search tables.

Real routers over real in-memory MCP servers and the session's PostgreSQL 18 + pgvector; the threshold
(``router.database_search_from``) is set low so a small catalog crosses it.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from discovery_router.router import Router
from devkit.databases import create_database
from devkit.postgres import EmbeddedPostgres
from tests.test_team_store import change_tools, found, team
from tests.upstreams import build_notes, build_weather

QUERIES = ["forecast for a city", "create a note", "radar image of a region", "echo some text", "search my notes"]


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> str:
    """A fresh, migrated database on the session's cluster."""
    return create_database(postgres.url)


def _not_asked(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("the in-memory index was asked")


def _rows(database: str) -> dict[str, int]:
    """The search tables' tools: id -> doc_id."""
    with psycopg.connect(database) as conn:
        return {f"{s}/{n}": d for s, n, d in conn.execute("SELECT server, name, doc_id FROM search_tools")}


async def _answers(router: Router) -> list[list[str]]:
    return [[entry.id for entry in await router.search(q, limit=5)] for q in QUERIES]


async def _in_memory(router: Router) -> list[list[str]]:
    await router.indexer.up_to_date()
    catalog, index = router.indexer.served
    return [[catalog.resolve(h.doc.id).id for h in index.search(q, 5)] for q in QUERIES]


async def test_past_the_threshold_search_answers_from_postgres_and_follows_changes(
    database: str, monkeypatch: pytest.MonkeyPatch
):
    upstream = build_notes()
    settings = team(database, database_search_from=10)
    async with Router({"weather": build_weather(), "extra": upstream}, settings) as router:
        await router.wait_ready()
        assert len(router.catalog) >= 10
        expected = await _in_memory(router)
        plan = ["forecast for a city", "create a note"]
        catalog, index = router.indexer.served
        expected_steps = [[catalog.resolve(h.doc.id).id for h in g] for g in index.search_steps("plan a trip", plan, 3)]
        with monkeypatch.context() as patch:
            patch.setattr(router.index, "search", _not_asked)
            patch.setattr(router.index, "search_steps", _not_asked)
            got = await _answers(router)  # none from the in-memory index
            steps = await router.search("plan a trip", steps=plan)
        # BM25 only, Postgres ranks the tools with a query term; in memory the server pass pads the list
        # with the best server's other tools (scored 0). The ranked tools agree, in order.
        assert all(answer and answer == memory[: len(answer)] for answer, memory in zip(got, expected)), got
        assert steps.groups is not None
        groups = [[entry.id for entry in group] for group in steps.groups]
        assert all(group and group == memory[: len(group)] for group, memory in zip(groups, expected_steps)), groups
        assert [group[0] for group in groups] == ["weather/get_forecast", "extra/create_note"]
        before = _rows(database)
        assert set(before) == {entry.id for entry in router.catalog.entries}  # the tables hold the served catalog

        await change_tools(router, upstream, "delta_tool")
        assert "extra/delta_tool" in await found(router, "delta tool")
        after = _rows(database)
        assert set(after) == {entry.id for entry in router.catalog.entries}
        weather = {tool: doc for tool, doc in before.items() if tool.startswith("weather/")}
        assert {tool: after[tool] for tool in weather} == weather  # only the changed server was rewritten


async def test_below_the_threshold_search_stays_in_memory(database: str):
    async with Router({"weather": build_weather()}, team(database)) as router:
        await router.wait_ready()
        assert await found(router, "forecast")
        assert _rows(database) == {}  # the default threshold (100k tools) is far off


async def test_a_hybrid_catalog_ranks_in_postgres_as_in_memory(database: str):
    settings = team(database, database_search_from=1, embedding_model=None)
    async with Router({"weather": build_weather(), "extra": build_notes()}, settings) as router:
        await router.wait_ready()
        assert await router.wait_hybrid(timeout=120)
        expected = await _in_memory(router)
        assert await _answers(router) == expected
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT count(embedding) FROM search_tools").fetchone() == (len(router.catalog),)


async def test_search_falls_back_to_memory_when_the_database_cannot_answer(
    database: str, caplog: pytest.LogCaptureFixture
):
    async with Router({"weather": build_weather()}, team(database, database_search_from=1)) as router:
        await router.wait_ready()
        assert router.team is not None
        expected = await _in_memory(router)
        await router.team.store.close()  # the pool is gone: every database search fails
        assert await _answers(router) == expected
        assert "searching in memory" in caplog.text
