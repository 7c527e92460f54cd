"""Hostile input from clients and upstreams (issue 14, items 5, 6 and 12), through a real client and router."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import pytest
from fastmcp import Client, FastMCP
from pydantic import Field

from discovery_router.router import Router
from discovery_router.mcp.server import build_server
from tests.conftest import FAST, config_router, stdio_entry
from tests.upstreams import build_notes

LONE = "\ud800"


def _audit_lines() -> list[dict]:
    path = Path(os.environ["DISCOVERY_ROUTER_AUDIT_LOG"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
async def stdio_client():
    """The router with the weather server as a real stdio child (one shared connection), and a client."""
    router = config_router({"weather": stdio_entry()})
    async with Client(build_server(router)) as client:
        yield client


async def test_lone_surrogate_value_is_refused_and_the_upstream_connection_survives(stdio_client):
    result = await stdio_client.call_tool(
        "call_tool", {"name": "weather/echo", "arguments": {"text": "x" + LONE}}, raise_on_error=False
    )
    assert result.is_error
    text = result.content[0].text
    assert "nothing was sent" in text and "text" in text
    after = await stdio_client.call_tool("call_tool", {"name": "weather/echo", "arguments": {"text": "still here"}})
    assert "still here" in after.content[0].text


async def test_lone_surrogate_in_nested_value_names_its_path(stdio_client):
    result = await stdio_client.call_tool(
        "call_tool",
        {"name": "weather/plan_trip", "arguments": {"route": {"legs": ["ok", LONE]}, "stops": []}},
        raise_on_error=False,
    )
    assert result.is_error and "route/legs/1" in result.content[0].text


async def test_lone_surrogate_in_a_key_still_gets_its_audit_line():
    # fastmcp's own client cannot even serialize such a key, so the router's Python API sends it
    # (the MCP server hands Router.call whatever JSON a raw client sent).
    from discovery_router.errors import InvalidArgumentsError

    before = len(_audit_lines())
    async with config_router({"weather": stdio_entry()}) as router:
        await router.wait_ready()
        with pytest.raises(InvalidArgumentsError, match="nothing was sent"):
            await router.call("weather/echo", {"text": "hi", "k" + LONE: 1})
        assert "fine" in (await router.call("weather/echo", {"text": "fine"})).content[0].text
    lines = _audit_lines()[before:]
    assert [line["outcome"] for line in lines] == ["invalid", "ok"], lines
    assert "k\ud800" in lines[0]["argument_keys"]  # escaped on write, reads back as itself


def _redos_upstream() -> FastMCP:
    server = FastMCP("hostile")

    @server.tool
    def check(word: Annotated[str, Field(pattern=r"^(a+)+$")]) -> str:
        """Checks a word."""
        return f"checked {word}"

    return server


async def test_catastrophic_schema_pattern_does_not_stall_other_clients():
    router = Router({"hostile": _redos_upstream(), "notes": build_notes()}, FAST)
    async with Client(build_server(router)) as first, Client(build_server(router)) as second:
        evil = first.call_tool(
            "call_tool", {"name": "hostile/check", "arguments": {"word": "a" * 30 + "!"}}, raise_on_error=False
        )
        other = second.call_tool("call_tool", {"name": "notes/echo", "arguments": {"text": "unstalled"}})
        rejected, answered = await asyncio.wait_for(asyncio.gather(evil, other), timeout=10)
    assert rejected.is_error and "nothing was sent" in rejected.content[0].text
    assert "unstalled" in answered.content[0].text


async def test_a_matching_value_still_passes_the_bounded_pattern_check():
    router = Router({"hostile": _redos_upstream()}, FAST)
    async with Client(build_server(router)) as client:
        result = await client.call_tool("call_tool", {"name": "hostile/check", "arguments": {"word": "aaaa"}})
    assert "checked aaaa" in result.content[0].text


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x1e", "\u2029"])
def test_line_separators_in_a_key_keep_one_record_per_line(tmp_path, separator):
    # Python's splitlines (and many log shippers) break on these: a raw one in a record split it in two.
    from discovery_router.governance.audit import AuditLog, AuditQuery, read_entries

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.write({"tool": "t", "argument_keys": [f"a{separator}b", "k" + LONE]})
    log.write({"tool": "u", "argument_keys": []})
    raw = path.read_text(encoding="utf-8")
    assert len(raw.splitlines()) == 2 and raw.isascii()
    records = read_entries(path, AuditQuery(limit=0))
    assert [r["tool"] for r in records] == ["t", "u"]
    assert records[0]["argument_keys"] == [f"a{separator}b", "k" + LONE]
