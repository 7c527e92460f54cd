"""1,000 calls from 64 concurrent clients through one router over HTTP: nothing lost, crossed or leaked."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from fastmcp import Client

from devkit.system import serve_http_argv
from tests.conftest import free_port, stdio_entry, wait_for_port
from tests.test_shutdown import child_pids

REPO = Path(__file__).parent.parent
CLIENTS, CALLS_PER_CLIENT = 64, 16


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc").exists(), reason="counts descriptors and children in /proc")
async def test_concurrent_clients_get_their_own_results(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {"weather": stdio_entry("weather"), "notes": stdio_entry("notes")}}))
    port = free_port()
    router = subprocess.Popen(
        serve_http_argv(config, port),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_for_port(port, router)
        async with Client(url) as warm:
            await warm.call_tool("call_tool", {"name": "notes/echo", "arguments": {"text": "warm"}})
        children, fds_before = sorted(child_pids(router.pid)), open_fds(router.pid)

        async def one_client(n: int) -> list[tuple[str, str]]:
            pairs = []
            async with Client(url) as client:
                for i in range(CALLS_PER_CLIENT):
                    server = ("weather", "notes")[(n + i) % 2]
                    token = f"{n}-{i}-{uuid.uuid4().hex}"
                    result = await client.call_tool_mcp(
                        "call_tool", {"name": f"{server}/echo", "arguments": {"text": token}}
                    )
                    pairs.append((f"{server}:{token}", result.content[0].text))
            return pairs

        results = await asyncio.wait_for(asyncio.gather(*(one_client(n) for n in range(CLIENTS))), timeout=300)
        pairs = [pair for client_pairs in results for pair in client_pairs]
        assert len(pairs) == CLIENTS * CALLS_PER_CLIENT
        assert all(expected == got for expected, got in pairs)
        await asyncio.sleep(1)
        assert sorted(child_pids(router.pid)) == children
        assert open_fds(router.pid) <= fds_before + 8
    finally:
        router.terminate()
        router.wait(20)
