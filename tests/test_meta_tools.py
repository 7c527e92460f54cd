"""The three meta-tools, driven through a real MCP client against in-memory upstreams."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest
from fastmcp import Client

from discovery_router.router import Router
from discovery_router.mcp.server import build_server

from tests.conftest import FAST
from tests.upstreams import PNG_1PX, build_notes


def dump(result) -> dict:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def test_lists_exactly_three_tools(client: Client):
    tools = await client.list_tools()
    assert sorted(t.name for t in tools) == ["call_tool", "describe_tool", "search_tools"]


async def test_search_returns_compact_ids_without_schemas(client: Client):
    result = await client.call_tool_mcp("search_tools", {"query": "weather forecast for a city"})
    text = result.content[0].text
    first = text.splitlines()[0]
    assert first.startswith("weather/get_forecast: Get the weather forecast")
    assert "inputSchema" not in text and "properties" not in text
    assert result.structured_content is None  # no duplicate payload for the model to pay for


async def test_search_limit_and_server_filter(client: Client):
    result = await client.call_tool_mcp("search_tools", {"query": "echo text back", "limit": 1, "server": "notes"})
    assert result.content[0].text.splitlines() == ["notes/echo: Echo text back (notes edition)."]


async def test_search_unknown_server_is_an_error(client: Client):
    result = await client.call_tool_mcp("search_tools", {"query": "x", "server": "nope"})
    assert result.is_error and "Unknown server 'nope'" in result.content[0].text
    assert "weather" in result.content[0].text


async def test_describe_gives_full_schema_and_output_schema(client: Client):
    result = await client.call_tool_mcp("describe_tool", {"name": "weather/get_forecast"})
    lines = result.content[0].text.splitlines()
    assert lines[:2] == ["weather/get_forecast", "Get the weather forecast for a city."]
    schemas = {key: json.loads(value) for key, _, value in (line.partition(": ") for line in lines[2:])}
    assert schemas["inputSchema"]["required"] == ["city"]
    assert schemas["inputSchema"]["properties"]["city"] == {"description": "City name", "type": "string"}
    assert set(schemas["outputSchema"]["properties"]) == {"city", "celsius", "summary"}
    assert "title" not in schemas["outputSchema"]  # generated titles are dropped; constraints stay


async def test_call_returns_structured_content_unchanged(client: Client, weather):
    direct = await Client(weather).__aenter__()
    try:
        expected = await direct.call_tool_mcp("get_forecast", {"city": "Oslo", "days": 2})
    finally:
        await direct.__aexit__(None, None, None)
    routed = await client.call_tool_mcp(
        "call_tool", {"name": "weather/get_forecast", "arguments": {"city": "Oslo", "days": 2}}
    )
    assert (
        routed.structured_content
        == expected.structured_content
        == {"city": "Oslo", "celsius": 21.5, "summary": "sunny for 2 day(s)"}
    )
    assert dump(routed)["content"] == dump(expected)["content"]
    assert routed.is_error is False


async def test_call_passes_images_through(client: Client):
    result = await client.call_tool_mcp("call_tool", {"name": "weather/radar_image", "arguments": {"region": "north"}})
    assert [b.type for b in result.content] == ["text", "image"]
    assert result.content[1].data == PNG_1PX and result.content[1].mime_type == "image/png"


async def test_upstream_error_result_keeps_its_content_and_is_error(client: Client):
    result = await client.call_tool_mcp("call_tool", {"name": "failing_station", "arguments": {"station_id": "s1"}})
    assert result.is_error is True
    assert result.content[0].text == "station s1 is offline"
    assert result.structured_content == {"station": "s1", "ok": False}


async def test_invalid_arguments_rejected_before_forwarding(client: Client, weather):
    result = await client.call_tool_mcp("call_tool", {"name": "weather/get_forecast", "arguments": {"days": "two"}})
    text = result.content[0].text
    assert result.is_error
    assert "'city' is a required property" in text
    assert "days: 'two' is not of type 'integer'" in text
    assert weather.calls == []


async def test_stringified_arguments_are_accepted(client: Client, weather):
    args = json.dumps({"route": json.dumps({"from": "A", "to": "B"}), "stops": '["x", "y"]'})
    result = await client.call_tool_mcp("call_tool", {"name": "weather/plan_trip", "arguments": args})
    assert not result.is_error, result.content
    assert result.structured_content == {"route": {"from": "A", "to": "B"}, "stops": ["x", "y"]}


async def test_string_that_is_not_an_object_is_rejected(client: Client, weather):
    result = await client.call_tool_mcp("call_tool", {"name": "weather/get_forecast", "arguments": "[1, 2]"})
    assert result.is_error and "expected an object" in result.content[0].text
    assert weather.calls == []


async def test_unknown_name_suggests_closest_ids(client: Client):
    result = await client.call_tool_mcp("call_tool", {"name": "weather/get_forcast", "arguments": {}})
    assert result.is_error
    assert "Did you mean: weather/get_forecast" in result.content[0].text


async def test_ambiguous_bare_name_lists_candidates(client: Client):
    result = await client.call_tool_mcp("call_tool", {"name": "echo", "arguments": {"text": "hi"}})
    assert result.is_error
    assert "weather/echo" in result.content[0].text and "notes/echo" in result.content[0].text


async def test_unique_bare_name_is_accepted(client: Client):
    result = await client.call_tool_mcp("call_tool", {"name": "create_note", "arguments": {"title": "t"}})
    assert result.content[0].text == "created t"


async def test_progress_is_forwarded(client: Client):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await client.call_tool_mcp(
        "call_tool", {"name": "weather/slow_report", "arguments": {"steps": 3}}, progress_handler=on_progress
    )
    assert result.content[0].text == "report done in 3 steps"
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


@pytest.mark.parametrize("tool", ["search_tools", "describe_tool", "call_tool"])
async def test_meta_tool_descriptions_guide_the_model(client: Client, tool: str):
    described = {t.name: t.description for t in await client.list_tools()}[tool]
    assert "search_tools" in described or tool == "search_tools"
    assert re.search(r"\bid\b", described)
    assert tool != "search_tools" or "<server>/<tool>" in described  # it says what an id looks like


async def test_client_cancellation_reaches_the_upstream(client: Client, weather):
    call = asyncio.create_task(client.call_tool_mcp("call_tool", {"name": "weather/nap", "arguments": {"seconds": 30}}))
    for _ in range(100):
        if {"tool": "nap", "event": "started"} in weather.calls:
            break
        await asyncio.sleep(0.02)
    call.cancel()
    for _ in range(100):
        if {"tool": "nap", "event": "cancelled"} in weather.calls:
            break
        await asyncio.sleep(0.02)
    assert {"tool": "nap", "event": "cancelled"} in weather.calls


async def test_router_can_be_stopped_and_started_again(weather):
    router = Router({"weather": weather, "notes": build_notes()}, FAST)
    for _ in range(2):
        async with Client(build_server(router)) as client:
            result = await client.call_tool_mcp("call_tool", {"name": "create_note", "arguments": {"title": "again"}})
            assert result.content[0].text == "created again"


async def test_ids_copied_with_backticks_or_quotes_resolve(client: Client):
    """Models copy ids out of the descriptions' markdown, backticks included."""
    for wrapped in ("`weather/get_forecast`", "'weather/get_forecast'", ' "weather/get_forecast" '):
        described = await client.call_tool_mcp("describe_tool", {"name": wrapped})
        assert not described.is_error and described.content[0].text.startswith("weather/get_forecast\n")
    called = await client.call_tool_mcp("call_tool", {"name": "`notes/echo`", "arguments": {"text": "hi"}})
    assert not called.is_error


async def test_no_match_mentions_the_server_filter_only_when_one_was_given(client: Client):
    unfiltered = await client.call_tool_mcp("search_tools", {"query": "zzqx vvbn"})
    assert unfiltered.content[0].text == "No tools matched. Try other words."
    filtered = await client.call_tool_mcp("search_tools", {"query": "zzqx vvbn", "server": "notes"})
    assert "drop the server filter" in filtered.content[0].text


async def test_a_search_naming_a_failed_server_says_it_exists_but_is_down(weather):
    from discovery_router.config.loader import parse_config
    from discovery_router.router import Router
    from tests.conftest import FAST

    config = parse_config(
        {"mcpServers": {"jira": {"command": "x", "env": {"T": "${JIRA_TOKEN_UNSET}"}}}}, environ={}, strict=False
    )
    router = Router({"weather": weather, **config.servers}, FAST)
    async with Client(build_server(router)) as c:
        result = await c.call_tool_mcp("search_tools", {"query": "create a jira ticket"})
    text = result.content[0].text
    assert "Server 'jira' exists but is down:" in text and "JIRA_TOKEN_UNSET is not set" in text


async def test_server_info_reports_the_package_version(client: Client):
    """serverInfo.version was fastmcp's own version."""
    from discovery_router import __version__

    assert client.server_info.version == __version__


# -- issue 13: the limit, argument mistakes, tools/list bytes ---------------------------------------


async def test_search_limit_default_and_maximum_come_from_the_router_settings(weather):
    settings = dataclasses.replace(FAST, search_limit=2, max_search_limit=3)
    router = Router({"weather": weather, "notes": build_notes()}, settings)
    async with Client(build_server(router)) as client:
        [search] = [tool for tool in await client.list_tools() if tool.name == "search_tools"]
        limit = search.input_schema["properties"]["limit"]
        assert (limit["default"], limit["maximum"], limit["minimum"]) == (2, 3, 1)
        default = await client.call_tool_mcp("search_tools", {"query": "weather forecast radar notes echo"})

        def hits(result) -> list[str]:  # tool lines; a weak-match note may follow them
            return [line for line in result.content[0].text.splitlines() if not line.startswith("(")]

        assert len(hits(default)) == 2  # the configured default, not a hard-coded 5
        many = await client.call_tool_mcp("search_tools", {"query": "weather forecast radar notes echo", "limit": 3})
        assert len(hits(many)) == 3


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "call_tool",
            {"name": "weather/get_forecast", "args": {"city": "Oslo"}},
            "call_tool takes `name` and `arguments` (not `args`).",
        ),
        (
            "search_tools",
            {"query": "weather", "limit": 0},
            "search_tools takes `query`, `limit`, `server` and `steps` (`limit` must be at least 1, not 0).",
        ),
        (
            "search_tools",
            {"query": "weather", "limit": 26},
            "search_tools takes `query`, `limit`, `server` and `steps` (`limit` must be at most 25, not 26).",
        ),
        ("describe_tool", {"id": "weather/get_forecast"}, "describe_tool takes `name` (`name` is missing; not `id`)."),
    ],
)
async def test_meta_tool_argument_mistakes_say_what_the_tool_takes(
    client: Client, tool: str, arguments: dict, expected: str
):
    result = await client.call_tool_mcp(tool, arguments)
    assert result.is_error
    assert result.content[0].text == expected  # one sentence: no pydantic report, no URL


async def test_tools_list_carries_no_empty_fastmcp_meta(client: Client):
    listed = await client.list_tools_mcp()
    wire = json.dumps(dump(listed))
    assert '"fastmcp"' not in wire and '"tags"' not in wire
    assert all("_meta" not in tool for tool in dump(listed)["tools"])


async def test_router_search_refuses_a_limit_below_one(router: Router):
    from discovery_router.errors import RouterError

    with pytest.raises(RouterError, match=r"^limit must be at least 1 \(got 0\)\.$"):  # the CLI's --limit 0
        await router.search("weather", 0)


async def test_search_with_steps_gives_each_step_its_tools_once(client: Client):
    result = await client.call_tool_mcp(
        "search_tools",
        {
            "query": "check the forecast for Oslo and keep a note of it",
            "steps": ["get the weather forecast for a city", "create a note"],
            "limit": 2,
        },
    )
    lines = result.content[0].text.splitlines()
    assert lines[0] == "[1] get the weather forecast for a city"
    assert lines[1].startswith("weather/get_forecast: ")
    second = lines.index("[2] create a note")
    assert lines[second + 1].startswith("notes/create_note: ")
    ids = [line.split(":")[0] for line in lines if not line.startswith("[")]
    assert len(ids) == len(set(ids)) and len(lines) <= 2 + 2 * 2  # a tool once, at most `limit` per step


async def test_a_weak_best_match_is_flagged_and_a_good_one_is_not(client: Client):
    weak = await client.call_tool_mcp("search_tools", {"query": "weather satellite launch schedule orbit"})
    assert weak.content[0].text.splitlines()[-1].startswith("(weak matches")
    good = await client.call_tool_mcp("search_tools", {"query": "weather forecast for a city"})
    assert "weak" not in good.content[0].text


async def test_search_description_asks_for_the_plan_as_steps(client: Client):
    tool = {t.name: t for t in await client.list_tools()}["search_tools"]
    assert "steps" in tool.description
    assert tool.input_schema["properties"]["steps"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}


def test_a_step_block_gives_its_best_tool_the_full_summary_and_the_rest_a_short_one():
    import mcp_types

    from discovery_router.catalog import ToolEntry
    from discovery_router.mcp.render import STEP_RUNNER_UP_CHARS, search_results
    from discovery_router.catalog import Matches

    long = "Retrieve historical financial time series data for instruments, including open, high, low and close."
    entries = [
        ToolEntry("fin", mcp_types.Tool(name=n, description=long, inputSchema={"type": "object"}))
        for n in ("series", "quote")
    ]
    text = search_results(Matches(entries, steps=("get prices",), groups=(tuple(entries),), weak_steps=(False,)), 96)
    header, best, runner_up = text.splitlines()
    assert header == "[1] get prices"
    assert len(best.split(": ", 1)[1]) > STEP_RUNNER_UP_CHARS >= len(runner_up.split(": ", 1)[1])
    assert runner_up.endswith("series data…")  # cut on a whole word
