"""The MCP face of the router: exactly three tools, each a thin wrapper over :class:`Router`."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools.base import ToolResult
from pydantic import Field

from discovery_router import render
from discovery_router.errors import RouterError
from discovery_router.router import Router

INSTRUCTIONS = (
    "This server routes to many tools on other MCP servers. Find one with search_tools, "
    "read its input schema with describe_tool, then run it with call_tool using the id from the search results."
)

SEARCH_DESCRIPTION = (
    "Search the available tools by describing the task in plain words. Returns the best matches, one per "
    "line, as `<server>/<tool>: summary`. Use the id with describe_tool (for its parameters) and call_tool."
)
DESCRIBE_DESCRIPTION = (
    "Get one tool's full description and JSON input schema (plus output schema and annotations when it has "
    "them). Pass an id from search_tools, e.g. `time/get_current_time`. Call this before call_tool."
)
CALL_DESCRIPTION = (
    "Run a tool found with search_tools. `name` is its id from the search results; `arguments` is an object "
    "matching the schema from describe_tool. Invalid arguments are rejected with the reason, and nothing is run."
)

_READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}


def build_server(router: Router, *, name: str = "discovery-router") -> FastMCP:
    """A FastMCP server that starts the router's upstreams with its lifespan."""

    @asynccontextmanager
    async def lifespan(_app: FastMCP) -> AsyncIterator[None]:
        await router.start()
        try:
            yield
        finally:
            await router.stop()

    mcp = FastMCP(name, instructions=INSTRUCTIONS, lifespan=lifespan)

    @mcp.tool(name="search_tools", description=SEARCH_DESCRIPTION, output_schema=None, annotations=_READ_ONLY)
    async def search_tools(
        query: Annotated[str, Field(description="What you want to do, in plain words.")],
        limit: Annotated[int, Field(description="How many tools to return.", ge=1, le=50)] = 5,
        server: Annotated[str | None, Field(description="Only search this server's tools.")] = None,
    ) -> str:
        try:
            hits = await router.search(query, limit, server)
        except RouterError as exc:
            raise ToolError(str(exc)) from None
        return render.search_results(hits, router.settings.summary_chars)

    @mcp.tool(name="describe_tool", description=DESCRIBE_DESCRIPTION, output_schema=None, annotations=_READ_ONLY)
    async def describe_tool(
        name: Annotated[str, Field(description="Tool id from search_tools, `<server>/<tool>`.")],
    ) -> str:
        try:
            entry = await router.describe(name)
        except RouterError as exc:
            raise ToolError(str(exc)) from None
        return render.describe_text(entry)

    @mcp.tool(name="call_tool", description=CALL_DESCRIPTION, output_schema=None)
    async def call_tool(
        name: Annotated[str, Field(description="Tool id from search_tools, `<server>/<tool>`.")],
        arguments: Annotated[
            dict[str, Any] | str | None, Field(description="The tool's arguments, as an object.")
        ] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> ToolResult:
        # Upstream progress arrives on the upstream client's reader task, whose
        # context is not this request's; report it from a copy of ours.
        request_context = contextvars.copy_context()

        async def forward_progress(progress: float, total: float | None, message: str | None) -> None:
            if ctx is not None:
                await asyncio.create_task(ctx.report_progress(progress, total, message), context=request_context)

        try:
            result = await router.call(name, arguments, progress_handler=forward_progress)
        except RouterError as exc:
            raise ToolError(str(exc)) from None
        return ToolResult.from_mcp_result(result)

    return mcp
