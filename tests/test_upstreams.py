"""Upstreams over real transports: stdio subprocesses, streamable HTTP, third-party servers, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from dataclasses import replace

import mcp_types
from fastmcp import Context, FastMCP

from discovery_router.router import Router
from discovery_router.errors import UpstreamCallError, UpstreamUnavailableError
from discovery_router.upstreams.status import UpstreamState
from tests.conftest import FAST, config_router, stdio_entry

SECRET = "tok-9f8e7d6c5b4a"


async def test_stdio_and_http_upstreams_side_by_side(http_upstream: str):
    router = config_router({"local": stdio_entry("notes"), "remote": {"url": http_upstream}})
    async with router:
        await router.wait_ready()
        assert {s.name: s.state for s in router.status()} == {
            "local": UpstreamState.CONNECTED,
            "remote": UpstreamState.CONNECTED,
        }
        note = await router.call("local/create_note", {"title": "stdio"})
        forecast = await router.call("remote/get_forecast", {"city": "Lima"})
        assert note.content[0].text == "created stdio"
        assert forecast.structured_content == {"city": "Lima", "celsius": 21.5, "summary": "sunny for 1 day(s)"}
        assert [e.id for e in await router.search("weather forecast")][0] == "remote/get_forecast"


async def test_real_third_party_server_mcp_server_time():
    router = config_router({"time": {"command": "mcp-server-time"}})
    async with router:
        hits = await router.search("what is the current time in a timezone")
        assert "time/get_current_time" in [h.id for h in hits]
        result = await router.call("time/get_current_time", {"timezone": "Europe/Paris"})
        assert result.structured_content["timezone"] == "Europe/Paris"
        bad = await router.call("time/get_current_time", {"timezone": "Mars/Olympus"})
        assert bad.is_error and "Invalid timezone" in bad.content[0].text


async def test_dead_server_at_start_is_reported_and_others_work(tmp_path):
    router = config_router(
        {
            "broken": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(7)"]},
            "missing": {"command": "definitely-not-a-command-xyz"},
            "notes": stdio_entry("notes"),
        }
    )
    async with router:
        await router.wait_ready()
        states = {s.name: s for s in router.status()}
        assert states["notes"].state is UpstreamState.CONNECTED
        assert states["broken"].state is UpstreamState.FAILED and states["broken"].error
        assert states["missing"].state is UpstreamState.FAILED
        assert (await router.call("notes/create_note", {"title": "ok"})).content[0].text == "created ok"
        try:
            await router.call("broken/anything", {})
            raise AssertionError("expected the call to fail")
        except UpstreamUnavailableError as exc:
            assert "Server 'broken' is unreachable" in str(exc)


async def test_crashed_upstream_is_reported_then_reconnected():
    router = config_router({"weather": stdio_entry("weather")})
    async with router:
        await router.wait_ready()
        first_pid = (await router.call("weather/whoami")).content[0].text
        try:
            await router.call("weather/crash")
            raise AssertionError("expected the crash to surface as unreachable")
        except UpstreamUnavailableError as exc:
            assert "Server 'weather' is unreachable" in str(exc)
        for _ in range(100):
            if router.upstreams["weather"].state is UpstreamState.CONNECTED:
                break
            await asyncio.sleep(0.1)
        second_pid = (await router.call("weather/whoami")).content[0].text
        assert second_pid != first_pid


async def test_secrets_never_appear_in_status_or_errors(monkeypatch, caplog):
    monkeypatch.setenv("API_TOKEN", SECRET)
    router = config_router(
        {
            "remote": {
                "url": "http://127.0.0.1:9/mcp?key=${API_TOKEN}",
                "headers": {"Authorization": "Bearer ${API_TOKEN}"},
            }
        }
    )
    async with router:
        await router.wait_ready()
        status = router.status()[0]
        assert status.state is UpstreamState.FAILED
        with pytest.raises(UpstreamUnavailableError) as caught:
            await router.call("remote/x", {})
        assert "remote" in str(caught.value) and SECRET not in str(caught.value)
    assert status.error and SECRET not in status.error
    assert SECRET not in caplog.text


async def test_disabled_server_is_not_started():
    router = config_router({"off": {**stdio_entry("notes"), "enabled": False}, "on": stdio_entry("notes")})
    async with router:
        await router.wait_ready()
        states = {s.name: s.state for s in router.status()}
        assert states == {"off": UpstreamState.DISABLED, "on": UpstreamState.CONNECTED}
        assert all(e.server == "on" for e in router.catalog.entries)


async def test_server_that_never_answers_times_out_at_start():
    silent = {"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"]}
    router = config_router(
        {"silent": silent, "notes": stdio_entry("notes")}, settings=replace(FAST, connect_timeout=6)
    )  # notes starts in ~1-4 s
    async with router:
        await router.wait_ready()
        states = {s.name: s for s in router.status()}
        assert states["silent"].state is UpstreamState.FAILED and "timed out" in states["silent"].error
        assert states["notes"].state is UpstreamState.CONNECTED


async def test_slow_call_hits_the_per_server_timeout_and_the_server_stays_up():
    router = config_router({"weather": {**stdio_entry("weather"), "timeout": 0.5}})
    async with router:
        try:
            await router.call("weather/nap", {"seconds": 5})
            raise AssertionError("expected a timeout")
        except UpstreamCallError as exc:
            assert "did not answer within 0.5 s" in str(exc)
        assert (await router.call("weather/nap", {"seconds": 0})).content[0].text == "rested"


def growing_server() -> FastMCP:
    """A server that adds a tool at run time; ``announce`` says whether it sends list_changed."""
    server = FastMCP("dyn")

    @server.tool
    async def grow(name: str, announce: bool, ctx: Context) -> str:
        """Add a new tool to this server."""
        server.tool(lambda: "new", name=name, description=f"A freshly grown tool called {name}")
        if announce:
            await ctx.send_notification(mcp_types.ToolListChangedNotification())
        return "ok"

    return server


async def wait_for_tool(router, tool_id: str, seconds: float = 5) -> bool:
    for _ in range(int(seconds / 0.05)):
        if tool_id in router.catalog:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_tools_list_changed_notification_reindexes():
    async with Router({"dyn": growing_server()}, FAST) as router:
        await router.wait_ready()
        await router.call("dyn/grow", {"name": "sprout", "announce": True})
        assert await wait_for_tool(router, "dyn/sprout")
        assert [e.id for e in await router.search("freshly grown sprout")][0] == "dyn/sprout"


async def test_periodic_refresh_finds_tools_of_silent_servers():
    async with Router({"dyn": growing_server()}, replace(FAST, refresh_interval=0.3)) as router:
        await router.wait_ready()
        await router.call("dyn/grow", {"name": "quiet", "announce": False})
        assert await wait_for_tool(router, "dyn/quiet")


async def test_in_flight_call_gets_an_error_when_its_server_dies():
    router = config_router({"weather": stdio_entry("weather"), "notes": stdio_entry("notes")})
    async with router:
        pid = int((await router.call("weather/whoami")).content[0].text)
        in_flight = asyncio.create_task(router.call("weather/nap", {"seconds": 60}))
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(in_flight, timeout=10)
            raise AssertionError("expected an error")
        except UpstreamUnavailableError as exc:
            assert "Server 'weather' is unreachable" in str(exc)
        assert (await router.call("notes/create_note", {"title": "still fine"})).content[0].text == "created still fine"


@pytest.mark.parametrize("remote_upstream", ["http", "sse"], indirect=True)
async def test_remote_upstream_goes_away_and_comes_back(remote_upstream):
    router = config_router({"remote": {"url": remote_upstream.url}})
    async with router:
        await router.wait_ready()
        assert router.upstreams["remote"].transport == remote_upstream.transport
        before = int((await router.call("remote/whoami")).content[0].text)
        remote_upstream.stop()
        try:
            await router.call("remote/whoami")
            raise AssertionError("expected the call to fail while the server is down")
        except (UpstreamUnavailableError, UpstreamCallError) as exc:
            assert "remote" in str(exc)
        remote_upstream.start()
        for _ in range(100):
            try:
                after = int((await router.call("remote/whoami")).content[0].text)
                break
            except (UpstreamUnavailableError, UpstreamCallError):
                await asyncio.sleep(0.2)
        else:
            raise AssertionError("never reconnected")
        assert after != before


async def test_real_server_broken_at_start_is_retried_while_the_rest_serve(tmp_path):
    """mcp-server-sqlite (PyPI) crashes at start with the current mcp library."""
    router = config_router(
        {
            "sqlite": {"command": "mcp-server-sqlite", "args": ["--db-path", str(tmp_path / "db")]},
            "time": {"command": "mcp-server-time"},
        }
    )
    async with router:
        await router.wait_ready()
        states = {s.name: s for s in router.status()}
        assert states["sqlite"].state is UpstreamState.FAILED and states["sqlite"].error
        assert states["time"].state is UpstreamState.CONNECTED
        assert (await router.call("time/get_current_time", {"timezone": "UTC"})).is_error is False
        with pytest.raises(UpstreamUnavailableError, match="Server 'sqlite' is unreachable"):
            await router.call("sqlite/read_query", {"query": "select 1"})


async def test_health_checks_keep_live_servers_connected():
    """Pings must not take down a healthy server, whatever protocol era it speaks."""
    router = config_router(
        {"notes": stdio_entry("notes"), "time": {"command": "mcp-server-time"}},
        settings=replace(FAST, health_interval=0.2),
    )
    async with router:
        await router.wait_ready()
        await asyncio.sleep(1.5)  # several health intervals
        assert {s.name: s.state for s in router.status()} == {
            "notes": UpstreamState.CONNECTED,
            "time": UpstreamState.CONNECTED,
        }
        assert (await router.call("notes/create_note", {"title": "alive"})).content[0].text == "created alive"
