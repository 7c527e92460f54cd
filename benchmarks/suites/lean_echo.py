"""The upstream for end-to-end latency runs: one ``echo`` tool on the MCP SDK's low-level server.

python lean_echo.py stdio
python lean_echo.py http PORT

Why not ``echo_server.py`` (FastMCP): on this VM a FastMCP server spends 1-2 ms of its own per call
(its tool machinery and its stdio worker threads), more than the whole budget the router is measured
against, so a router's added cost was lost in the upstream's. This one answers straight from the SDK's
handler; on stdio it uses the router's own pipe transport (no worker threads), the leanest Python
upstream the installed SDK allows.
"""

from __future__ import annotations

import sys

import anyio
import mcp_types
from mcp.server.lowlevel.server import Server

TOOL = mcp_types.Tool(
    name="echo",
    description="Echo the text back.",
    input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
)


async def _list_tools(_ctx: object, _params: object) -> mcp_types.ListToolsResult:
    return mcp_types.ListToolsResult(tools=[TOOL])


async def _call_tool(_ctx: object, params: mcp_types.CallToolRequestParams) -> mcp_types.CallToolResult:
    text = str((params.arguments or {}).get("text", ""))
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)])


def build_lean_echo() -> Server:
    return Server("lean-echo", on_list_tools=_list_tools, on_call_tool=_call_tool)


async def _serve_stdio() -> None:
    from discovery_router.mcp.stdio import stdio_streams

    server = build_lean_echo()
    async with stdio_streams() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(argv: list[str]) -> None:
    transport = argv[1] if len(argv) > 1 else "stdio"
    if transport == "http":
        import uvicorn

        app = build_lean_echo().streamable_http_app()
        uvicorn.run(app, host="127.0.0.1", port=int(argv[2]), log_level="warning")
    else:
        anyio.run(_serve_stdio)


if __name__ == "__main__":
    main(sys.argv)
