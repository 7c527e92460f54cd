"""A real FastMCP upstream for the governance tests: tools with every kind of annotation, and none.

Run as a script to serve it: ``python governance_upstreams.py stdio`` or ``... http PORT``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)
ADDITIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True)


def build_inventory() -> FastMCP:
    """An inventory with read-only, additive, destructive and unannotated tools."""
    mcp = FastMCP("inventory")
    calls: list[dict[str, Any]] = []
    mcp.calls = calls  # type: ignore[attr-defined]  # lets tests prove what was (not) forwarded

    @mcp.tool(annotations=READ_ONLY)
    def list_items() -> list[str]:
        """List every item in the inventory."""
        calls.append({"tool": "list_items"})
        return ["apple", "pear"]

    @mcp.tool
    def count_items() -> int:
        """Count the items in the inventory (no annotations)."""
        calls.append({"tool": "count_items"})
        return 2

    @mcp.tool
    def export_items(path: str) -> str:
        """Write the inventory to a file (no annotations)."""
        calls.append({"tool": "export_items", "path": path})
        return f"exported to {path}"

    @mcp.tool(annotations=ADDITIVE)
    def add_item(name: str, note: str = "") -> str:
        """Add an item to the inventory."""
        calls.append({"tool": "add_item", "name": name})
        return f"added {name}"

    @mcp.tool(annotations=DESTRUCTIVE)
    def delete_item(name: str) -> str:
        """Delete an item from the inventory for good."""
        calls.append({"tool": "delete_item", "name": name})
        return f"deleted {name}"

    @mcp.tool(annotations=DESTRUCTIVE)
    def drop_inventory() -> str:
        """Delete the whole inventory."""
        calls.append({"tool": "drop_inventory"})
        return "dropped"

    @mcp.tool(annotations=READ_ONLY)
    def search_tools(query: str) -> str:
        """An upstream tool whose name collides with a meta-tool."""
        return f"inventory search {query}"

    @mcp.tool(annotations=READ_ONLY)
    def check_item(name: str) -> str:
        """Check one item; reports a tool error for items it does not know."""
        raise ToolError("no such item")

    @mcp.tool(annotations=READ_ONLY)
    def read_env(name: str) -> str:
        """Return one environment variable of this server process (proves what it was given)."""
        return os.environ.get(name, "")

    @mcp.tool
    def whoami() -> str:
        """Report this server's process id."""
        return str(os.getpid())

    return mcp


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    server = build_inventory()
    if transport in ("http", "sse"):
        server.run(transport=transport, host="127.0.0.1", port=int(sys.argv[2]), show_banner=False)
    else:
        server.run(transport="stdio", show_banner=False)
