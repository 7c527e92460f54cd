"""``call_tool`` answered at the low-level server (discovery_router.mcp.calls): what the lean path must keep.

fastmcp middleware still sees every call (the stop drain and the client notifier are middleware), a
middleware's refusal is the call's answer, the upstream's result arrives whole in both protocol eras, and
the pinned tools (which reach ``call_tool`` through ``FastMCP.call_tool``) share the same forward.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import mcp_types
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult

from discovery_router.mcp.server import build_server
from discovery_router.router import Router
from tests.conftest import FAST
from tests.upstreams import build_notes

SERVER_INFO = "io.modelcontextprotocol/serverInfo"


class Recorder(Middleware):
    """Records the hooks a request passes; refuses ``tools/call`` when told to."""

    def __init__(self, refuse: str | None = None) -> None:
        self.seen: list[tuple[str, str, Any]] = []
        self.refuse = refuse

    async def on_request(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        self.seen.append(("request", context.method or "", getattr(context.message, "name", None)))
        return await call_next(context)

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        self.seen.append(("call_tool", context.method or "", context.message.name))
        if self.refuse:
            raise ToolError(self.refuse)
        return await call_next(context)


def _meta_upstream() -> FastMCP:
    server = FastMCP("meta")

    @server.tool
    def report() -> ToolResult:
        """A report with metadata on the result and on a block."""
        return ToolResult(
            content=[
                mcp_types.TextContent(type="text", text="r", _meta={"block": 1}),
                mcp_types.ResourceLink(type="resource_link", uri="file:///x", name="x"),
            ],
            structured_content={"a": 1},
            meta={"trace": "t-1"},
        )

    return server


def _wire(result: mcp_types.CallToolResult) -> dict[str, Any]:
    dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped.get("_meta", {}).pop(SERVER_INFO, None)  # stamped per hop in the 2026 era
    return dumped


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_middleware_sees_each_call_once_with_every_hook(mode: str):
    recorder = Recorder()
    mcp = build_server(Router({"notes": build_notes()}, FAST))
    mcp.add_middleware(recorder)
    async with Client(mcp, mode=mode) as client:
        result = await client.call_tool_mcp("call_tool", {"name": "notes/echo", "arguments": {"text": "hi"}})
    assert not result.is_error and "hi" in result.content[0].text
    calls = [entry for entry in recorder.seen if entry[1] == "tools/call"]
    assert calls == [("request", "tools/call", "call_tool"), ("call_tool", "tools/call", "call_tool")]


async def test_a_middleware_refusal_is_the_calls_error_result_and_nothing_runs():
    recorder = Recorder(refuse="the router is shutting down")
    router = Router({"notes": build_notes()}, FAST)
    mcp = build_server(router)
    mcp.add_middleware(recorder)
    async with Client(mcp) as client:
        result = await client.call_tool_mcp("call_tool", {"name": "notes/echo", "arguments": {"text": "hi"}})
    assert result.is_error and result.content[0].text == "the router is shutting down"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_upstreams_result_arrives_whole(mode: str):
    async with Client(_meta_upstream(), mode=mode) as direct:
        expected = _wire(await direct.call_tool_mcp("report", {}))
    async with Client(build_server(Router({"m": _meta_upstream()}, FAST)), mode=mode) as client:
        routed = _wire(await client.call_tool_mcp("call_tool", {"name": "m/report"}))
    assert routed == expected
    assert routed["_meta"]["trace"] == "t-1" and routed["content"][0]["_meta"] == {"block": 1}


async def test_a_refused_call_is_an_error_result_naming_the_reason():
    async with Client(build_server(Router({"notes": build_notes()}, FAST))) as client:
        result = await client.call_tool_mcp("call_tool", {"name": "notes/nope", "arguments": {}})
    assert result.is_error and "notes/nope" in result.content[0].text


async def test_a_pinned_tool_goes_through_the_same_forward():
    settings = dataclasses.replace(FAST, pinned=("notes/echo",))
    async with Client(build_server(Router({"notes": build_notes()}, settings))) as client:
        names = {tool.name for tool in await client.list_tools()}
        pinned = next(name for name in names if name.endswith("echo"))
        result = await client.call_tool_mcp(pinned, {"text": "pinned"})
    assert not result.is_error and "pinned" in result.content[0].text
