"""What a search costs: ``Router.search`` in process and ``search_tools`` over MCP in memory at the corpus size,
a new query each call (query-vector cache cleared), and search_tools calls/s with 1, 8 and 64 in-memory clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from benchmarks.suites.context import Context
from benchmarks.suites.timing import stats, timed


async def measure_search(ctx: Context, n: int, warmup: int) -> dict[str, Any]:
    from fastmcp import Client

    from discovery_router.search.dense import QUERY_VECTORS

    shared = await ctx.corpus_router()
    router, server_client = shared.router, shared.client
    queries = [q["query"] for q in shared.corpus.queries] or ["send a message"]
    cycle = iter(range(10**9))

    def next_query() -> str:
        return queries[next(cycle) % len(queries)]

    out: dict[str, Any] = {
        "tools": len(shared.corpus.tools),
        "mode": shared.info.get("mode"),
        "query_vectors": "cold: the query-vector cache is cleared before each series",
    }
    QUERY_VECTORS.clear()
    out["router.search api"] = stats(await timed(lambda: router.search(next_query()), n, warmup))
    QUERY_VECTORS.clear()
    out["search_tools mcp-memory"] = stats(
        await timed(lambda: server_client.call_tool_mcp("search_tools", {"query": next_query()}), n, warmup)
    )
    ctx.log(f"latency: search_tools p50 {out['search_tools mcp-memory']['p50']:.3f} ms")

    # concurrent clients: each its own in-memory MCP session to the same router server
    app = server_client.transport.server if hasattr(server_client.transport, "server") else None
    concurrency = {}
    for clients in (1, 8, 64):
        per_client = max(3, (n if clients == 1 else n // 2) // clients)
        sessions = [Client(app) for _ in range(clients)] if app is not None else []
        async with contextlib.AsyncExitStack() as stack:
            for s in sessions:
                await stack.enter_async_context(s)
            latencies: list[float] = []

            async def worker(client, per_client=per_client, latencies=latencies):
                for _ in range(2):
                    await client.call_tool_mcp("search_tools", {"query": next_query()})
                for _ in range(per_client):
                    t0 = time.perf_counter_ns()
                    await client.call_tool_mcp("search_tools", {"query": next_query()})
                    latencies.append((time.perf_counter_ns() - t0) / 1e6)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(s) for s in sessions))
            wall = time.perf_counter() - t0 - 0  # warm-up calls included in wall: small (2 per client)
            concurrency[str(clients)] = stats(latencies) | {
                "throughput_per_s": (len(latencies) + 2 * clients) / wall if wall else None
            }
        ctx.log(f"latency: {clients} concurrent clients: {concurrency[str(clients)]['throughput_per_s']:.0f}/s")
    out["concurrency"] = concurrency
    return out
