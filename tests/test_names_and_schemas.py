"""Awkward names and schemas: collisions, odd characters, $ref, invalid and huge schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastmcp import FastMCP
from fastmcp.tools.base import Tool, ToolResult

from discovery_router.errors import AmbiguousToolError, InvalidArgumentsError
from discovery_router.router import Router
from tests.conftest import FAST


class RawTool(Tool):
    """A tool with a hand-written inputSchema that echoes its arguments as JSON."""

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return ToolResult(content=json.dumps(arguments, sort_keys=True))


def raw_server(name: str, tools: dict[str, dict[str, Any]]) -> FastMCP:
    server = FastMCP(name)
    for tool_name, schema in tools.items():
        server.add_tool(RawTool(name=tool_name, description=f"The {tool_name} tool.", parameters=schema))
    return server


REF_SCHEMA = {
    "type": "object",
    "$defs": {
        "Point": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
        }
    },
    "properties": {"start": {"$ref": "#/$defs/Point"}, "end": {"$ref": "#/$defs/Point"}},
    "required": ["start"],
}
DEEP_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"leaf": {"type": "integer"}}}
for _ in range(30):
    DEEP_SCHEMA = {"type": "object", "properties": {"next": DEEP_SCHEMA}}
HUGE_ENUM = {"type": "object", "properties": {"code": {"enum": [f"C{i}" for i in range(5000)]}}}


@pytest.fixture
async def odd_router():
    servers = {
        "geo.maps": raw_server(
            "geo",
            {
                "draw line": REF_SCHEMA,
                "files/read": {"type": "object", "properties": {"path": {"type": "string"}}},
                "météo_prévision": {"type": "object", "properties": {"ville": {"type": "string"}}},
                "deep": DEEP_SCHEMA,
                "codes": HUGE_ENUM,
                "broken": {"type": "object", "properties": {"n": {"type": "not-a-type"}}},
                "untyped": {"type": "object", "properties": {"anything": {}}},
            },
        ),
        "other": raw_server("other", {"files/read": {"type": "object"}}),
    }
    async with Router(servers, FAST) as router:
        await router.wait_ready()
        yield router


async def test_ids_with_dots_slashes_spaces_and_non_ascii(odd_router: Router):
    assert (await odd_router.describe("geo.maps/draw line")).name == "draw line"
    assert (await odd_router.describe("geo.maps/files/read")).server == "geo.maps"
    assert (await odd_router.describe("météo_prévision")).id == "geo.maps/météo_prévision"
    with pytest.raises(AmbiguousToolError, match="geo.maps/files/read.*other/files/read"):
        await odd_router.describe("files/read")
    result = await odd_router.call("geo.maps/météo_prévision", {"ville": "Zürich"})
    assert json.loads(result.content[0].text) == {"ville": "Zürich"}
    hits = await odd_router.search("prévision météo")
    assert hits[0].id == "geo.maps/météo_prévision"


async def test_ref_schemas_are_validated_through_their_definitions(odd_router: Router):
    ok = await odd_router.call("geo.maps/draw line", {"start": {"x": 1, "y": 2}})
    assert json.loads(ok.content[0].text) == {"start": {"x": 1, "y": 2}}
    with pytest.raises(InvalidArgumentsError, match=r"start: 'y' is a required property"):
        await odd_router.call("geo.maps/draw line", {"start": {"x": 1}})


async def test_deep_and_huge_schemas_are_indexed_and_validated(odd_router: Router):
    args: dict[str, Any] = {"leaf": "not an int"}
    for _ in range(30):
        args = {"next": args}
    with pytest.raises(InvalidArgumentsError, match="'not an int' is not of type 'integer'"):
        await odd_router.call("geo.maps/deep", args)
    with pytest.raises(InvalidArgumentsError, match="is not one of"):
        await odd_router.call("geo.maps/codes", {"code": "nope"})
    assert (await odd_router.call("geo.maps/codes", {"code": "C4999"})).is_error is False
    assert "geo.maps/codes" in [h.id for h in await odd_router.search("codes tool")]


async def test_an_invalid_schema_breaks_nothing_else(odd_router: Router):
    # The upstream's schema is unusable for validation: the call goes through for it to judge.
    result = await odd_router.call("geo.maps/broken", {"n": 1})
    assert json.loads(result.content[0].text) == {"n": 1}
    assert (await odd_router.call("geo.maps/untyped", {"anything": [1]})).is_error is False
    assert len(odd_router.catalog) == 8
