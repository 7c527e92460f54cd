"""Property tests: whatever a model sends to the meta-tools, the answer is a result or a clear error."""

from __future__ import annotations

from typing import Any

from fastmcp import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery_router.router import Router
from discovery_router.mcp.server import build_server
from tests.conftest import FAST
from tests.upstreams import build_notes, build_weather

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["weather/get_forecast", "notes/create_note", "echo", "weather/", "/", "weather/crash"]),
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_server = build_server(Router({"weather": build_weather(), "notes": build_notes()}, FAST))


def assert_clean(result: Any) -> None:
    assert result.content, "every answer carries content"
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text


@FUZZ
@given(
    query=st.text(max_size=2000),
    limit=st.integers(min_value=-5, max_value=100),
    server=st.none() | st.text(max_size=20),
)
async def test_search_never_crashes(query: str, limit: int, server: str | None):
    async with Client(_server) as client:
        result = await client.call_tool_mcp("search_tools", {"query": query, "limit": limit, "server": server})
        assert_clean(result)


@FUZZ
@given(name=names)
async def test_describe_never_crashes(name: str):
    async with Client(_server) as client:
        assert_clean(await client.call_tool_mcp("describe_tool", {"name": name}))


@FUZZ
@given(
    name=names.filter(lambda n: "crash" not in n.strip()),
    arguments=st.none()
    | st.text(max_size=200)
    | st.dictionaries(st.text(max_size=10), json_values, max_size=5)
    | json_values,
)
async def test_call_never_crashes(name: str, arguments: Any):
    async with Client(_server) as client:
        result = await client.call_tool_mcp("call_tool", {"name": name, "arguments": arguments})
        assert_clean(result)
        after = await client.call_tool_mcp("call_tool", {"name": "notes/create_note", "arguments": {"title": "ok"}})
        assert after.content[0].text == "created ok"
