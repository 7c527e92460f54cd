"""Real FastMCP upstream servers for the tests: used in memory, as stdio subprocesses and over HTTP.

Run as a script to serve one: ``python upstreams.py stdio`` or ``python upstreams.py http PORT``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.tools.base import ToolResult
from mcp_types import ImageContent, TextContent
from pydantic import BaseModel, Field

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


class Forecast(BaseModel):
    city: str
    celsius: float
    summary: str


def build_weather() -> FastMCP:
    """Weather-flavoured tools with structured output, images, errors and progress."""
    mcp = FastMCP("weather")
    calls: list[dict[str, Any]] = []
    mcp.calls = calls  # type: ignore[attr-defined]  # lets tests prove nothing was forwarded

    @mcp.tool
    def get_forecast(city: Annotated[str, Field(description="City name")], days: int = 1) -> Forecast:
        """Get the weather forecast for a city."""
        calls.append({"tool": "get_forecast", "city": city, "days": days})
        return Forecast(city=city, celsius=21.5, summary=f"sunny for {days} day(s)")

    @mcp.tool
    def radar_image(region: str) -> ToolResult:
        """Return the rain radar picture of a region as a PNG image."""
        calls.append({"tool": "radar_image", "region": region})
        return ToolResult(
            content=[
                TextContent(type="text", text=f"radar for {region}"),
                ImageContent(type="image", data=PNG_1PX, mime_type="image/png"),
            ]
        )

    @mcp.tool
    def failing_station(station_id: str) -> ToolResult:
        """Read a weather station that always reports a fault."""
        calls.append({"tool": "failing_station"})
        return ToolResult(
            content=[TextContent(type="text", text=f"station {station_id} is offline")],
            structured_content={"station": station_id, "ok": False},
            is_error=True,
        )

    @mcp.tool
    async def slow_report(steps: int, ctx: Context) -> str:
        """Compile a long climate report, reporting progress as it goes."""
        for step in range(steps):
            await ctx.report_progress(step + 1, steps, f"step {step + 1}")
        return f"report done in {steps} steps"

    @mcp.tool
    def plan_trip(route: dict[str, Any], stops: list[str]) -> dict[str, Any]:
        """Plan a road trip along a route with several stops."""
        calls.append({"tool": "plan_trip"})
        return {"route": route, "stops": stops}

    @mcp.tool
    def echo(text: str) -> str:
        """Echo text back (weather edition)."""
        return f"weather:{text}"

    @mcp.tool
    def crash() -> str:
        """Stop this server process at once (to test reconnection)."""
        os._exit(3)

    @mcp.tool
    async def nap(seconds: float) -> str:
        """Sleep for a while before answering (to test call timeouts)."""
        calls.append({"tool": "nap", "event": "started"})
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            calls.append({"tool": "nap", "event": "cancelled"})
            raise
        return "rested"

    @mcp.tool
    async def record(path: str, seconds: float) -> str:
        """Append this process's id to a file, then sleep (shows from outside whether a call ran, and where)."""
        with open(path, "a") as file:
            file.write(f"{os.getpid()}\n")
        await asyncio.sleep(seconds)
        return "recorded"

    @mcp.tool
    def whoami() -> str:
        """Report this server's process id."""
        return str(os.getpid())

    return mcp


def build_notes() -> FastMCP:
    """A second server, sharing one tool name (``echo``) with weather."""
    mcp = FastMCP("notes")

    @mcp.tool
    def create_note(title: str, body: str = "") -> str:
        """Create a new note with a title and body text."""
        return f"created {title}"

    @mcp.tool
    def search_notes(query: str) -> list[str]:
        """Search saved notes by keyword."""
        return [f"note about {query}"]

    @mcp.tool
    def echo(text: str) -> str:
        """Echo text back (notes edition)."""
        return f"notes:{text}"

    return mcp


def build_rooted() -> FastMCP:
    """Takes its directories from the client's roots, as server-filesystem does: asks ``roots/list``
    right after the handshake (no call in flight) and again on ``notifications/roots/list_changed``."""
    mcp = FastMCP("rooted")
    seen: dict[str, Any] = {"roots": None, "error": None}
    tasks: set[asyncio.Task[None]] = set()

    async def ask(ctx: Any) -> None:
        connection = getattr(ctx.session, "_connection", ctx.session)
        try:
            result = await connection.send_request(mcp_types.ListRootsRequest())
            seen["roots"], seen["error"] = [str(root.uri) for root in result.roots], None
        except Exception as exc:  # noqa: BLE001 - reported by the tool below
            seen["error"] = str(exc)

    async def on_notification(ctx: Any, _params: Any) -> None:
        task = asyncio.create_task(ask(ctx))  # off the reader: the answer arrives on it
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for method in ("notifications/initialized", "notifications/roots/list_changed"):
        mcp._mcp_server.add_notification_handler(method, mcp_types.NotificationParams, on_notification)

    @mcp.tool
    def allowed_directories() -> str:
        """The roots this server was given, as JSON (or the error its roots/list got)."""
        return json.dumps(seen)

    return mcp


def build_garden() -> FastMCP:
    """A server whose tool list grows at run time: ``plant`` adds a tool and announces it with
    ``notifications/tools/list_changed``, as a real server does when its capabilities change."""
    mcp = FastMCP("garden")

    @mcp.tool
    async def plant(name: str, ctx: Context) -> str:
        """Plant a seed: this server gains a tool called ``name``."""
        mcp.tool(lambda: "grown", name=name, description=f"A freshly planted tool called {name.replace('_', ' ')}")
        await ctx.send_notification(mcp_types.ToolListChangedNotification())
        return f"planted {name}"

    return mcp


def build_talker() -> FastMCP:
    """A server that talks back during a call (logs, progress), with a destructive tool and a long nap."""
    mcp = FastMCP("talker")

    @mcp.tool
    async def chatty(text: str, ctx: Context) -> str:
        """Log two lines to the client, report progress twice, then answer."""
        await ctx.info(f"heard {text}")
        await ctx.report_progress(1, 2, "half")
        await ctx.warning("almost done")
        await ctx.report_progress(2, 2, "done")
        return f"said {text}"

    @mcp.tool(annotations={"destructiveHint": True, "readOnlyHint": False})
    def wipe(name: str) -> str:
        """Delete a record for good."""
        return f"wiped {name}"

    @mcp.tool
    async def nap(seconds: float, log: str) -> str:
        """Sleep before answering; append ``started``, then ``cancelled`` or ``woke``, to the file ``log``."""
        with open(log, "a") as file:
            file.write("started\n")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            with open(log, "a") as file:
                file.write("cancelled\n")
            raise
        with open(log, "a") as file:
            file.write("woke\n")
        return "rested"

    return mcp


def add_extra_tools(server: FastMCP, path: str) -> None:
    """Tools named in a JSON file, read at start: a server whose tool list changes between runs."""
    for name in json.loads(Path(path).read_text()):
        server.tool(lambda: "extra", name=name, description=f"An extra tool called {name.replace('_', ' ')}")


if __name__ == "__main__":
    if os.environ.get("UPSTREAM_BROKEN"):
        sys.exit("this upstream is configured to fail at start")
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    server = {"notes": build_notes, "rooted": build_rooted, "garden": build_garden, "talker": build_talker}.get(
        os.environ.get("UPSTREAM", ""), build_weather
    )()
    if os.environ.get("EXTRA_TOOLS_FILE"):
        add_extra_tools(server, os.environ["EXTRA_TOOLS_FILE"])
    if os.environ.get("UPSTREAM_STUBBORN"):  # ignores SIGTERM and outlives its stdin: only SIGKILL stops it
        import signal
        import time

        signal.signal(signal.SIGTERM, signal.SIG_IGN)

        @server.tool
        async def nap_after_progress(seconds: float, ctx: Context) -> str:
            """Report progress once (the caller then knows the call is running here), then sleep."""
            await ctx.report_progress(0, 1, "napping")
            await asyncio.sleep(seconds)
            return "rested"

    try:
        if transport in ("http", "sse"):
            server.run(transport=transport, host="127.0.0.1", port=int(sys.argv[2]), show_banner=False)
        else:
            server.run(transport="stdio", show_banner=False)
    finally:
        if os.environ.get("UPSTREAM_STUBBORN"):
            time.sleep(3600)
