"""A handshake-era stdio MCP server written as bare JSON lines, for answers no SDK server would send.

``python raw_upstream.py``: tools ``malformed`` (its result has no content list), ``pid`` (this
process's id, to tell a restart), ``echo``, ``where`` (its working directory and environment) and
``ask_garbled`` (sends the client a request no parser accepts, a lone surrogate escape, and returns
what the client answered). Used where the router must cope with a broken upstream without a library
smoothing the bytes over.
"""

from __future__ import annotations

import json
import os
import sys

TOOLS = [
    {"name": name, "description": f"The {name} tool.", "inputSchema": {"type": "object"}}
    for name in ("malformed", "pid", "echo", "where", "ask_garbled")
]

GARBLED = '{"jsonrpc": "2.0", "id": "garbled-1", "method": "roots/list", "params": {"why": "\\ud800"}}\n'


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
        if name == "where":
            text = json.dumps({"cwd": os.getcwd(), "env": dict(os.environ)})
        elif name == "ask_garbled":
            text = json.dumps(ask_garbled())
        else:
            text = str(os.getpid()) if name == "pid" else json.dumps(params.get("arguments"))
        return {"content": [{"type": "text", "text": text}]}
    return {}


def ask_garbled() -> dict:
    """Send :data:`GARBLED` and wait for the client's answer to it (anything else read meanwhile is dropped)."""
    sys.stdout.write(GARBLED)
    sys.stdout.flush()
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("id") == "garbled-1" and "method" not in message:
            return message
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
