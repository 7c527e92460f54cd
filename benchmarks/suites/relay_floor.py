"""The floor of the stdio e2e rows: a bare JSON-RPC line relay in Python, with no MCP logic at all.

python relay_floor.py UPSTREAM_SCRIPT

Reads JSON lines from its stdin, renumbers requests, writes them to the upstream (``UPSTREAM_SCRIPT stdio``,
its child) and the upstream's lines back with the client's ids: two pipe hops and a parse and a dump per
message each way, on the router's own event loop choice (:mod:`discovery_router.mcp.loop`). Nothing a router
does (validation, policy, audit, the MCP layers) is in it, so what it adds over ``direct`` is what any Python
process in the middle costs on this machine: the e2e target is read against it. Not a product; a reference.
"""

from __future__ import annotations

import asyncio
import json
import sys

from discovery_router.mcp.loop import run


async def relay(upstream_script: str) -> None:
    loop = asyncio.get_running_loop()
    upstream = await asyncio.create_subprocess_exec(
        sys.executable, upstream_script, "stdio", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert upstream.stdin is not None and upstream.stdout is not None
    client_in = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(client_in), sys.stdin.buffer)
    client_out, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout.buffer)
    ids: dict[str, object] = {}

    async def answers() -> None:
        assert upstream.stdout is not None
        while line := await upstream.stdout.readline():
            message = json.loads(line)
            if "method" not in message and message.get("id") in ids:
                message["id"] = ids.pop(message["id"])
                line = (json.dumps(message) + "\n").encode()
            client_out.write(line)

    answering = asyncio.ensure_future(answers())
    count = 0
    while line := await client_in.readline():
        message = json.loads(line)
        if "id" in message and "method" in message:
            count += 1
            ids[f"r{count}"], message["id"] = message["id"], f"r{count}"
            line = (json.dumps(message) + "\n").encode()
        upstream.stdin.write(line)
    answering.cancel()
    upstream.kill()


if __name__ == "__main__":
    run(relay(sys.argv[1]))
