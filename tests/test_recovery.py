"""Transparent recovery (issue 15; issue 14 item 1): a stdio upstream that dies between calls is restarted
at once and the next call succeeds on the new process; a call in flight gets the error and is never replayed;
a server that never connects does not hold up search. Real stdio upstream processes throughout."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fastmcp import Client

from discovery_router.errors import UpstreamUnavailableError
from discovery_router.mcp.server import build_server
from discovery_router.upstreams.status import UpstreamState
from tests.conftest import FAST, config_router, stdio_entry

SECRET = "tok-5e1f0a9b8c7d"


async def pid_of(router, server: str = "weather") -> int:
    return int((await router.call(f"{server}/whoami")).content[0].text)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_until(predicate, seconds: float = 20) -> bool:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_kill_9_between_calls_next_call_succeeds_on_a_new_process(caplog):
    router = config_router({"weather": stdio_entry("weather"), "notes": stdio_entry("notes")})
    async with router:
        await router.wait_ready()
        notes = router.upstreams["notes"]
        notes_client = notes._client
        first = await pid_of(router)
        os.kill(first, signal.SIGKILL)
        assert await wait_until(lambda: gone(first))
        started = time.monotonic()
        second = await pid_of(router)  # the very next call: no error
        print(f"first call after kill -9: {time.monotonic() - started:.3f} s, pid {first} -> {second}")
        assert second != first
        # The other server never noticed: same connection, same state, and it still answers.
        assert notes._client is notes_client and notes.state is UpstreamState.CONNECTED
        assert (await router.call("notes/create_note", {"title": "fine"})).content[0].text == "created fine"
    assert "exited" in caplog.text


async def test_kill_noticed_at_exit_not_at_the_next_call():
    router = config_router({"weather": stdio_entry("weather")})
    async with router:
        await router.wait_ready()
        upstream = router.upstreams["weather"]
        old_client = upstream._client
        first = await pid_of(router)
        os.kill(first, signal.SIGKILL)
        # No call is made: the supervisor alone restarts the child.
        assert await wait_until(
            lambda: (
                upstream.state is UpstreamState.CONNECTED
                and upstream._client is not None
                and upstream._client is not old_client
            )
        )
        assert await pid_of(router) != first


async def test_call_in_flight_when_the_child_dies_gets_an_error_and_is_not_replayed(tmp_path: Path):
    ledger = tmp_path / "ran.txt"
    router = config_router({"weather": stdio_entry("weather"), "notes": stdio_entry("notes")})
    async with router:
        await router.wait_ready()
        in_flight = asyncio.create_task(router.call("weather/record", {"path": str(ledger), "seconds": 60}))
        assert await wait_until(lambda: ledger.exists() and ledger.read_text().strip() != "")
        first = int(ledger.read_text().split()[0])
        os.kill(first, signal.SIGKILL)
        with pytest.raises(UpstreamUnavailableError, match="not repeated"):
            await asyncio.wait_for(in_flight, timeout=20)
        second = await pid_of(router)
        assert second != first
        await asyncio.sleep(1)  # a replay would have reached the new process by now
        assert ledger.read_text().split() == [str(first)]


async def test_a_call_while_reconnecting_waits_and_a_dead_start_says_why():
    """A child that dies and cannot start again: waiting calls get the reason, exit and last stderr line
    (masked), not 'Connection closed'."""
    script = (
        "import os, sys\n"
        "if os.path.exists(sys.argv[1]):\n"
        f"    print('config token {SECRET} rejected', file=sys.stderr)\n"
        "    raise AttributeError(\"module 'server' has no attribute 'run'\")\n"
        "open(sys.argv[1], 'w').close()\n"
        "sys.path.insert(0, os.environ['PYTHONPATH'])\n"
        "from tests.upstreams import build_notes\n"
        "build_notes().run(transport='stdio', show_banner=False)\n"
    )
    marker = Path(os.environ["DISCOVERY_ROUTER_CACHE_DIR"]) / f"started-{os.getpid()}-{time.monotonic_ns()}"
    entry = {
        **stdio_entry("notes"),
        "args": ["-c", script, str(marker)],
        "env": {**stdio_entry("notes")["env"], "TOKEN": SECRET},
    }
    router = config_router({"flaky": entry})
    async with router:
        await router.wait_ready()
        assert router.upstreams["flaky"].state is UpstreamState.CONNECTED
        client = router.upstreams["flaky"]._client
        assert client is not None
        await client.call_tool_mcp("create_note", {"title": "x"})
        # Kill the child through its session: find it as our child process with the marker in its command line.
        child = next(int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(int(p), str(marker)))
        os.kill(child, signal.SIGKILL)
        assert await wait_until(lambda: router.upstreams["flaky"].state is not UpstreamState.CONNECTED)
        with pytest.raises(UpstreamUnavailableError) as caught:
            await router.call("flaky/create_note", {"title": "after"})
        message = str(caught.value)
        assert "exited" in message and "AttributeError: module 'server' has no attribute 'run'" in message
        assert SECRET not in message
        status = router.status()[0]
        assert status.state is UpstreamState.FAILED and status.error and SECRET not in status.error


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


async def test_search_does_not_wait_for_a_server_that_never_connects():
    silent = {"command": sys.executable, "args": ["-c", "import time; time.sleep(600)"]}
    router = config_router(
        {"silent": silent, "notes": stdio_entry("notes")}, settings=replace(FAST, connect_timeout=500)
    )
    async with Client(build_server(router)) as client:
        # Bounded by the test's own timeout: waiting connect_timeout (500 s) would fail it.
        result = await asyncio.wait_for(client.call_tool("search_tools", {"query": "create a note"}), timeout=120)
        text = result.content[0].text
        assert "notes/create_note" in text
        assert "Still starting" in text and "silent" in text
        assert router.upstreams["silent"].state is UpstreamState.CONNECTING
