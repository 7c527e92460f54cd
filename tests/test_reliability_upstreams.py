"""Reliability II (issue 14), the upstream side: log lines reach only the client they belong to (item 10),
dropped tool names show in ``status`` (item 11), an upstream's stderr is prefixed, masked and shown only with
``-v`` (also seen), and a stdio request the SDK cannot parse is answered (item 7). Real processes throughout."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fastmcp import Client

from discovery_router.mcp.server import build_server
from discovery_router.upstreams.output import LogBudget
from tests.conftest import config_router
from tests.test_passthrough import library_stdio

REPO = Path(__file__).parent.parent
SECRET = "tok-77aa66bb55cc"

RAW_SERVER = r"""
import json, os, sys
print(f"raw server starting with {os.environ['RAW_TOKEN']}", file=sys.stderr, flush=True)
def tool(name):
    return {"name": name, "description": f"Look up {name}", "inputSchema": {"type": "object"}}
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "raw", "version": "1"}}
    elif msg["method"] == "tools/list":
        result = {"tools": [tool("lookup"), tool("lookup"), tool("bad\nname"), tool("other")]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "discovery_router", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )


def raw_config(tmp_path: Path) -> Path:
    script = tmp_path / "raw_server.py"
    script.write_text(RAW_SERVER)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "raw": {
                        "command": sys.executable,
                        "args": [str(script)],
                        "protocol": "legacy",
                        "env": {"RAW_TOKEN": SECRET},
                    }
                },
                "router": {"cache_dir": "none", "embedding_model": "none"},
            }
        )
    )
    return config


# -- 10: a log line reaches only the client whose call it is about ----------------------------------------


async def test_log_line_after_a_clients_answer_never_reaches_another_client():
    """Client A's call answers, then the (handshake-era, stdio) upstream logs about it while only client B's
    call is in flight: nothing ties the line to a call, so no client gets it."""
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def recorder(who: str) -> Any:
        async def on_log(message: Any) -> None:
            data = message.data
            seen[who].append(data.get("msg") if isinstance(data, dict) else str(data))

        return on_log

    router = config_router({"library": library_stdio()})
    app = build_server(router)
    async with Client(app, log_handler=recorder("a")) as a, Client(app, log_handler=recorder("b")) as b:
        await router.wait_ready()
        b_call = asyncio.create_task(b.call_tool("call_tool", {"name": "library/nap", "arguments": {"seconds": 3}}))
        await asyncio.sleep(0.5)
        answer = await a.call_tool("call_tool", {"name": "library/answer_then_log", "arguments": {"text": "A-only"}})
        assert answer.content[0].text == "answered A-only"
        assert (await b_call).content[0].text == "slept 3"
    assert not any("A-only" in line for line in seen["b"])
    assert not any("A-only" in line for line in seen["a"])  # not certain either: logged locally only


async def test_log_lines_during_a_single_clients_call_still_reach_it():
    logs: list[str] = []

    async def on_log(message: Any) -> None:
        logs.append(message.data.get("msg") if isinstance(message.data, dict) else str(message.data))

    router = config_router({"library": library_stdio()})
    async with Client(build_server(router), log_handler=on_log) as client:
        await client.call_tool("call_tool", {"name": "library/chatty", "arguments": {"steps": 2}})
    assert [line for line in logs if line.startswith("step")] == ["step 0 of 2", "step 1 of 2"]


async def test_a_stdio_fronts_one_client_gets_its_logs_on_back_to_back_calls(tmp_path: Path):
    """Over stdio the router has exactly one client, whatever its protocol era: a 2026-era client's
    requests each look like a new connection, yet the second call's log lines are still its own."""
    from fastmcp.client.transports import StdioTransport

    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"mcpServers": {"library": library_stdio()}, "router": {"cache_dir": "none", "embedding_model": "none"}}
        )
    )
    logs: list[str] = []

    async def on_log(message: Any) -> None:
        logs.append(message.data.get("msg") if isinstance(message.data, dict) else str(message.data))

    transport = StdioTransport(
        sys.executable,
        ["-m", "discovery_router", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    async with Client(transport, log_handler=on_log) as client:
        for steps in (1, 2):  # the second call starts right after the first one ended
            await client.call_tool("call_tool", {"name": "library/chatty", "arguments": {"steps": steps}})
    assert [line for line in logs if line.startswith("step")] == ["step 0 of 1", "step 0 of 2", "step 1 of 2"]


# -- 11: duplicates and refused names in status; stderr prefixed, masked, only with -v --------------------


def test_status_flags_duplicate_and_refused_tool_names_and_keeps_stderr_out(tmp_path: Path):
    config = raw_config(tmp_path)
    status = cli("--config", str(config), "status")
    assert status.returncode == 0, status.stderr
    assert "raw: tools listed twice (first kept): lookup" in status.stdout
    assert "raw: tools refused for invalid names: 'bad\\nname'" in status.stdout
    assert "raw server starting" not in status.stderr + status.stdout  # upstream stderr only with -v
    document = json.loads(cli("--config", str(config), "status", "--json").stdout)
    assert document[0]["duplicate_tools"] == ["lookup"] and document[0]["refused_tools"] == ["'bad\\nname'"]

    verbose = cli("--config", str(config), "-v", "status")
    assert "[raw] raw server starting with ***" in verbose.stderr
    assert SECRET not in verbose.stderr + verbose.stdout


# -- 7: a request with a lone surrogate over stdio gets a JSON-RPC error ------------------------------------


def test_stdio_request_with_a_lone_surrogate_is_answered_and_serving_goes_on(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "router": {"cache_dir": "none", "embedding_model": "none"}}))
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    raw = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    raw += (
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_tools","arguments":'
        b'{"query":"a\\ud800b"}}}\n'
    )
    raw += b'{"jsonrpc":"2.0","id":3,"method":"tools/list"}\n'
    process = subprocess.Popen(
        [sys.executable, "-m", "discovery_router", "--config", str(config), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(raw)
        process.stdin.flush()
        replies: dict[int, dict] = {}
        while 3 not in replies:  # bounded by the test timeout; a missing reply for id 2 fails below
            message = json.loads(process.stdout.readline())
            if "id" in message:
                replies[message["id"]] = message
        assert "result" in replies[3]  # still serving after the bad line
        assert 2 in replies and replies[2]["error"]["code"] in (-32600, -32602, -32700)
        assert "surrogate" in replies[2]["error"]["message"]
    finally:
        process.kill()
        process.wait(10)


# -- also seen: a flooding upstream's log lines are rate-limited here, never for the client ----------------


async def test_a_flooding_upstreams_log_lines_are_rate_limited_in_the_routers_log_not_for_the_client(caplog):
    """2,000 log notifications in one call: the calling client gets every one; the router's own log
    writes about the burst, then one 'N log lines suppressed' line."""
    import logging

    caplog.set_level(logging.INFO, logger="discovery_router.upstreams")
    received: list[str] = []

    async def on_log(message: Any) -> None:
        received.append(message.data.get("msg") if isinstance(message.data, dict) else str(message.data))

    router = config_router({"library": library_stdio()})
    async with Client(build_server(router), log_handler=on_log) as client:
        started = time.monotonic()
        await client.call_tool("call_tool", {"name": "library/chatty", "arguments": {"steps": 2000}}, timeout=120)
        elapsed = time.monotonic() - started
        await asyncio.sleep(2.0)  # the suppressed count is written a second after the first dropped line
    assert len([line for line in received if line.startswith("step")]) == 2000
    written = [r.getMessage() for r in caplog.records if "'msg': 'step" in r.getMessage()]
    assert 0 < len(written) <= LogBudget.BURST + LogBudget.RATE * elapsed + 1, (len(written), elapsed)
    reports = [r.getMessage() for r in caplog.records if "log lines suppressed" in r.getMessage()]
    assert reports and sum(int(m.split()[1]) for m in reports) == 2000 - len(written), reports


DYING_SERVER = r'''
import os, sys
from fastmcp import FastMCP
mcp = FastMCP("dying")
print("RuntimeError: out of disk", file=sys.stderr, flush=True)  # its last word, long before it dies

@mcp.tool
def die() -> str:
    """Exit mid-call."""
    os._exit(1)

mcp.run(show_banner=False)
'''


async def test_a_dead_childs_last_stderr_line_is_said_once(tmp_path: Path, caplog):
    """The reason a stdio child is gone names its last stderr line once (it was appended twice when the
    lost-connection reason, already explained, was explained again)."""
    import logging

    script = tmp_path / "dying.py"
    script.write_text(DYING_SERVER)
    caplog.set_level(logging.WARNING, logger="discovery_router.upstreams")
    router = config_router({"dying": {"command": sys.executable, "args": [str(script)]}})
    async with Client(build_server(router)) as client:
        result = await client.call_tool_mcp("call_tool", {"name": "dying/die"})
        assert result.is_error and result.content[0].text.count("last stderr line") == 1, result.content[0].text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("reconnecting" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.2)
    said = [r.getMessage() for r in caplog.records if "dying" in r.getMessage()]
    assert any("last stderr line: " in m for m in said), said
    assert all(m.count("last stderr line") <= 1 for m in said), said


NOISY_SERVER = r'''
import sys
from fastmcp import FastMCP
for i in range(3000):
    print(f"noise line {i}", file=sys.stderr)
sys.stderr.flush()
mcp = FastMCP("noisy")

@mcp.tool
def hello() -> str:
    """Say hello."""
    return "hello"

mcp.run(show_banner=False)
'''


async def test_a_flooding_upstreams_stderr_is_rate_limited_in_the_routers_log(tmp_path: Path, caplog):
    import logging

    script = tmp_path / "noisy.py"
    script.write_text(NOISY_SERVER)
    caplog.set_level(logging.INFO, logger="discovery_router.upstreams")
    started = time.monotonic()
    router = config_router({"noisy": {"command": sys.executable, "args": [str(script)]}})
    async with Client(build_server(router)) as client:
        assert (await client.call_tool("call_tool", {"name": "noisy/hello"})).content[0].text == "hello"
        await asyncio.sleep(2.0)
    elapsed = time.monotonic() - started
    written = [r.getMessage() for r in caplog.records if "noise line" in r.getMessage()]
    assert 0 < len(written) <= LogBudget.BURST + LogBudget.RATE * elapsed + 1, (len(written), elapsed)
    reports = [r.getMessage() for r in caplog.records if "stderr lines suppressed" in r.getMessage()]
    assert reports and reports[0].startswith("[noisy] ")
