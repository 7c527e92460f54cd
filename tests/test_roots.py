"""Roots for servers that ask ``roots/list`` at their own start, when no call is in flight (issue 13).

The rule (README "Roots"): a server's `roots` in the config win; otherwise a stdio router answers
from its one client, if that client declared roots; otherwise the ask is refused with the reason.
Driven through `discovery-router serve` over stdio with a real client, as an agent runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from discovery_router.mcp.server import build_server
from tests.conftest import config_router, stdio_entry
from tests.npm_packages import server_filesystem

REPO = Path(__file__).parent.parent


def rooted() -> dict:
    """The rooted test server over stdio, on the handshake era (2026-07-28 servers cannot ask roots/list)."""
    return {**stdio_entry("rooted"), "protocol": "legacy"}


def serve_stdio(tmp_path: Path, servers: dict) -> StdioTransport:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": servers, "router": {"connect_timeout": 20}}))
    return StdioTransport(
        sys.executable,
        ["-m", "discovery_router", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def seen_roots(client: Client, server: str, want: Any, timeout: float = 15) -> dict:
    """What the rooted upstream last got from roots/list, once it equals ``want`` (or at the timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await client.call_tool_mcp("call_tool", {"name": f"{server}/allowed_directories"})
        seen = json.loads(result.content[0].text)
        if seen["roots"] == want or asyncio.get_running_loop().time() > deadline:
            return seen
        await asyncio.sleep(0.2)


async def test_a_stdio_router_answers_roots_from_its_client_and_config_roots_win(tmp_path: Path):
    client_dir, config_dir = tmp_path / "client", tmp_path / "configured"
    client_dir.mkdir(), config_dir.mkdir()
    transport = serve_stdio(tmp_path, {"rooted": rooted(), "fixed": {**rooted(), "roots": [str(config_dir)]}})
    client_roots = [client_dir.as_uri()]

    def roots(_context: Any) -> list[str]:
        return list(client_roots)

    async with Client(transport, roots=roots, mode="legacy") as client:
        from_client = await seen_roots(client, "rooted", [client_dir.as_uri()])
        assert from_client == {"roots": [client_dir.as_uri()], "error": None}
        from_config = await seen_roots(client, "fixed", [config_dir.as_uri()])
        assert from_config == {"roots": [config_dir.as_uri()], "error": None}  # never the client's

        # The client changes its roots: the upstream hears of it and asks again.
        other = tmp_path / "other"
        other.mkdir()
        client_roots[:] = [other.as_uri()]
        await client.send_roots_list_changed()
        assert (await seen_roots(client, "rooted", [other.as_uri()]))["roots"] == [other.as_uri()]
        assert (await seen_roots(client, "fixed", [config_dir.as_uri()], timeout=0))["roots"] == [config_dir.as_uri()]


async def test_a_client_without_roots_leaves_the_ask_refused_with_the_reason(tmp_path: Path):
    async with Client(serve_stdio(tmp_path, {"rooted": rooted()}), mode="legacy") as client:
        await asyncio.sleep(1)  # the upstream's own ask at start has been answered by now
        seen = await seen_roots(client, "rooted", None, timeout=0)
    assert seen["roots"] is None
    assert "no call to 'rooted' is in progress" in seen["error"] and "`roots` in its config entry" in seen["error"]


async def test_a_non_stdio_front_never_hands_one_clients_roots_to_an_upstream(tmp_path: Path):
    """Over HTTP (here: in memory) several clients may share an upstream: none of them is picked."""
    router = config_router({"rooted": rooted()})
    async with Client(build_server(router), roots=[tmp_path.as_uri()], mode="legacy") as client:
        assert await router.wait_ready(), router.status()
        await asyncio.sleep(1)
        seen = await seen_roots(client, "rooted", None, timeout=0)
    assert seen["roots"] is None and "no call to 'rooted' is in progress" in seen["error"]


def test_config_roots_are_file_uris(tmp_path: Path):
    from discovery_router.config.loader import parse_config
    from discovery_router.errors import ConfigError

    entry = {"command": "x", "roots": ["~", "rel", "${DATA}/in", "file:///srv/data"]}
    config = parse_config({"mcpServers": {"a": entry}}, environ={"DATA": "/data"}, path=tmp_path / "config.json")
    assert config.servers["a"].roots == (
        Path.home().resolve().as_uri(),
        (tmp_path / "rel").resolve().as_uri(),
        "file:///data/in",
        "file:///srv/data",
    )  # relative to the config file
    with pytest.raises(ConfigError, match=r"field 'roots\[0\]': must be a directory path or a file:// URI"):
        parse_config({"mcpServers": {"a": {"command": "x", "roots": ["https://example.com"]}}}, environ={})


@pytest.mark.npm
async def test_server_filesystem_without_paths_gets_the_clients_directory(tmp_path: Path):
    node, entry = server_filesystem()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("hello from the client's root\n")
    async with Client(
        serve_stdio(tmp_path, {"fs": {"command": node, "args": [str(entry)]}}), roots=[shared.as_uri()], mode="legacy"
    ) as client:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            listed = await client.call_tool_mcp("call_tool", {"name": "fs/list_allowed_directories"})
            text = listed.content[0].text
            if str(shared.resolve()) in text or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.3)
        assert str(shared.resolve()) in text, text
        read = await client.call_tool_mcp(
            "call_tool", {"name": "fs/read_text_file", "arguments": {"path": str(shared / "hello.txt")}}
        )
        assert "hello from the client's root" in read.content[0].text
