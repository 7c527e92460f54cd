"""The upstream leg of a forwarded call (:mod:`discovery_router.upstreams.tool_call`).

The call is sent on the SDK session's dispatcher and its answer validated once into the SDK's result
type, then passed on as the upstream sent it: the router no longer re-checks structured content
against the tool's output schema (its client does), and a result that is not a tool result is that
call's error, not a lost connection. Both protocol eras towards the upstream.
"""

from __future__ import annotations

import asyncio
import json
import sys

import mcp_types
import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.tools.base import ToolResult

from discovery_router.errors import UpstreamCallError
from discovery_router.front import FrontContext
from discovery_router.router import Router
from discovery_router.upstreams.spec import UpstreamSpec
from discovery_router.upstreams.status import UpstreamState
from discovery_router._compat import session_task
from discovery_router.upstreams.tool_call import tool_call_params, watch_session
from tests.conftest import FAST, TESTS, config_router
from tests.library_upstream import build_library

PROTOCOLS = ["auto", "legacy"]
"""Towards the upstream: "auto" negotiates 2026-07-28 with an in-memory FastMCP server, "legacy" the handshake."""

COUNT_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def schema_breaker() -> FastMCP:
    """One tool whose structured content breaks the output schema it declares."""
    server = FastMCP("strict")

    @server.tool(output_schema=COUNT_SCHEMA)
    def count() -> ToolResult:
        """Count (badly)."""
        return ToolResult(
            content=[mcp_types.TextContent(type="text", text="n is seven")], structured_content={"n": "seven"}
        )

    return server


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_structured_content_that_breaks_its_output_schema_passes_through_unchanged(protocol: str):
    """The SDK's client refuses such a result (and the router then took the server for lost); the router
    forwards results unchanged, so it is forwarded and the calling client validates it against the schema
    it was shown."""
    router = Router({"strict": UpstreamSpec("strict", schema_breaker(), protocol=protocol)}, FAST)
    async with router:
        result = await router.call("strict/count", {})
        assert isinstance(result, mcp_types.CallToolResult)
        assert result.structured_content == {"n": "seven"} and result.content[0].text == "n is seven"
        assert [s.state for s in router.status()] == [UpstreamState.CONNECTED]


def token_probe() -> FastMCP:
    server = FastMCP("probe")

    @server.tool
    def token(ctx: Context) -> str:
        """The progress token this call came with."""
        meta = ctx.request_context.meta if ctx.request_context is not None else None
        return repr((meta or {}).get("progressToken"))

    return server


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_progress_reaches_the_caller_and_is_asked_for_only_when_it_has_a_handler(protocol: str):
    """A call whose client wants no progress carries no progress token (fastmcp's client sent one always)."""
    upstreams = {
        "library": UpstreamSpec("library", build_library(), protocol=protocol),
        "probe": UpstreamSpec("probe", token_probe(), protocol=protocol),
    }
    seen: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total))

    async with Router(upstreams, FAST) as router:
        done = await router.call("library/chatty", {"steps": 2}, front=FrontContext(progress=on_progress))
        assert done.content[0].text == "done 2" and seen == [(1, 2), (2, 2)]
        assert (await router.call("probe/token", {})).content[0].text == "None"
        asked = await router.call("probe/token", {}, front=FrontContext(progress=on_progress))
        assert asked.content[0].text != "None"


async def test_a_2026_era_ask_with_no_client_to_answer_it_is_refused_with_the_reason():
    """The ``InputRequiredResult`` is driven here when the caller cannot take it; with no client, the ask
    is refused and the upstream's answer to that is the call's error (as with fastmcp's ``call_tool_mcp``)."""
    async with Router({"library": build_library()}, FAST) as router:
        with pytest.raises(UpstreamCallError) as caught:
            await router.call("library/confirm_order", {"item": "tea"})
    assert "elicitation/create cannot be relayed" in str(caught.value) and "no client to ask" in str(caught.value)


async def test_a_malformed_result_is_the_calls_error_and_the_server_stays_connected():
    router = config_router({"raw": {"command": sys.executable, "args": [str(TESTS / "raw_upstream.py")]}})
    async with router:
        before = (await router.call("raw/pid", {})).content[0].text
        with pytest.raises(UpstreamCallError) as caught:
            await router.call("raw/malformed", {})
        message = str(caught.value)
        assert message.startswith("raw/malformed answered with a malformed result (")
        assert "not a list" not in message and "perhaps" not in message  # the values stay out
        assert [s.state for s in router.status()] == [UpstreamState.CONNECTED]
        assert (await router.call("raw/pid", {})).content[0].text == before  # same process: no restart


async def test_arguments_reach_the_upstream_as_the_client_sent_them():
    arguments = {"text": "ünï", "nested": {"none": None, "list": [1, 2.5, True, None]}, "empty": {}}
    router = config_router({"raw": {"command": sys.executable, "args": [str(TESTS / "raw_upstream.py")]}})
    async with router:
        result = await router.call("raw/echo", arguments)
    assert json.loads(result.content[0].text) == arguments


def test_first_leg_params_are_what_the_sdk_model_dumps():
    arguments = {"text": "hi", "n": 2, "deep": {"none": None, "list": [None, {"x": 1}]}}
    expected = mcp_types.CallToolRequestParams(name="echo", arguments=arguments).model_dump(
        by_alias=True, mode="json", exclude_none=True
    )
    assert tool_call_params("echo", arguments) == expected


def test_a_retry_carries_the_answers_and_the_state_in_their_wire_form():
    answers: mcp_types.InputResponses = {"q1": mcp_types.ElicitResult(action="accept", content={"quantity": 3})}
    params = tool_call_params("order", {"item": "tea"}, answers, "opaque-state")
    assert params["requestState"] == "opaque-state"
    assert params["inputResponses"] == {"q1": {"action": "accept", "content": {"quantity": 3}}}
    assert params["name"] == "order" and params["arguments"] == {"item": "tea"}


async def test_a_call_waiting_when_its_session_ends_gets_the_sessions_failure():
    """As fastmcp's session monitoring: a transport that fails in the session's task cannot leave a call waiting."""
    async with Client(token_probe()) as client:
        session = session_task(client)
        assert session is not None
        answer_never_comes = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(watch_session(client, answer_never_comes))
        await asyncio.sleep(0.05)
        session.cancel()  # the session ends under the call
        with pytest.raises(RuntimeError, match="session ended"):
            await asyncio.wait_for(waiting, 10)
        assert waiting.cancelling() == 0


async def test_a_cancel_from_outside_stays_a_cancel_and_a_finished_call_leaves_nothing_pending():
    async with Client(token_probe()) as client:
        done = await watch_session(client, asyncio.sleep(0, result="answered"))
        assert done == "answered" and asyncio.current_task().cancelling() == 0
        waiting = asyncio.create_task(watch_session(client, asyncio.sleep(60)))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not session_task(client).done()  # the connection is untouched
        assert not (await client.call_tool("token", {})).is_error
