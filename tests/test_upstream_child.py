"""Stdio upstreams on the event loop's own pipes (discovery_router.upstreams.child): real child processes.

What the SDK's transport gave and this one keeps (environment, working directory, the shutdown order and
the process-group kill, no leaked descriptors), and what it adds: a request the child sends that cannot be
parsed is answered. Crashes, SIGKILL, restarts, stderr diagnostics and orphans at exit are covered with the
whole router in test_recovery.py, test_reliability_upstreams.py and test_shutdown.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from discovery_router.upstreams import child
from discovery_router.upstreams.child import ChildStdioTransport, child_streams, stdio_transport
from tests.conftest import TESTS, config_router

RAW = [str(TESTS / "raw_upstream.py")]

STUBBORN = (
    "import pathlib, signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "pathlib.Path(sys.argv[1]).write_text(str(grandchild.pid))\n"
    "time.sleep(300)\n"
)
"""A child that ignores its stdin's end and SIGTERM, with a grandchild in its process group (its pid goes
to the file named by the first argument)."""


def alive(pid: int) -> bool:
    """Running and not a zombie (a killed grandchild may wait a moment for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def pid_in(path: Path, within: float = 15.0) -> int:
    for _ in range(int(within / 0.05)):
        if path.exists() and path.read_text():
            return int(path.read_text())
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pid written to {path}")


async def gone(pid: int, within: float = 15.0) -> bool:
    for _ in range(int(within / 0.05)):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def open_descriptors() -> set[str]:
    return {entry.name for entry in Path("/proc/self/fd").iterdir()}


async def test_the_child_gets_the_safe_environment_plus_its_own_and_its_working_directory(tmp_path, monkeypatch):
    """As with the SDK's transport: the router's own variables (secrets, often) do not reach a server."""
    monkeypatch.setenv("ROUTER_ONLY_SECRET", "s3cr3t-value")
    entry = {"command": sys.executable, "args": RAW, "env": {"GREETING": "hello"}, "cwd": str(tmp_path)}
    async with config_router({"raw": entry}) as router:
        where = json.loads((await router.call("raw/where", {})).content[0].text)
    assert Path(where["cwd"]).resolve() == tmp_path.resolve()
    assert where["env"]["GREETING"] == "hello" and where["env"]["PATH"] == os.environ["PATH"]
    assert "ROUTER_ONLY_SECRET" not in where["env"]


async def test_an_unparsable_request_from_the_child_is_answered_not_left_waiting():
    """The SDK's transport logs and drops such a line, and the server waits for an answer forever."""
    async with config_router({"raw": {"command": sys.executable, "args": RAW}}) as router:
        answer = json.loads((await router.call("raw/ask_garbled", {})).content[0].text)
    assert answer["id"] == "garbled-1" and "lone surrogate" in answer["error"]["message"]


@pytest.mark.skipif(not child.PIPES or not Path("/proc").exists(), reason="POSIX pipes; reads /proc")
async def test_a_child_that_ignores_its_stdin_and_sigterm_is_killed_with_its_process_group(tmp_path, monkeypatch):
    monkeypatch.setattr(child, "EXIT_GRACE", 0.2)
    monkeypatch.setattr(child, "FORCE_KILL_TIMEOUT", 0.2)
    pid_file = tmp_path / "grandchild.pid"
    async with child_streams(sys.executable, ["-c", STUBBORN, str(pid_file)], env=None, cwd=None, stderr=None):
        grandchild = await pid_in(pid_file)
        assert alive(grandchild)
    assert await gone(grandchild)


@pytest.mark.skipif(not child.PIPES or not Path("/proc").exists(), reason="POSIX pipes; reads /proc")
async def test_a_cancelled_close_still_ends_the_child(tmp_path, monkeypatch):
    """The shutdown runs in a shielded task of its own: a caller's timeout cannot leave the child running."""
    monkeypatch.setattr(child, "EXIT_GRACE", 0.5)
    monkeypatch.setattr(child, "FORCE_KILL_TIMEOUT", 0.2)
    pid_file = tmp_path / "grandchild.pid"

    async def hold() -> None:
        async with child_streams(sys.executable, ["-c", STUBBORN, str(pid_file)], env=None, cwd=None, stderr=None):
            await pid_in(pid_file)

    holder = asyncio.create_task(hold())
    grandchild = await pid_in(pid_file)
    await asyncio.sleep(0.1)  # the holder is now closing, waiting out the exit grace
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    assert await gone(grandchild)


async def test_connecting_and_closing_leaves_no_descriptor_open():
    before = open_descriptors()
    for _ in range(3):
        async with Client(ChildStdioTransport(sys.executable, RAW), mode="legacy") as client:
            assert {tool.name for tool in await client.list_tools()} >= {"echo", "pid"}
    await asyncio.sleep(0.1)  # transports close their pipes on the next turn of the loop
    assert open_descriptors() == before


async def test_a_command_that_cannot_start_raises_and_leaks_no_descriptor(tmp_path):
    before = open_descriptors()
    with pytest.raises(OSError):
        async with child_streams(str(tmp_path / "no-such-server"), [], env=None, cwd=None, stderr=None):
            pass
    assert open_descriptors() == before


async def test_the_child_runs_in_a_process_group_of_its_own():
    """So the kill at shutdown reaches its children and never the router's own group."""
    async with Client(ChildStdioTransport(sys.executable, RAW), mode="legacy") as client:
        pid = int((await client.call_tool("pid", {})).content[0].text)
        assert os.getpgid(pid) == pid != os.getpgid(0)


def test_without_pipes_the_sdks_transport_is_used(monkeypatch):
    monkeypatch.setattr(child, "PIPES", False)
    log = object()
    transport = stdio_transport("server", ["--flag"], env={"A": "1"}, cwd="/tmp", log_file=log)
    assert isinstance(transport, StdioTransport) and transport.keep_alive is False
    assert (transport.command, transport.args, transport.env, transport.cwd) == (
        "server",
        ["--flag"],
        {"A": "1"},
        "/tmp",
    )
    assert transport.log_file is log


def test_the_transports_repr_names_the_command_only():
    """Arguments and the environment can hold tokens; a repr ends up in logs."""
    text = repr(ChildStdioTransport("server", ["--token", "tok-123"], env={"KEY": "sk-456"}))
    assert "server" in text and "tok-123" not in text and "sk-456" not in text


async def test_a_call_right_after_the_child_died_goes_to_a_new_one():
    """Nothing runs the event loop between the death and the call: the exit still unread on the child's stderr
    pipe is read first (``StderrTail.unread``), so the call waits for a new child instead of failing with
    "the server process exited" (as it did when the call only let the loop turn twice)."""
    async with config_router({"raw": {"command": sys.executable, "args": RAW}}) as router:
        first = int((await router.call("raw/pid", {})).content[0].text)
        os.kill(first, 9)
        for _ in range(400):  # a blocking wait: the loop must not see the exit before the call does
            if not alive(first):
                break
            time.sleep(0.01)
        second = int((await router.call("raw/pid", {})).content[0].text)
    assert second != first


async def test_stderr_tail_tells_unread_output_without_turning_the_loop():
    from discovery_router.governance.redact import Redactor
    from discovery_router.upstreams.output import StderrTail

    tail = StderrTail("t", Redactor(), lambda: None)
    assert not tail.unread()
    tail.writer.write(b"a line\n")
    assert tail.unread()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not tail.unread():
            break
    assert not tail.unread() and tail.last_line == "a line"
    tail.spawned()  # the only writer closes: the end is there to read
    assert tail.unread()
    await tail.close()
    assert not tail.unread()
