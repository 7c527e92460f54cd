"""Issue 15: a running ``serve`` follows its config file, and (opt-in) the agent manages servers.

Real parts throughout: ``discovery-router serve`` as a subprocess (stdio, and HTTP for SIGHUP), a fastmcp
client, real stdio upstreams from tests/upstreams.py. Waits poll with generous bounds; the seconds from a
file change to its effect are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from devkit.system import serve_http_argv
from tests.conftest import UPSTREAMS_SCRIPT, free_port, stdio_entry, wait_for_port

REPO = Path(__file__).parent.parent
WAIT = 20.0
SECRET = "s3cret-header-value-42"


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "connect_timeout": 20,
        "embedding_model": "none",
        "cache_dir": "none",
        "retry_initial": 0.2,
        "retry_max": 1,
        "audit_log": str(tmp_path / "audit.jsonl"),
        **extra,
    }


def write(path: Path, servers: dict[str, Any], router: dict[str, Any]) -> None:
    """Replace the file as an editor would (a new file renamed over the old one)."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps({"mcpServers": servers, "router": router}, indent=2))
    temp.replace(path)


def serve(path: Path, log: Path) -> Client:
    transport = StdioTransport(
        sys.executable,
        ["-m", "discovery_router", "--config", str(path), "serve"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        log_file=log,
    )
    return Client(transport, timeout=60)


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT) -> tuple[Any, float]:
    """Poll ``check`` until it returns something truthy; (that value, seconds it took)."""
    started = time.monotonic()
    while True:
        try:
            value = await check()
        except Exception:  # noqa: BLE001 - not there yet (e.g. unknown tool)
            value = None
        if value:
            return value, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


async def pid_of(client: Client, server: str) -> int:
    result = await client.call_tool_mcp("call_tool", {"name": f"{server}/whoami", "arguments": {}})
    assert not result.is_error, result.content[0].text
    return int(result.content[0].text)


async def text_of(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    result = await client.call_tool_mcp(tool, arguments)
    return bool(result.is_error), result.content[0].text if result.content else ""


async def search(client: Client, query: str, server: str | None = None) -> str:
    arguments: dict[str, Any] = {"query": query, "limit": 10}
    if server:
        arguments["server"] = server
    return (await client.call_tool("search_tools", arguments)).content[0].text


# -- live configuration --------------------------------------------------------------------------------------


async def test_add_change_remove_apply_in_the_same_session(tmp_path: Path):
    path, log = tmp_path / "config.json", tmp_path / "serve.log"
    router = settings(tmp_path)
    keep = stdio_entry("weather")
    write(path, {"keep": keep}, router)
    async with serve(path, log) as client:
        keep_pid = await pid_of(client, "keep")
        nap = asyncio.create_task(client.call_tool_mcp("call_tool", {"name": "keep/nap", "arguments": {"seconds": 3}}))
        await asyncio.sleep(0.3)

        # Added: connected, indexed, callable, while the untouched server's call in flight goes on.
        write(path, {"keep": keep, "wx": stdio_entry("weather")}, router)
        _, added = await until(lambda: _has(search(client, "forecast", "wx"), "wx/get_forecast"), "wx searchable")
        first = await pid_of(client, "wx")
        nap_result = await nap
        assert not nap_result.is_error and nap_result.content[0].text == "rested"

        # Changed: restarted (a new process; the old one gone).
        changed_entry = stdio_entry("weather")
        changed_entry["env"]["CHANGED"] = "1"
        write(path, {"keep": keep, "wx": changed_entry}, router)
        second, edited = await until(lambda: _new_pid(client, "wx", first), "wx restarted")
        await until(lambda: _gone(first), "the old wx process gone", timeout=10)

        # Removed: gone from search and calls, its process gone.
        write(path, {"keep": keep}, router)
        _, removed = await until(lambda: _lacks(search(client, "forecast"), "wx/"), "wx gone from search")
        await until(lambda: _gone(second), "the removed wx process gone", timeout=10)
        failed, message = await text_of(client, "call_tool", {"name": "wx/whoami", "arguments": {}})
        assert failed and "Unknown tool" in message

        assert await pid_of(client, "keep") == keep_pid  # the untouched server never noticed
    print(f"\nfile change to effect: add {added:.2f} s, edit {edited:.2f} s, remove {removed:.2f} s")


async def _has(text: Awaitable[str], needle: str) -> bool:
    return needle in await text


async def _lacks(text: Awaitable[str], needle: str) -> bool:
    return needle not in await text


async def _new_pid(client: Client, server: str, old: int) -> int | None:
    pid = await pid_of(client, server)
    return pid if pid != old else None


async def _gone(pid: int) -> bool:
    return not alive(pid)


async def test_a_broken_edit_keeps_the_last_good_config(tmp_path: Path):
    path, log = tmp_path / "config.json", tmp_path / "serve.log"
    router = settings(tmp_path, manage_servers="remote")
    write(path, {"keep": stdio_entry("weather")}, router)
    async with serve(path, log) as client:
        keep_pid = await pid_of(client, "keep")
        good = path.read_text()
        path.write_text(good.replace('"mcpServers": {', '"mcpServers": {{', 1))  # a typo in an editor
        await until(lambda: _log_says(log, "config not reloaded"), "the log says why")
        assert "invalid JSON" in log.read_text()
        assert await pid_of(client, "keep") == keep_pid  # still serving, same connection
        failed, listing = await text_of(client, "list_servers", {})
        assert not failed and "invalid JSON" in listing and "keep\tstdio\tconnected" in listing

        # `status` on the same file says why too (and fails).
        status = subprocess.run(
            [sys.executable, "-m", "discovery_router", "--config", str(path), "status"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=60,
        )
        assert status.returncode != 0 and "invalid JSON" in status.stderr

        # Fixed: applied, and the problem is cleared.
        write(path, {"keep": stdio_entry("weather"), "wx": stdio_entry("weather")}, router)
        await until(lambda: pid_of(client, "wx"), "wx callable after the fix")
        failed, listing = await text_of(client, "list_servers", {})
        assert "invalid JSON" not in listing
        assert await pid_of(client, "keep") == keep_pid


async def _log_says(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text()


async def test_one_bad_entry_fails_only_that_server(tmp_path: Path):
    path, log = tmp_path / "config.json", tmp_path / "serve.log"
    router = settings(tmp_path, manage_servers="remote")
    write(path, {"keep": stdio_entry("weather")}, router)
    os.environ.pop("LIVE_CONFIG_UNSET_VARIABLE", None)
    async with serve(path, log) as client:
        keep_pid = await pid_of(client, "keep")
        bad = {"command": sys.executable, "args": [UPSTREAMS_SCRIPT], "env": {"TOKEN": "${LIVE_CONFIG_UNSET_VARIABLE}"}}
        write(path, {"keep": stdio_entry("weather"), "bad": bad, "good": stdio_entry("weather")}, router)
        await until(lambda: pid_of(client, "good"), "the good server callable")
        failed, listing = await text_of(client, "list_servers", {})
        line = next(line for line in listing.splitlines() if line.startswith("bad\t"))
        assert "failed" in line and "LIVE_CONFIG_UNSET_VARIABLE is not set" in line
        assert await pid_of(client, "keep") == keep_pid
        # The bad entry fixed: it starts.
        write(
            path,
            {"keep": stdio_entry("weather"), "bad": stdio_entry("weather"), "good": stdio_entry("weather")},
            router,
        )
        await until(lambda: pid_of(client, "bad"), "the fixed server callable")


def test_sighup_reloads_over_http(tmp_path: Path):
    """SIGHUP applies the file even when the poll cannot see a change (same size, mtime and inode)."""
    path = tmp_path / "config.json"
    router = settings(tmp_path)
    entry = stdio_entry("weather")
    entry["env"]["MARK"] = "1"
    write(path, {"wx": entry}, router)
    port = free_port()
    process = subprocess.Popen(
        serve_http_argv(path, port),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)

        async def talk() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", timeout=60) as client:
                first = await until(lambda: pid_of(client, "wx"), "wx callable")
                before = path.stat()
                with path.open("r+") as handle:  # same inode, same size
                    text = handle.read()
                    handle.seek(0)
                    handle.write(text.replace('"MARK": "1"', '"MARK": "2"'))
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
                await asyncio.sleep(3)
                assert await pid_of(client, "wx") == first[0]  # the poll saw nothing
                process.send_signal(signal.SIGHUP)
                await until(lambda: _new_pid(client, "wx", first[0]), "wx restarted after SIGHUP")
                assert process.poll() is None  # SIGHUP did not end the router

        asyncio.run(talk())
    finally:
        process.terminate()
        process.wait(timeout=20)


# -- agent-managed servers -----------------------------------------------------------------------------------


async def test_remote_mode_refuses_a_command_and_writes_nothing(tmp_path: Path, http_upstream: str):
    path, log = tmp_path / "config.json", tmp_path / "serve.log"
    write(path, {}, settings(tmp_path, manage_servers="remote"))
    before = path.read_bytes()
    async with serve(path, log) as client:
        tools = {tool.name: tool for tool in await client.list_tools()}
        assert set(tools) == {
            "search_tools",
            "describe_tool",
            "call_tool",
            "add_server",
            "remove_server",
            "list_servers",
        }
        assert "command" not in tools["add_server"].input_schema["properties"]

        failed, message = await text_of(
            client, "add_server", {"name": "evil", "command": "sh", "args": ["-c", "touch /tmp/x"]}
        )
        assert failed and "remote servers only" in message
        failed, message = await text_of(client, "add_server", {"name": "evil", "url": "file:///etc/passwd"})
        assert failed and "http:// or https://" in message
        failed, message = await text_of(
            client, "add_server", {"name": "evil", "url": "http://127.0.0.1:1/mcp", "headers": {"X": "${HOME}"}}
        )
        assert failed and "${...}" in message
        assert path.read_bytes() == before  # nothing written

        failed, message = await text_of(
            client, "add_server", {"name": "remote", "url": http_upstream, "headers": {"Authorization": SECRET}}
        )
        assert not failed and "connected" in message, message
        assert SECRET not in message
        assert "remote/get_forecast" in await search(client, "forecast", "remote")
        assert json.loads(path.read_text())["mcpServers"]["remote"]["url"] == http_upstream

    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    own = [line for line in lines if line["server"] == "discovery-router"]
    assert [(line["tool"], line["outcome"]) for line in own] == [
        ("add_server", "refused"),
        ("add_server", "refused"),
        ("add_server", "refused"),
        ("add_server", "ok"),
    ]
    assert SECRET not in (tmp_path / "audit.jsonl").read_text() and SECRET not in log.read_text()


async def test_all_mode_adds_lists_and_removes_a_stdio_server(tmp_path: Path):
    path, log = tmp_path / "config.json", tmp_path / "serve.log"
    write(path, {"keep": stdio_entry("weather")}, settings(tmp_path, manage_servers="all"))
    async with serve(path, log) as client:
        await pid_of(client, "keep")  # connected (a call waits for its server's first connection)
        entry = stdio_entry("weather")
        entry["env"]["API_KEY"] = SECRET
        failed, message = await text_of(client, "add_server", {"name": "wx", **entry})
        assert not failed and "Added wx: connected" in message, message
        pid = await pid_of(client, "wx")  # callable at once: add_server answers once it is applied
        assert "wx/get_forecast" in await search(client, "forecast", "wx")

        failed, listing = await text_of(client, "list_servers", {})
        assert not failed and "wx\tstdio\tconnected\t" in listing and "keep\tstdio\tconnected" in listing
        assert SECRET not in listing

        failed, message = await text_of(client, "add_server", {"name": "wx", "url": "https://example.com/mcp"})
        assert failed and "already exists" in message

        failed, message = await text_of(client, "remove_server", {"name": "wx"})
        assert not failed and "Removed wx" in message
        assert "wx" not in json.loads(path.read_text())["mcpServers"]
        assert "wx/" not in await search(client, "forecast")
        await until(lambda: _gone(pid), "the removed server's process gone", timeout=10)
        failed, message = await text_of(client, "remove_server", {"name": "wx"})
        assert failed and "no such server" in message
    assert SECRET not in (tmp_path / "audit.jsonl").read_text() and SECRET not in log.read_text()


async def test_manage_tools_are_off_by_default(tmp_path: Path):
    path, log = tmp_path / "config.json", tmp_path / "serve.log"
    write(path, {}, settings(tmp_path))
    async with serve(path, log) as client:
        assert sorted(tool.name for tool in await client.list_tools()) == ["call_tool", "describe_tool", "search_tools"]


@pytest.mark.parametrize("accept", [True, False])
async def test_add_and_remove_need_confirmation_when_confirm_destructive(tmp_path: Path, accept: bool):
    from discovery_router.config.loader import load_config
    from discovery_router.mcp.server import build_server
    from discovery_router.router import Router

    path = tmp_path / "config.json"
    write(path, {}, settings(tmp_path, manage_servers="all", confirm_destructive=True))
    asked: list[str] = []

    async def answer(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked.append(message)
        return {"value": accept}

    router = Router.from_config(load_config(path))
    async with Client(build_server(router, config_path=path), elicitation_handler=answer) as client:
        failed, listing = await text_of(client, "list_servers", {})  # read-only: never asks
        assert not failed and asked == []
        entry = stdio_entry("weather")
        entry["env"]["API_KEY"] = SECRET
        failed, message = await text_of(client, "add_server", {"name": "wx", **entry})
        assert len(asked) == 1 and "discovery-router/add_server" in asked[0] and SECRET not in asked[0]
        if accept:
            assert not failed and "Added wx" in message
            assert "wx" in json.loads(path.read_text())["mcpServers"]
        else:
            assert failed and "declined" in message
            assert json.loads(path.read_text())["mcpServers"] == {}


async def test_clients_hear_pinned_tools_and_components_change(tmp_path: Path):
    """A reload tells clients: tools/list_changed when the pinned tools change, resources/prompts list_changed."""
    from fastmcp.client.messages import MessageHandler

    from discovery_router.config.loader import load_config
    from discovery_router.mcp.server import build_server
    from discovery_router.router import Router

    heard: list[str] = []

    class Ears(MessageHandler):
        async def on_tool_list_changed(self, message: Any) -> None:
            heard.append("tools")

        async def on_resource_list_changed(self, message: Any) -> None:
            heard.append("resources")

        async def on_prompt_list_changed(self, message: Any) -> None:
            heard.append("prompts")

    path = tmp_path / "config.json"
    router_settings = settings(tmp_path, pinned=["wx/get_forecast"])
    write(path, {"keep": stdio_entry("notes")}, router_settings)
    router = Router.from_config(load_config(path))
    async with Client(build_server(router, config_path=path), mode="legacy", message_handler=Ears()) as client:
        assert "get_forecast" not in [tool.name for tool in await client.list_tools()]
        await client.call_tool("search_tools", {"query": "note"})  # the client's session is known from here
        heard.clear()
        write(path, {"keep": stdio_entry("notes"), "wx": stdio_entry("weather")}, router_settings)
        await until(_async(lambda: "tools" in heard), "tools/list_changed")
        assert "get_forecast" in [tool.name for tool in await client.list_tools()]
        assert "resources" in heard and "prompts" in heard
        heard.clear()
        write(path, {"keep": stdio_entry("notes")}, router_settings)
        await until(_async(lambda: "tools" in heard), "tools/list_changed after the removal")
        assert "get_forecast" not in [tool.name for tool in await client.list_tools()]


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


async def test_2026_clients_hear_pinned_tools_change_on_a_listen_stream(tmp_path: Path):
    from mcp.client.subscriptions import listen
    from mcp.shared.subscriptions import ToolsListChanged

    from discovery_router.config.loader import load_config
    from discovery_router.mcp.server import build_server
    from discovery_router.router import Router

    path = tmp_path / "config.json"
    router_settings = settings(tmp_path, pinned=["wx/get_forecast"])
    write(path, {}, router_settings)
    router = Router.from_config(load_config(path))
    async with Client(build_server(router, config_path=path)) as client:
        async with listen(client.session, tools_list_changed=True) as events:
            write(path, {"wx": stdio_entry("weather")}, router_settings)
            event = await asyncio.wait_for(anext(aiter(events)), WAIT)
        assert isinstance(event, ToolsListChanged)
        assert "get_forecast" in [tool.name for tool in await client.list_tools()]


async def test_read_only_mode_refuses_add_and_remove_but_lists(tmp_path: Path):
    from discovery_router.config.loader import load_config
    from discovery_router.mcp.server import build_server
    from discovery_router.router import Router

    path = tmp_path / "config.json"
    write(path, {}, settings(tmp_path, manage_servers="remote", read_only=True))
    before = path.read_bytes()
    router = Router.from_config(load_config(path))
    async with Client(build_server(router, config_path=path)) as client:
        failed, message = await text_of(client, "add_server", {"name": "r", "url": "https://example.com/mcp"})
        assert failed and "read-only mode" in message
        failed, message = await text_of(client, "remove_server", {"name": "r"})
        assert failed and "read-only mode" in message
        failed, listing = await text_of(client, "list_servers", {})
        assert not failed and listing == "No servers configured."
    assert path.read_bytes() == before


# -- the per-server diff, without processes --------------------------------------------------------------------


async def test_apply_config_diffs_by_value_and_keeps_untouched_upstreams():
    from discovery_router.config.loader import parse_config
    from discovery_router.router import Router

    def config(servers: dict[str, Any]) -> Any:
        return parse_config(
            {"mcpServers": servers, "router": {"embedding_model": "none", "cache_dir": "none"}},
            environ={"TOKEN": "token-value-123"},
        )

    remote = {"url": "https://a.example/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
    router = Router.from_config(config({"a": remote, "b": {"url": "https://b.example/mcp"}}), semantic=False)
    a, b = router.upstreams["a"], router.upstreams["b"]

    same = await router.apply_config(config({"a": dict(remote), "b": {"url": "https://b.example/mcp"}}))
    assert not same and router.upstreams["a"] is a  # equal by value: a fresh load changes nothing

    change = await router.apply_config(
        config({"a": {**remote, "description": "now described"}, "c": {"url": "https://c.example/mcp"}})
    )
    assert (change.added, change.removed, change.changed) == (("c",), ("b",), ("a",))
    assert (
        list(router.upstreams) == ["a", "c"] and router.upstreams["a"] is not a and b not in router.upstreams.values()
    )

    change = await router.apply_config(
        config(
            {
                "a": {**remote, "description": "now described"},
                "c": {"url": "https://c.example/mcp", "tools": {"deny": ["x"]}},
            }
        )
    )
    assert change.changed == ("c",) and not router.governance.exposes("c", "x")
    assert "token-value-123" not in repr(change)


def test_manage_servers_setting_is_checked():
    from discovery_router.config.loader import parse_config
    from discovery_router.errors import ConfigError

    assert parse_config({"router": {"manage_servers": "all"}}).settings.manage_servers == "all"
    with pytest.raises(ConfigError, match="router.manage_servers.*off, remote, all"):
        parse_config({"router": {"manage_servers": "yes"}})


def _serve_pid(config: Path) -> int:
    """The pid of the ``serve`` process started for ``config`` (the stdio transport does not expose it)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config).encode() in argv and b"serve" in argv:
            return int(proc.name)
    raise AssertionError("serve process not found")


@pytest.mark.skipif(not Path("/proc").exists(), reason="finds the serve process in /proc")
async def test_sighup_reloads_over_stdio(tmp_path: Path):
    """A stdio ``serve`` takes SIGHUP as "reload", not as a hangup that ends it."""
    path, log = tmp_path / "config.json", tmp_path / "serve.log"
    router = settings(tmp_path)
    write(path, {"keep": stdio_entry("weather")}, router)
    async with serve(path, log) as client:
        keep_pid = await pid_of(client, "keep")
        before = path.stat()
        raw = json.loads(path.read_text())
        raw["mcpServers"]["wx"] = stdio_entry("weather")
        path.write_text(json.dumps(raw))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.kill(_serve_pid(path), signal.SIGHUP)
        await until(lambda: pid_of(client, "wx"), "wx callable after SIGHUP")
        assert await pid_of(client, "keep") == keep_pid
