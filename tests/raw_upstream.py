"""A handshake-era stdio MCP server written as bare JSON lines, for answers no SDK server would send.

``python raw_upstream.py``: tools ``malformed`` (its result has no content list), ``pid`` (this
process's id, to tell a restart) and ``echo``. Used where the router must cope with a broken
upstream without a library smoothing the bytes over.
"""

from __future__ import annotations

import json
import os
import sys

TOOLS = [
    {"name": name, "description": f"The {name} tool.", "inputSchema": {"type": "object"}}
    for name in ("malformed", "pid", "echo")
]


def answer(method: str, params: dict) -> dict:
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        name = params["name"]
        if name == "malformed":
            return {"content": "not a list", "isError": "perhaps"}
        text = str(os.getpid()) if name == "pid" else json.dumps(params.get("arguments"))
        return {"content": [{"type": "text", "text": text}]}
    return {}


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message:  # a notification
            continue
        reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer(message["method"], message.get("params", {}))}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
