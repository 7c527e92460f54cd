"""The stdio wire lane (discovery_router.mcp.wire_calls): a ``call_tool`` request read straight off the pipe
must get the answer the SDK's path gives, with progress, upstream logs, asks, confirmations and cancellation,
in both protocol eras; and what the lane cannot answer exactly as the SDK would stays on the SDK's path.

Every test runs a real ``discovery-router serve`` over stdio (``-v``: the lane logs each request it answers)
in front of a real stdio upstream, driven by fastmcp's client or by raw JSON-RPC lines.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from devkit.system import child_env
from discovery_router.mcp.server import build_server
from discovery_router.router import Router
from tests.conftest import FAST, stdio_entry
from tests.governance_support import audit_lines
from tests.test_passthrough import library_stdio
from tests.upstreams import build_weather

MODES = ["auto", "legacy"]  # 2026-07-28 per-request envelopes, and the handshake era
LANE = "is answered on the stdio wire lane"  # the lane's debug line per request it takes
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def _config(tmp_path: Path, servers: str | dict[str, Any], **router: Any) -> Path:
    """A config for ``serve``: ``servers`` is an upstream of tests/upstreams.py (as ``up``), or entries."""
    path = tmp_path / "config.json"
    settings = {"audit_log": str(tmp_path / "audit.jsonl"), "health_interval": 0, **router}
    entries = {"up": stdio_entry(servers)} if isinstance(servers, str) else servers
    path.write_text(json.dumps({"mcpServers": entries, "router": settings}))
    return path


def _serve_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "discovery_router", "--config", str(config), "serve", "-v"]


@asynccontextmanager
async def _served(
    tmp_path: Path, upstream: str | dict[str, Any], mode: str, **client: Any
) -> AsyncIterator[tuple[Client, Path]]:
    log = tmp_path / "serve.log"
    argv = _serve_argv(_config(tmp_path, upstream, **client.pop("router", {})))
    transport = StdioTransport(argv[0], argv[1:], env=child_env(), keep_alive=False, log_file=log)
    async with Client(transport, mode=mode, timeout=60, **client) as connected:
        yield connected, log


def _lane_answers(log: Path) -> int:
    return log.read_text().count(LANE)


def _wire(result: mcp_types.CallToolResult) -> dict[str, Any]:
    dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped.get("_meta", {}).pop(SERVER_INFO, None)  # stamped per hop in the 2026 era
    return dumped


@pytest.mark.parametrize("mode", MODES)
async def test_the_lane_answers_call_tool_as_the_sdk_path_does(tmp_path: Path, mode: str):
    calls = [
        ("get_forecast", {"city": "Oslo", "days": 2}),  # structuredContent
        ("radar_image", {"region": "north"}),  # an image block
        ("failing_station", {"station_id": "s1"}),  # isError with structuredContent
        ("echo", {"text": "é ✓ \U0001f600"}),
        ("get_forecast", {"days": "many"}),  # refused by the router before anything is sent
        ("no_such_tool", {}),
    ]
    async with Client(build_server(Router({"up": build_weather()}, FAST)), mode=mode) as sdk_path:
        expected = [
            _wire(await sdk_path.call_tool_mcp("call_tool", {"name": f"up/{tool}", "arguments": arguments}))
            for tool, arguments in calls
        ]
        expected_description = _wire(await sdk_path.call_tool_mcp("describe_tool", {"name": "up/get_forecast"}))
    async with _served(tmp_path, "weather", mode) as (client, log):
        got = [
            _wire(await client.call_tool_mcp("call_tool", {"name": f"up/{tool}", "arguments": arguments}))
            for tool, arguments in calls
        ]
        described = await client.call_tool_mcp("describe_tool", {"name": "up/get_forecast"})
        found = await client.call_tool_mcp("search_tools", {"query": "weather forecast for a city"})
        assert _lane_answers(log) == len(calls) + 2  # the lookups too: their protocol floor is paid each time
    assert got == expected
    assert _wire(described) == expected_description
    assert "up/get_forecast" in found.content[0].text
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["ok", "ok", "tool error", "ok", "invalid", "invalid"]


@pytest.mark.parametrize("mode", MODES)
async def test_progress_logs_and_asks_reach_the_client_from_the_lane(tmp_path: Path, mode: str):
    progress: list[tuple[float, float | None, str | None]] = []
    logged: list[str] = []
    asked: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_log(message: Any) -> None:
        logged.append(json.dumps(message.data))

    async def user(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked.append(message)
        return mcp_types.ElicitResult(action="accept", content={"quantity": 3})

    handlers = {"progress_handler": on_progress, "log_handler": on_log, "elicitation_handler": user}
    servers = {"up": stdio_entry("talker"), "lib": library_stdio("lib")}  # lib: a handshake-era upstream that asks
    async with _served(tmp_path, servers, mode, **handlers) as (client, log):
        said = await client.call_tool_mcp("call_tool", {"name": "up/chatty", "arguments": {"text": "hi"}})
        ordered = await client.call_tool_mcp("call_tool", {"name": "lib/confirm_order", "arguments": {"item": "tea"}})
        assert _lane_answers(log) >= 2  # a 2026-era client's retry leg (requestState) takes the SDK's path
    assert said.content[0].text == "said hi"
    assert [(value, total) for value, total, _ in progress] == [(1, 2), (2, 2)]
    assert any("heard hi" in line for line in logged) and any("almost done" in line for line in logged)
    assert asked == ["Order tea?"] and ordered.content[0].text == "ordered 3 x tea"


@pytest.mark.parametrize("mode", MODES)
async def test_a_destructive_call_is_confirmed_through_the_lane(tmp_path: Path, mode: str):
    answers = [True, False]

    async def user(message: str, response_type: Any, params: Any, context: Any) -> Any:
        return answers.pop(0)

    router = {"confirm_destructive": True}
    async with _served(tmp_path, "talker", mode, elicitation_handler=user, router=router) as (client, _log):
        done = await client.call_tool_mcp("call_tool", {"name": "up/wipe", "arguments": {"name": "a"}})
        declined = await client.call_tool_mcp("call_tool", {"name": "up/wipe", "arguments": {"name": "b"}})
    assert done.content[0].text == "wiped a" and not done.is_error
    assert declined.is_error and "declined" in declined.content[0].text
    assert [(line["outcome"], line.get("confirmed")) for line in audit_lines(tmp_path)][-2:] == [
        ("ok", True),
        ("refused", None),
    ]


class RawClient:
    """JSON-RPC lines to and from a ``serve`` process: what no client library lets a test do on purpose."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def answer(self, request_id: Any, timeout: float = 60) -> dict[str, Any]:
        """Read lines until the answer to ``request_id`` (every line read is kept in ``seen``)."""
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            assert line, "serve closed its output"
            message = json.loads(line)
            self.seen.append(message)
            if message.get("id") == request_id and "method" not in message:
                return message

    async def open(self, era: str) -> None:
        if era == "modern":
            await self.send({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {"_meta": ENVELOPE}})
            await self.answer(0)
        else:
            capabilities: dict[str, Any] = {}
            params = {
                "protocolVersion": "2025-11-25",
                "capabilities": capabilities,
                "clientInfo": ENVELOPE["io.modelcontextprotocol/clientInfo"],
            }
            await self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
            await self.answer(0)
            await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, request_id: Any, era: str, tool: str, arguments: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"name": "call_tool", "arguments": {"name": f"up/{tool}", "arguments": arguments}}
        if era == "modern":
            params["_meta"] = ENVELOPE
        return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


@asynccontextmanager
async def _raw_served(tmp_path: Path, upstream: str) -> AsyncIterator[tuple[RawClient, Path]]:
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            *_serve_argv(_config(tmp_path, upstream)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=child_env(),
        )
        try:
            yield RawClient(process), log
        finally:
            if process.returncode is None:
                assert process.stdin is not None
                process.stdin.close()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _until(condition: Any, timeout: float = 30) -> None:
    for _ in range(int(timeout * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_a_cancelled_call_is_not_answered_and_the_upstream_hears_the_cancel(tmp_path: Path, era: str):
    naps = tmp_path / "naps.txt"
    naps.touch()
    async with _raw_served(tmp_path, "talker") as (client, log):
        await client.open(era)
        await client.send(client.call(7, era, "nap", {"seconds": 60, "log": str(naps)}))
        await _until(lambda: "started" in naps.read_text())
        await client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})
        await _until(lambda: "cancelled" in naps.read_text())  # the router sent the cancel on
        await client.send(client.call(8, era, "chatty", {"text": "next"}))
        answer = await client.answer(8)
        await asyncio.sleep(0.5)  # an answer to 7 would have come first; give a late one time to show
        assert _lane_answers(log) == 2
    assert answer["result"]["content"][0]["text"] == "said next"
    assert [m for m in client.seen if m.get("id") == 7] == []
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["cancelled", "ok"]


async def test_requests_the_lane_cannot_answer_as_the_sdk_would_stay_on_the_sdks_path(tmp_path: Path):
    async with _raw_served(tmp_path, "talker") as (client, log):
        before = await _sent(client, client.call(1, "handshake", "chatty", {"text": "before"}))  # no handshake yet
        initialize = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        }
        await _sent(client, {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": initialize})
        early = await _sent(client, client.call(3, "handshake", "chatty", {"text": "early"}))  # lane: as the SDK
        await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        not_an_object = {**client.call(4, "handshake", "chatty", {}), "params": {"name": "call_tool", "arguments": [1]}}
        listed = await _sent(client, not_an_object)
        other_era = await _sent(client, client.call(5, "modern", "chatty", {"text": "enveloped"}))
        served = await _sent(client, client.call(6, "handshake", "chatty", {"text": "now"}))
        assert log.read_text().count(LANE) == 2  # early and served
    assert "error" in before  # the SDK refuses calls before the handshake, as it always did
    assert early["result"]["content"][0]["text"] == "said early"  # the SDK accepts calls once initialize is done
    assert listed["error"]["code"] == mcp_types.INVALID_PARAMS
    assert "error" in other_era  # a 2026-era request on a handshake-era connection is the SDK's to refuse
    assert served["result"]["content"][0]["text"] == "said now"


async def _sent(client: RawClient, message: dict[str, Any]) -> dict[str, Any]:
    await client.send(message)
    return await client.answer(message["id"])


def test_with_opentelemetry_tracing_configured_every_request_keeps_the_sdks_path(monkeypatch: pytest.MonkeyPatch):
    """The lane opens no server span; a process exporting traces keeps the SDK's path so its traces stay whole."""
    from opentelemetry import trace

    from discovery_router.mcp.wire_calls import WireCalls

    class Exporting(trace.TracerProvider):  # any provider but the API's default proxy
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return trace.NoOpTracer()

    mcp = build_server(Router({"up": build_weather()}, FAST))
    with monkeypatch.context() as patched:
        patched.setattr(trace, "get_tracer_provider", lambda: Exporting())
        assert WireCalls.for_app(mcp, writer=None) is None
    assert WireCalls.for_app(mcp, writer=None) is not None  # the API's default provider: nothing is exported
    assert WireCalls.for_app(mcp, writer=None) is not None  # a lane's own middleware does not stop the next


async def test_the_lane_can_be_switched_off_and_the_sdk_answers_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from discovery_router.paths import WIRE_LANE_ENV_VAR

    monkeypatch.setenv(WIRE_LANE_ENV_VAR, "off")
    async with _raw_served(tmp_path, "talker") as (client, log):
        await client.open("modern")
        answer = await _sent(client, client.call(1, "modern", "chatty", {"text": "sdk"}))
        assert log.read_text().count(LANE) == 0 and f"{WIRE_LANE_ENV_VAR}=off" in log.read_text()
    assert answer["result"]["content"][0]["text"] == "said sdk"
