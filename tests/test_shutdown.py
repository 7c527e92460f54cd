"""Stopping `serve` (EOF on stdin, SIGINT, SIGTERM) answers every call in flight and stops every child it started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastmcp import Client

from devkit.system import serve_http_argv
from tests.conftest import free_port, stdio_entry, wait_for_port

REPO = Path(__file__).parent.parent


def child_pids(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("how", ["eof", "sigterm", "sigint"])
def test_stopping_serve_leaves_no_orphans(tmp_path: Path, how: str):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {"a": stdio_entry("notes"), "b": stdio_entry("weather")}}))
    router = subprocess.Popen(
        [sys.executable, "-m", "discovery_router", "--config", str(config), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 30
        while len(child_pids(router.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = child_pids(router.pid)
        assert len(children) == 2
        time.sleep(1)  # let both finish their handshake
        if how == "eof":
            router.stdin.close()
        else:
            router.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert router.wait(20) == 0
        deadline = time.monotonic() + 5
        while any(running(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [c for c in children if running(c)]
    finally:
        if router.poll() is None:
            router.kill()


def stubborn_entry() -> dict:
    """The weather server, ignoring SIGTERM and staying alive after its stdin closes: only SIGKILL ends it."""
    entry = stdio_entry("weather")
    entry["env"]["UPSTREAM_STUBBORN"] = "1"
    return entry


def wait_children(pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while len(child_pids(pid)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    children = child_pids(pid)
    assert len(children) == count
    return children


def assert_gone(children: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(running(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [c for c in children if running(c)]
    for child in left:
        os.kill(child, signal.SIGKILL)
    assert not left, "an upstream child outlived the router"


DRAIN = {"shutdown_drain": 3, "connect_timeout": 20}
ABANDONED = "the router shut down before this request finished"


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads the process table from /proc")
def test_sigterm_on_http_serve_answers_every_call_in_flight_and_kills_a_stubborn_child(tmp_path: Path):
    """Calls that finish within router.shutdown_drain get their result, the rest an error; none go unanswered."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {"w": stubborn_entry()}, "router": DRAIN}))
    port = free_port()
    router = subprocess.Popen(
        serve_http_argv(config, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        wait_for_port(port, router)
        children = wait_children(router.pid, 1)

        async def calls() -> list[tuple[bool, str]]:
            running_calls = asyncio.Semaphore(0)

            async def call(seconds: float) -> tuple[bool, str]:
                async def progress(*_: object) -> None:
                    running_calls.release()  # the call has reached the upstream

                async with Client(f"http://127.0.0.1:{port}/mcp", timeout=60) as client:
                    result = await client.call_tool_mcp(
                        "call_tool",
                        {"name": "w/nap_after_progress", "arguments": {"seconds": seconds}},
                        progress_handler=progress,
                    )
                    return result.is_error, result.content[0].text

            tasks = [asyncio.create_task(call(0.5 if i % 2 else 600)) for i in range(16)]
            for _ in tasks:
                await asyncio.wait_for(running_calls.acquire(), timeout=60)
            router.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks)

        answers = asyncio.run(calls())
        assert answers[1::2] == [(False, "rested")] * 8  # finished within the drain
        assert all(is_error and ABANDONED in text for is_error, text in answers[0::2])
        assert router.wait(30) == 0
        assert_gone(children)
    finally:
        if router.poll() is None:
            router.kill()


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads the process table from /proc")
def test_sigterm_on_stdio_serve_answers_every_call_in_flight_and_kills_a_stubborn_child(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {"w": stubborn_entry()}, "router": DRAIN}))
    router = subprocess.Popen(
        [sys.executable, "-m", "discovery_router", "--config", str(config), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert router.stdin is not None and router.stdout is not None

    def send(message: dict) -> None:
        router.stdin.write((json.dumps(message) + "\n").encode())
        router.stdin.flush()

    def read_until(done: object) -> dict[object, dict]:
        """Messages by id (responses) or progress token (progress), until ``done`` holds for them."""
        seen: dict[object, dict] = {}
        while not done(seen):  # type: ignore[operator]
            message = json.loads(router.stdout.readline())
            key = message.get("id", message.get("params", {}).get("progressToken"))
            seen[key] = message
        return seen

    def call(request_id: int, seconds: float) -> dict:
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {
                "name": "call_tool",
                "arguments": {"name": "w/nap_after_progress", "arguments": {"seconds": seconds}},
                "_meta": {"progressToken": f"p{request_id}"},
            },
        }

    try:
        children = wait_children(router.pid, 1)
        send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
        )
        read_until(lambda seen: 1 in seen)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send(call(2, 0.5))
        send(call(3, 600))
        read_until(lambda seen: {"p2", "p3"} <= set(seen))  # both calls are running upstream
        router.send_signal(signal.SIGTERM)
        answers = read_until(lambda seen: {2, 3} <= set(seen))
        assert answers[2]["result"]["content"][0]["text"] == "rested"
        assert answers[3]["result"]["isError"] is True
        assert ABANDONED in answers[3]["result"]["content"][0]["text"]
        assert router.wait(30) == 0
        assert_gone(children)
    finally:
        if router.poll() is None:
            router.kill()
