"""Context tokens a client pays: merged tool list vs the router's three tools plus lookups.

For each catalog:
- Merged: the ``tools/list`` result a merging proxy sends, served by fastmcp's
  ``create_proxy`` per backend mounted under its name (what fastmcp's MCPConfig
  proxy does), fetched by a real MCP client.
- Router upfront: the router's own ``tools/list`` (``build_server(router)``), pinned tools included.
- Per resolved lookup: one ``search_tools`` result at the default limit plus one
  ``describe_tool`` of the chosen (top gold) tool; median and p90 over the queries.
- Peer per lookup: FastMCP's ``BM25SearchTransform`` ``search_tools`` result at its
  default ``max_results`` (it returns full tool definitions, so no describe step).
- Break-even: lookups in one session after which the router has cost more than
  the merged list: ``(merged - upfront) / per-lookup median``.

Every count is of the MCP result object as the client receives it, serialized as
compact JSON (``model_dump(mode="json", by_alias=True, exclude_none=True)``);
the JSON-RPC envelope and the request side are not counted.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.suites.report import save_figure, check, fmt, md_table, pct, pyplot

from benchmarks.suites.context import ROOT, Context, settle_router

from benchmarks.suites.counting import TokenCounter, default_counters, wire_json

from benchmarks.suites.corpus import flat_server

NAME = "tokens"
UPFRONT_TARGET = 0.002  # router upfront < 0.2 % of merged tokens on the corpus
LOOKUP_TARGET = 350  # per lookup median <= 350 o200k tokens

# The example config has no labelled queries: these stand in (query, server, tool).
EXAMPLE_LOOKUPS = [
    ("what time is it in Tokyo right now", "time", "get_current_time"),
    ("convert 3pm New York time to London time", "time", "convert_time"),
    ("show the working tree status of the repository", "git", "git_status"),
    ("show the recent commit history", "git", "git_log"),
    ("show changes that are not staged yet", "git", "git_diff_unstaged"),
    ("commit the staged changes with a message", "git", "git_commit"),
    ("create a new branch", "git", "git_create_branch"),
    ("add files to the staging area", "git", "git_add"),
]


def _count(counters: list[TokenCounter], text: str) -> dict[str, int]:
    out = {c.name: c.count(text) for c in counters}
    out["bytes"] = len(text.encode("utf-8"))
    return out


async def _list_tokens(client: Any, counters: list[TokenCounter]) -> tuple[dict[str, int], int]:
    """Tokens of every tools/list page a client fetches (summed), and the number of tools."""
    totals: dict[str, int] = {}
    cursor, n = None, 0
    while True:
        result = await client.list_tools_mcp(cursor=cursor) if cursor else await client.list_tools_mcp()
        for key, value in _count(counters, wire_json(result)).items():
            totals[key] = totals.get(key, 0) + value
        n += len(result.tools)
        cursor = result.next_cursor
        if not cursor:
            return totals, n


async def _lookups(
    router_client: Any, peer_client: Any | None, lookups: list[tuple[str, str]], counters: list[TokenCounter]
) -> dict[str, Any]:
    """Per lookup: router search + describe of the chosen id; peer search."""
    rows: list[dict[str, Any]] = []
    for query, chosen in lookups:
        search = await router_client.call_tool_mcp("search_tools", {"query": query})
        describe = await router_client.call_tool_mcp("describe_tool", {"name": chosen})
        row: dict[str, Any] = {"query": query, "chosen": chosen, "describe_error": bool(describe.is_error)}
        s, d = _count(counters, wire_json(search)), _count(counters, wire_json(describe))
        for key in s:
            row[f"search_{key}"], row[f"describe_{key}"], row[f"lookup_{key}"] = s[key], d[key], s[key] + d[key]
        if peer_client is not None:
            peer = await peer_client.call_tool_mcp("search_tools", {"query": query})
            for key, value in _count(counters, wire_json(peer)).items():
                row[f"peer_{key}"] = value
        rows.append(row)
    return {"rows": rows}


def _summarize_lookups(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        entry: dict[str, Any] = {}
        for part in ("lookup", "search", "describe", "peer"):
            values = [r[f"{part}_{key}"] for r in rows if f"{part}_{key}" in r]
            if values:
                stats = pct(values, 50, 90)
                entry[part] = {"median": stats["p50"], "p90": stats["p90"], "mean": statistics.fmean(values)}
        out[key] = entry
    return out


def _break_even(merged: float, upfront: float, per_lookup: float | None) -> float | None:
    if not per_lookup:
        return None
    return max(0.0, (merged - upfront) / per_lookup)


async def _measure(
    label: str,
    *,
    merged_client: Any,
    router_client: Any,
    peer_client: Any | None,
    lookups: list[tuple[str, str]],
    counters: list[TokenCounter],
    note: str = "",
) -> dict[str, Any]:
    merged, n_merged = await _list_tokens(merged_client, counters)
    upfront, n_router = await _list_tokens(router_client, counters)
    peer_upfront, n_peer = await _list_tokens(peer_client, counters) if peer_client is not None else ({}, 0)
    per = await _lookups(router_client, peer_client, lookups, counters)
    keys = [c.name for c in counters] + ["bytes"]
    summary = _summarize_lookups(per["rows"], keys)
    result: dict[str, Any] = {
        "catalog": label,
        "note": note,
        "tools_in_merged_list": n_merged,
        "router_tools": n_router,
        "peer_tools": n_peer,
        "lookups": len(per["rows"]),
        "describe_errors": sum(r["describe_error"] for r in per["rows"]),
        "merged": merged,
        "router_upfront": upfront,
        "peer_upfront": peer_upfront,
        "per_lookup": summary,
        "upfront_share_of_merged": {k: upfront[k] / merged[k] if merged.get(k) else None for k in keys},
        "break_even_lookups": {
            k: {
                "router": _break_even(merged[k], upfront[k], summary[k].get("lookup", {}).get("median")),
                "peer": _break_even(merged[k], peer_upfront.get(k, 0), summary[k].get("peer", {}).get("median"))
                if peer_client is not None
                else None,
            }
            for k in keys
        },
        "lookup_rows": per["rows"],
    }
    return result


async def _example_catalog(ctx: Context, counters: list[TokenCounter]) -> dict[str, Any]:
    """The example config's real upstreams (mcp-server-time, mcp-server-git) over stdio."""
    from fastmcp import Client
    from fastmcp.server import create_proxy
    from fastmcp.server.transforms.search import BM25SearchTransform

    from discovery_router.config.loader import load_config
    from discovery_router.upstreams.transports import resolve_command
    from discovery_router.router import Router
    from discovery_router.mcp.server import build_server

    from benchmarks.suites.context import bench_settings

    config = load_config(ROOT / "examples" / "config.json")
    servers = config.enabled_servers
    mcp_config = {
        "mcpServers": {
            name: {
                k: v
                for k, v in {
                    "command": resolve_command(s.command or ""),
                    "args": list(s.args),
                    "env": dict(s.env) or None,
                    "cwd": s.cwd,
                }.items()
                if v is not None
            }
            for name, s in servers.items()
        }
    }
    # pinned tools are listed in the router's real tools/list, so they count in the upfront figure
    router = Router(
        servers,
        bench_settings(ctx, search_limit=config.settings.search_limit, pinned=config.settings.pinned),
        redactor=config.redactor,
    )
    merged = create_proxy(mcp_config)
    peer = create_proxy(mcp_config, name="peer")
    peer.add_transform(BM25SearchTransform())
    async with (
        Client(build_server(router)) as router_client,
        Client(merged) as merged_client,
        Client(peer) as peer_client,
    ):
        await settle_router(router, ctx)
        ids = {e.id for e in router.catalog.entries}
        lookups = []
        for query, server, tool in EXAMPLE_LOOKUPS:
            chosen = f"{server}/{tool}"
            if chosen not in ids:  # the upstream renamed a tool: describe the router's top hit instead
                hits = await router.search(query)
                if not hits:
                    continue
                chosen = hits[0].id
            lookups.append((query, chosen))
        return await _measure(
            "example config (mcp-server-time + mcp-server-git, stdio)",
            merged_client=merged_client,
            router_client=router_client,
            peer_client=peer_client,
            lookups=lookups,
            counters=counters,
            note="per-lookup queries are the 8 hand-written ones in suites/tokens.py",
        )


async def _corpus_catalog(ctx: Context, counters: list[TokenCounter]) -> dict[str, Any]:
    from fastmcp import Client
    from fastmcp.server.transforms.search import BM25SearchTransform

    from benchmarks.suites.corpus import merged_proxy

    shared = await ctx.corpus_router()
    corpus = shared.corpus
    peer, _back = flat_server(corpus, "peer")
    peer.add_transform(BM25SearchTransform())
    lookups = []
    for q in corpus.queries:
        first = q["gold"][0][0]
        if first["server"] in corpus.slugs:
            lookups.append((q["query"], f"{corpus.slugs[first['server']]}/{first['tool']}"))
    if ctx.quick:
        lookups = lookups[:40]
    async with Client(merged_proxy(shared.servers)) as merged_client, Client(peer) as peer_client:
        result = await _measure(
            f"corpus {corpus.name}: {len(corpus.tools)} tools, {len(corpus.servers)} servers",
            merged_client=merged_client,
            router_client=shared.client,
            peer_client=peer_client,
            lookups=lookups,
            counters=counters,
            note="peer = one FastMCP server holding the same tools (merged names) + BM25SearchTransform(), defaults",
        )
    result["step_search"] = await _step_searches(shared.client, corpus.queries, counters)
    return result


async def _step_searches(client: Any, queries: list[dict[str, Any]], counters: list[TokenCounter]) -> dict[str, Any]:
    """One ``search_tools`` with ``steps`` per query that carries a plan: its result's tokens, by plan length."""
    rows = []
    for q in queries:
        if q.get("steps"):
            result = await client.call_tool_mcp("search_tools", {"query": q["query"], "steps": q["steps"]})
            rows.append({"steps": len(q["steps"]), **_count(counters, wire_json(result))})
    out: dict[str, Any] = {"plans": len(rows), "by_steps": {}}
    for n in sorted({r["steps"] for r in rows}):
        values = [r["o200k_base"] for r in rows if r["steps"] == n]
        out["by_steps"][str(n)] = {"plans": len(values), "median": statistics.median(values), "max": max(values)}
    if rows:
        values = [r["o200k_base"] for r in rows]
        out["all"] = {
            "median": statistics.median(values),
            "per_step_median": statistics.median([r["o200k_base"] / r["steps"] for r in rows]),
        }
    return out


async def run(ctx: Context) -> dict[str, Any]:
    counters = default_counters()
    t0 = time.perf_counter()
    catalogs = []
    ctx.log("tokens: example config")
    catalogs.append(await _example_catalog(ctx, counters))
    ctx.log("tokens: corpus")
    catalogs.append(await _corpus_catalog(ctx, counters))
    corpus = catalogs[-1]
    share = corpus["upfront_share_of_merged"]["o200k_base"]
    median = corpus["per_lookup"]["o200k_base"]["lookup"]["median"]
    scope = " (quick subset, not the full corpus)" if ctx.quick else ""
    checks = [
        check(
            "router upfront / merged tokens (corpus, o200k)",
            f"< {UPFRONT_TARGET:.1%}",
            share,
            share < UPFRONT_TARGET,
            f"{corpus['router_upfront']['o200k_base']:,} vs {corpus['merged']['o200k_base']:,} tokens{scope}",
        ),
        check(
            "per resolved lookup median (corpus, o200k)",
            f"<= {LOOKUP_TARGET} tokens",
            median,
            median <= LOOKUP_TARGET,
            f"search + describe{scope}",
        ),
    ]
    four = (corpus.get("step_search") or {}).get("by_steps", {}).get("4")
    if four:
        checks.append(
            check(
                "step search result, 4-step plan, median (corpus, o200k)",
                f"<= {LOOKUP_TARGET} tokens",
                four["median"],
                four["median"] <= LOOKUP_TARGET,
                f"{four['plans']} plans; one search_tools with steps, no describe{scope}",
            )
        )
    plots = [_plot(ctx, catalogs)]
    return {
        "suite": NAME,
        "quick": ctx.quick,
        "tokenizers": [c.name for c in counters],
        "counted": "MCP result objects as compact JSON (model_dump by_alias, exclude_none); no JSON-RPC envelope",
        "catalogs": catalogs,
        "checks": checks,
        "plots": plots,
        "elapsed_s": time.perf_counter() - t0,
    }


def _plot(ctx: Context, catalogs: list[dict[str, Any]]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(catalogs), figsize=(6 * len(catalogs), 4.5))
    for ax, cat in zip(axes if len(catalogs) > 1 else [axes], catalogs):
        merged = cat["merged"]["o200k_base"]
        upfront = cat["router_upfront"]["o200k_base"]
        look = cat["per_lookup"]["o200k_base"].get("lookup", {}).get("median") or 0
        peer_up = cat["peer_upfront"].get("o200k_base", 0)
        peer_look = cat["per_lookup"]["o200k_base"].get("peer", {}).get("median") or 0
        n = max(1, int(min(200, 2 * (cat["break_even_lookups"]["o200k_base"]["router"] or 50))))
        xs = list(range(0, n + 1))
        ax.plot(xs, [merged] * len(xs), label="merged proxy (tools/list)")
        ax.plot(xs, [upfront + x * look for x in xs], label="discovery-router")
        if peer_look:
            ax.plot(xs, [peer_up + x * peer_look for x in xs], label="FastMCP BM25SearchTransform")
        ax.set_title(cat["catalog"][:60], fontsize=9)
        ax.set_xlabel("lookups in a session")
        ax.set_ylabel("o200k tokens received")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    return save_figure(fig, ctx, "tokens.png")


def summary(result: dict[str, Any]) -> str:
    lines = ["## Tokens", "", f"Counted: {result['counted']}. Tokenizers: {', '.join(result['tokenizers'])}.", ""]
    for cat in result["catalogs"]:
        lines += [f"### {cat['catalog']}", ""]
        if cat.get("note"):
            lines += [f"_{cat['note']}_", ""]
        rows = []
        for key in result["tokenizers"] + ["bytes"]:
            per = cat["per_lookup"][key]
            be = cat["break_even_lookups"][key]
            rows.append(
                [
                    key,
                    cat["merged"][key],
                    cat["router_upfront"][key],
                    f"{cat['upfront_share_of_merged'][key]:.3%}",
                    per["lookup"]["median"],
                    per["lookup"]["p90"],
                    per["search"]["median"],
                    per["describe"]["median"],
                    cat["peer_upfront"].get(key),
                    per.get("peer", {}).get("median"),
                    per.get("peer", {}).get("p90"),
                    fmt(be["router"]),
                    fmt(be["peer"]),
                ]
            )
        lines.append(
            md_table(
                [
                    "unit",
                    "merged list",
                    "router upfront",
                    "upfront/merged",
                    "lookup median",
                    "lookup p90",
                    "search median",
                    "describe median",
                    "peer upfront",
                    "peer lookup median",
                    "peer lookup p90",
                    "break-even (router)",
                    "break-even (peer)",
                ],
                rows,
            )
        )
        lines += [
            "",
            f"{cat['lookups']} lookups; tools in merged list: {cat['tools_in_merged_list']}; "
            f"describe errors: {cat['describe_errors']}.",
            "",
        ]
        steps = cat.get("step_search") or {}
        if steps.get("plans"):
            lines += [
                "Step search (`search_tools` with `steps`, one call, o200k tokens of its result, no describe):",
                "",
            ]
            lines.append(
                md_table(
                    ["steps in the plan", "plans", "median", "max"],
                    [[n, v["plans"], v["median"], v["max"]] for n, v in steps["by_steps"].items()],
                )
            )
            lines.append("")
    lines.append("![tokens](tokens.png)")
    return "\n".join(lines)
