"""The upstream for latency runs: a real FastMCP server with one trivial tool.

python echo_server.py stdio
python echo_server.py http PORT
"""

from __future__ import annotations

import sys

from fastmcp import FastMCP


def build_echo() -> FastMCP:
    mcp = FastMCP("echo")

    @mcp.tool
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    return mcp


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    server = build_echo()
    if transport == "http":
        server.run(transport="http", host="127.0.0.1", port=int(sys.argv[2]), show_banner=False, log_level="warning")
    else:
        server.run(transport="stdio", show_banner=False, log_level="warning")
