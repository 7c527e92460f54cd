"""``discovery-router serve`` as a real process: stdio and streamable HTTP, real upstreams behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from devkit.system import serve_http_argv
from tests.conftest import free_port, stdio_entry, wait_for_port

REPO = Path(__file__).parent.parent


def write_config(tmp_path: Path, servers: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"mcpServers": servers, "router": {"connect_timeout": 20}}))
    return path


async def test_serve_stdio_with_real_upstreams(tmp_path: Path):
    config = write_config(tmp_path, {"time": {"command": "mcp-server-time"}, "notes": stdio_entry("notes")})
    transport = StdioTransport(
        sys.executable,
        ["-m", "discovery_router", "--config", str(config), "serve"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    async with Client(transport) as client:
        tools = await client.list_tools()
        assert sorted(t.name for t in tools) == ["call_tool", "describe_tool", "search_tools"]
        found = await client.call_tool("search_tools", {"query": "get the current time"})
        assert "time/get_current_time" in found.content[0].text.splitlines()[0]
        result = await client.call_tool_mcp(
            "call_tool", {"name": "time/get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}
        )
        assert result.structured_content["timezone"] == "Asia/Tokyo"
        note = await client.call_tool_mcp("call_tool", {"name": "notes/create_note", "arguments": {"title": "n"}})
        assert note.content[0].text == "created n"


def test_serve_http_answers_on_localhost(tmp_path: Path):
    config = write_config(tmp_path, {"notes": stdio_entry("notes")})
    port = free_port()
    process = subprocess.Popen(
        serve_http_argv(config, port),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)

        async def talk() -> list[str]:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                result = await client.call_tool("call_tool", {"name": "create_note", "arguments": {"title": "h"}})
                return [result.content[0].text] + [t.name for t in await client.list_tools()]

        import asyncio

        assert asyncio.run(talk()) == ["created h", "search_tools", "describe_tool", "call_tool"]
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert out == b""  # nothing but protocol ever goes to stdout


def test_serve_http_logs_no_line_per_request_unless_verbose(tmp_path: Path):
    """uvicorn's access line and the HTTP client's ``HTTP Request:`` line for each upstream call cost every
    forwarded call a stderr write; they are for ``-v`` only (the serving line says parser and loop)."""
    import asyncio

    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "upstreams.py"), "http", str(upstream_port)],
        env={**os.environ, "UPSTREAM": "notes", "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = write_config(tmp_path, {"notes": {"url": f"http://127.0.0.1:{upstream_port}/mcp"}})

    def serve_and_call(*extra: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            serve_http_argv(config, port, *extra),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(port, process)

            async def calls() -> list[str]:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    args = {"name": "notes/create_note", "arguments": {"title": "log"}}
                    return [(await client.call_tool("call_tool", args)).content[0].text for _ in range(3)]

            assert asyncio.run(calls()) == ["created log"] * 3
        finally:
            process.terminate()
            _, err = process.communicate(timeout=30)
        return err.decode()

    try:
        wait_for_port(upstream_port, upstream)
        quiet = serve_and_call()
        verbose = serve_and_call("-v")
    finally:
        upstream.terminate()
        upstream.wait(10)
    assert "serving MCP over http on" in quiet
    assert "uvicorn.access" not in quiet and "HTTP Request:" not in quiet
    assert verbose.count("uvicorn.access") >= 3 and verbose.count("HTTP Request: POST") >= 3
