"""What routing costs per call: the same upstream tool called directly, through
discovery-router and through fastmcp's ``create_proxy``; throughput under concurrent
clients; plus search_tools latency.

The headline is **end to end** (``e2e``): a real MCP client reaches ``discovery-router serve``
(a subprocess) and the ``create_proxy`` peer (``serve_proxy.py``, a subprocess), each of which
reaches the upstream over the same transport (stdio, or streamable HTTP on 127.0.0.1):
two hops against the direct one. The upstream is ``lean_echo.py`` (one ``echo`` tool on the
MCP SDK's low-level server): a FastMCP upstream spends 1-2 ms of its own per call on this VM,
which hid the router's added cost. Throughput: 1, 8 and 64 concurrent clients over HTTP
against one router (``serve --transport http``), against the proxy, and against the upstream
directly.

On stdio, ``router e2e, SDK path`` is the same router with its wire lane off (``DISCOVERY_ROUTER_WIRE_LANE=off``:
every request through the MCP SDK's dispatcher and runner), and ``bare relay e2e`` (``relay_floor.py``: a JSON-line relay with no MCP logic, on the router's
event loop) is the floor: what any Python process between client and upstream adds on this machine.

The in-process layers stay, labelled as such:

- ``api``: the forwarder's own Python entry point, in this process, with no front transport:
  ``Router.call("up/echo", ...)`` vs ``FastMCPProxy.call_tool("echo", ...)``, the router's against
  ``Client.call_tool_mcp`` on the very connection it uses.
- ``mcp-memory``: a fastmcp Client talks MCP in memory to ``build_server(router)``
  (``call_tool``) vs to ``create_proxy(...)`` (``echo``), both in this process; the in-memory
  upstream is ``echo_server.py`` (FastMCP).

Reported: p50/p90/p99 in ms over N sequential calls per series after warm-up, the series
interleaved call by call (round-robin) so machine load hits all alike; added = p50(forwarded) -
p50(direct); ratio = router added / create_proxy added; the load average before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.suites.report import save_figure, check, md_table, pyplot

from benchmarks.suites.context import SUITES_DIR, Context, bench_settings
from benchmarks.suites.search_latency import measure_search
from benchmarks.suites.timing import stats, subprocess_server

from devkit.system import ROOT, child_env, free_port
from discovery_router.paths import WIRE_LANE_ENV_VAR

NAME = "latency"
UPSTREAM = str(SUITES_DIR / "lean_echo.py")
PROXY = str(SUITES_DIR / "serve_proxy.py")
RELAY = str(SUITES_DIR / "relay_floor.py")
ARGS = {"text": "hello"}
OVERHEAD_TARGET_MS = 0.3
RATIO_TARGET = 0.2
THROUGHPUT_TARGET = 0.8
THROUGHPUT_CLIENTS = (1, 8, 64)
THROUGHPUT_ROUNDS = 3
"""Rounds per level: the targets take turns round by round, so a burst of load from elsewhere on the shared
machine hits each of them alike, not whichever ran at the time (one run per target varied 2x between runs)."""
THROUGHPUT_WARMUP = 3
"""Calls each session makes before the measured rounds (connection set-up, first-call caches)."""
SEARCH_TARGET_MS = 5.0


def _router_config(transport: str, url: str | None) -> dict[str, Any]:
    if transport == "stdio":
        return {"command": sys.executable, "args": [UPSTREAM, "stdio"], "env": {"PYTHONPATH": str(ROOT)}}
    return {"url": url}


def _router_config_file(folder: Path, transport: str, url: str | None) -> Path:
    """A config for ``serve`` routing to the upstream, audited as in production."""
    cfg = folder / f"config-{transport}.json"
    cfg.write_text(
        json.dumps(
            {
                "mcpServers": {"up": _router_config(transport, url)},
                "router": {"health_interval": 0, "audit_log": str(folder / "audit.jsonl")},
            }
        )
    )
    return cfg


async def _forwarding(ctx: Context, transport: str, n: int, warmup: int) -> dict[str, Any]:
    """Every layer for one upstream transport, measured round-robin.

    All series are set up first, then each round times one call of every
    series in turn, so background load on the machine hits them alike.
    """
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport
    from fastmcp.server import create_proxy

    from benchmarks.suites.echo_server import build_echo
    from discovery_router.config.loader import parse_config
    from discovery_router.router import Router
    from discovery_router.mcp.server import build_server

    calls: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        url = None
        if transport == "http":
            port = free_port()
            stack.enter_context(subprocess_server([sys.executable, UPSTREAM, "http", str(port)], port))
            url = f"http://127.0.0.1:{port}/mcp"

        def upstream():
            if transport == "memory":
                return build_echo()
            if transport == "stdio":
                return StdioTransport(sys.executable, [UPSTREAM, "stdio"], env={"PYTHONPATH": str(ROOT)})
            return url

        def new_router() -> Router:
            if transport == "memory":
                return Router({"up": build_echo()}, bench_settings(ctx))
            config = parse_config({"mcpServers": {"up": _router_config(transport, url)}})
            return Router(config.servers, bench_settings(ctx), redactor=config.redactor)

        direct = await stack.enter_async_context(Client(upstream()))
        calls["direct"] = lambda: direct.call_tool_mcp("echo", ARGS)

        router = await stack.enter_async_context(new_router())
        await router.wait_ready()
        calls["router api"] = lambda: router.call("up/echo", ARGS)
        # The same call on the router's own upstream connection, without the router: the baseline for the
        # router's api overhead, free of the p50 noise between two separate upstream processes.
        own = router.upstreams["up"].client
        calls["direct (router's connection)"] = lambda: own.call_tool_mcp("echo", ARGS)
        proxy = create_proxy(upstream(), name="proxy")
        calls["create_proxy api"] = lambda: proxy.call_tool("echo", ARGS)
        # The same proxy over one already-connected client (reuses its session; not the default).
        backend = await stack.enter_async_context(Client(upstream()))
        proxy_connected = create_proxy(backend, name="proxy")
        calls["create_proxy(connected client) api"] = lambda: proxy_connected.call_tool("echo", ARGS)

        served = new_router()
        front = await stack.enter_async_context(Client(build_server(served)))
        await served.wait_ready()
        calls["router mcp-memory"] = lambda: front.call_tool_mcp("call_tool", {"name": "up/echo", "arguments": ARGS})
        proxy_front = await stack.enter_async_context(Client(create_proxy(upstream(), name="proxy")))
        calls["create_proxy mcp-memory"] = lambda: proxy_front.call_tool_mcp("echo", ARGS)

        if transport in ("stdio", "http"):
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            cfg = _router_config_file(Path(tmp), transport, url)
            router_cmd = [sys.executable, "-m", "discovery_router", "--config", str(cfg), "serve"]
            proxy_cmd = [sys.executable, PROXY, transport]
            upstream_flag = ["--upstream-url", url] if transport == "http" else ["--upstream-stdio"]
            for label, tool, args in (
                ("router e2e", "call_tool", {"name": "up/echo", "arguments": ARGS}),
                ("create_proxy e2e", "echo", ARGS),
                *(
                    [("router e2e, SDK path", "call_tool", {"name": "up/echo", "arguments": ARGS})]
                    if transport == "stdio"
                    else []
                ),
            ):
                is_router = label.startswith("router")
                if transport == "stdio":
                    argv = router_cmd if is_router else proxy_cmd + upstream_flag
                    env = child_env() | ({WIRE_LANE_ENV_VAR: "off"} if label.endswith("SDK path") else {})
                    target: Any = StdioTransport(argv[0], argv[1:], env=env, keep_alive=False)
                else:
                    port = free_port()
                    argv = (
                        router_cmd + ["--transport", "http", "--port", str(port)]
                        if is_router
                        else proxy_cmd + [str(port)] + upstream_flag
                    )
                    stack.enter_context(subprocess_server(argv, port))
                    target = f"http://127.0.0.1:{port}/mcp"
                client = await stack.enter_async_context(Client(target, timeout=60))
                calls[label] = (lambda c, t, a: lambda: c.call_tool_mcp(t, a))(client, tool, args)
            if transport == "stdio":  # what any Python process in the middle costs (see relay_floor.py)
                relay = StdioTransport(sys.executable, [RELAY, UPSTREAM], env=child_env(), keep_alive=False)
                floor = await stack.enter_async_context(Client(relay, timeout=60))
                calls["bare relay e2e"] = lambda: floor.call_tool_mcp("echo", ARGS)

        # The target pair alone first (nothing else running between its calls), then every series.
        pair = await _interleave({k: calls[k] for k in ("router api", "direct (router's connection)")}, n, warmup)
        series = await _interleave(calls, n, warmup)
    ctx.log(f"latency: {transport}: " + ", ".join(f"{k} {v['p50']:.2f}" for k, v in series.items()))

    d = series["direct"]["p50"]
    overheads = {}
    for layer in ("api", "mcp-memory", "e2e"):
        mine, theirs = series.get(f"router {layer}"), series.get(f"create_proxy {layer}")
        if mine and theirs:
            r, p = mine["p50"] - d, theirs["p50"] - d
            if layer == "api":
                r = pair["router api"]["p50"] - pair["direct (router's connection)"]["p50"]
            overheads[layer] = {"router_ms": r, "create_proxy_ms": p, "ratio": r / p if p > 0 else None}
    return {"transport": transport, "series": series, "api_pair": pair, "overhead_p50": overheads}


async def _interleave(calls: dict[str, Any], n: int, warmup: int) -> dict[str, dict[str, Any]]:
    """p50/p90/p99 per series over ``n`` rounds, the series called in turn so load hits all alike."""
    samples: dict[str, list[float]] = {k: [] for k in calls}
    errors: dict[str, int] = {k: 0 for k in calls}
    for _ in range(warmup):
        for call in calls.values():
            await call()
    for _ in range(n):
        for label, call in calls.items():
            t0 = time.perf_counter_ns()
            result = await call()
            samples[label].append((time.perf_counter_ns() - t0) / 1e6)
            if getattr(result, "is_error", False):
                errors[label] += 1
    return {k: stats(v) | {"errors": errors[k]} for k, v in samples.items()}


async def _throughput(ctx: Context, calls: int) -> dict[str, Any]:
    """Calls per second with 1, 8 and 64 concurrent clients over streamable HTTP: direct, router, create_proxy.

    One upstream (lean echo over HTTP), one router (``serve --transport http``) and one proxy, all
    subprocesses; each client is its own MCP session, all driven from this process. ``calls`` is the
    total per level and target, split between the clients and :data:`THROUGHPUT_ROUNDS` rounds in which
    the targets take turns; calls/s is all of a target's calls over all of its rounds' wall time.
    """
    from fastmcp import Client

    out: dict[str, Any] = {"transport": "http", "calls_per_level": calls, "levels": {}}
    with contextlib.ExitStack() as processes, tempfile.TemporaryDirectory() as tmp:
        up_port, router_port, proxy_port = free_port(), free_port(), free_port()
        processes.enter_context(subprocess_server([sys.executable, UPSTREAM, "http", str(up_port)], up_port))
        up_url = f"http://127.0.0.1:{up_port}/mcp"
        cfg = _router_config_file(Path(tmp), "http", up_url)
        router_cmd = [sys.executable, "-m", "discovery_router", "--config", str(cfg), "serve"]
        processes.enter_context(
            subprocess_server(router_cmd + ["--transport", "http", "--port", str(router_port)], router_port)
        )
        processes.enter_context(
            subprocess_server([sys.executable, PROXY, "http", str(proxy_port), "--upstream-url", up_url], proxy_port)
        )
        targets = {
            "direct": (up_url, "echo", ARGS),
            "router": (f"http://127.0.0.1:{router_port}/mcp", "call_tool", {"name": "up/echo", "arguments": ARGS}),
            "create_proxy": (f"http://127.0.0.1:{proxy_port}/mcp", "echo", ARGS),
        }
        for clients in THROUGHPUT_CLIENTS:
            per_client = max(2, calls // (clients * THROUGHPUT_ROUNDS))
            runs: dict[str, list[tuple[list[float], int, float]]] = {label: [] for label in targets}
            async with contextlib.AsyncExitStack() as stack:
                sessions = {
                    label: [await stack.enter_async_context(Client(url, timeout=120)) for _ in range(clients)]
                    for label, (url, _tool, _args) in targets.items()
                }
                for label, (_url, tool, args) in targets.items():
                    await _drive(sessions[label], tool, args, THROUGHPUT_WARMUP)
                for _ in range(THROUGHPUT_ROUNDS):
                    for label, (_url, tool, args) in targets.items():
                        runs[label].append(await _drive(sessions[label], tool, args, per_client))
            level: dict[str, Any] = {}
            for label, rounds in runs.items():
                latencies = [ms for r in rounds for ms in r[0]]
                level[label] = stats(latencies) | {
                    "calls_per_s": len(latencies) / sum(r[2] for r in rounds),
                    "errors": sum(r[1] for r in rounds),
                    "rounds_calls_per_s": [len(r[0]) / r[2] for r in rounds],
                }
            out["levels"][str(clients)] = level
            ctx.log(
                f"latency: throughput, {clients} clients: "
                + ", ".join(
                    f"{k} {v['calls_per_s']:.0f}/s ({'/'.join(f'{x:.0f}' for x in v['rounds_calls_per_s'])})"
                    for k, v in level.items()
                )
            )
    return out


async def _drive(
    sessions: list[Any], tool: str, args: dict[str, Any], per_client: int
) -> tuple[list[float], int, float]:
    """Every session makes ``per_client`` calls in a row, all sessions at once: (latencies, errors, wall seconds)."""
    latencies: list[float] = []
    errors = 0

    async def worker(session: Any) -> None:
        nonlocal errors
        for _ in range(per_client):
            t0 = time.perf_counter_ns()
            result = await session.call_tool_mcp(tool, args)
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
            errors += bool(result.is_error)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(s) for s in sessions))
    return latencies, errors, time.perf_counter() - t0


async def run(ctx: Context) -> dict[str, Any]:
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    n, warmup = (40, 5) if ctx.quick else (500, 50)
    forwarding = []
    for transport in ("memory", "stdio", "http"):
        try:
            forwarding.append(await _forwarding(ctx, transport, n, warmup))
        except Exception as exc:  # keep the other transports' numbers
            ctx.log(f"latency: {transport} failed: {type(exc).__name__}: {exc}")
            forwarding.append(
                {"transport": transport, "error": f"{type(exc).__name__}: {exc}", "series": {}, "overhead_p50": {}}
            )
    try:
        throughput = await _throughput(ctx, 64 if ctx.quick else 1280)
    except Exception as exc:  # keep the latency numbers
        ctx.log(f"latency: throughput failed: {type(exc).__name__}: {exc}")
        throughput = {"error": f"{type(exc).__name__}: {exc}", "levels": {}}
    search = await measure_search(ctx, 120 if ctx.quick else 1000, 20)
    checks = make_checks(forwarding, throughput, search, ctx.quick)
    plots = [_plot(ctx, forwarding, search)]
    return {
        "suite": NAME,
        "quick": ctx.quick,
        "calls": n,
        "warmup": warmup,
        "forwarding": forwarding,
        "throughput": throughput,
        "search": search,
        "load_average": {"before": load_before, "after": os.getloadavg(), "cores": os.cpu_count()},
        "checks": checks,
        "plots": plots,
        "elapsed_s": time.perf_counter() - t_start,
        "meaning": __doc__,
    }


def make_checks(
    forwarding: list[dict[str, Any]], throughput: dict[str, Any], search: dict[str, Any], quick: bool
) -> list[dict[str, Any]]:
    """The goal of issue 17, stated plainly (e2e first), then the in-process and search targets."""
    checks = []
    by_transport = {f["transport"]: f for f in forwarding}
    sample = " (quick run: few calls, noisy)" if quick else ""
    stdio = by_transport.get("stdio", {}).get("overhead_p50", {}).get("e2e")
    http = by_transport.get("http", {}).get("overhead_p50", {}).get("e2e")
    checks.append(
        check(
            "e2e stdio: router's added p50 over direct (client -> serve -> upstream)",
            f"<= {OVERHEAD_TARGET_MS} ms",
            None if stdio is None else round(stdio["router_ms"], 3),
            None if stdio is None else stdio["router_ms"] <= OVERHEAD_TARGET_MS,
            ("" if stdio is None else f"create_proxy adds {stdio['create_proxy_ms']:.3f} ms")
            + _floor(by_transport)
            + sample,
        )
    )
    for transport, o in (("stdio", stdio), ("http", http)):
        ratio = None if o is None else o["ratio"]
        checks.append(
            check(
                f"e2e {transport}: router's added p50 / create_proxy's",
                f"< {RATIO_TARGET}",
                None if ratio is None else round(ratio, 3),
                None if ratio is None else ratio < RATIO_TARGET,
                (
                    "not measured"
                    if o is None
                    else f"router +{o['router_ms']:.3f} ms, create_proxy +{o['create_proxy_ms']:.3f} ms"
                )
                + sample,
            )
        )
    eight = throughput.get("levels", {}).get("8")
    share = eight["router"]["calls_per_s"] / eight["direct"]["calls_per_s"] if eight else None
    checks.append(
        check(
            "throughput, 8 concurrent clients over HTTP: router / direct",
            f">= {THROUGHPUT_TARGET:.0%}",
            None if share is None else round(share, 3),
            None if share is None else share >= THROUGHPUT_TARGET,
            throughput.get("error", "")
            or (
                f"direct {eight['direct']['calls_per_s']:.0f}/s, router {eight['router']['calls_per_s']:.0f}/s, "
                f"create_proxy {eight['create_proxy']['calls_per_s']:.0f}/s; clients driven from one process"
                if eight
                else ""
            ),
        )
    )
    api = by_transport.get("stdio", {}).get("overhead_p50", {}).get("api")
    memory = by_transport.get("memory", {}).get("overhead_p50", {}).get("api")
    if api:
        checks.append(
            check(
                "api (in-process, informational): Router.call added p50 over its own connection, stdio",
                f"<= {OVERHEAD_TARGET_MS} ms",
                round(api["router_ms"], 3),
                api["router_ms"] <= OVERHEAD_TARGET_MS,
                "no front transport: what the router's own Python adds"
                + (f"; in memory {memory['router_ms']:+.3f} ms" if memory else ""),
            )
        )
    own = search["router.search api"]["p50"]
    checks.append(
        check(
            f"search's own cost p50 at {search['tools']:,} tools, new query (router.search, {search['mode']})",
            f"<= {SEARCH_TARGET_MS} ms",
            round(own, 3),
            own <= SEARCH_TARGET_MS,
            "in-process, no MCP round trip; query vector cache cleared, so encoding included"
            + ("; quick subset" if quick else ""),
        )
    )
    sp50 = search["search_tools mcp-memory"]["p50"]
    checks.append(
        check(
            f"search_tools p50 at {search['tools']:,} tools (MCP in memory, {search['mode']})",
            f"<= {SEARCH_TARGET_MS} ms",
            round(sp50, 3),
            sp50 <= SEARCH_TARGET_MS,
            "quick subset" if quick else "",
        )
    )
    return checks


def _floor(by_transport: dict[str, Any]) -> str:
    """The bare relay's added p50 (relay_floor.py), the floor any Python process in the middle pays."""
    series = by_transport.get("stdio", {}).get("series", {})
    if "bare relay e2e" not in series or "direct" not in series:
        return ""
    added = series["bare relay e2e"]["p50"] - series["direct"]["p50"]
    return f"; a bare Python JSON relay (no MCP logic) adds {added:.3f} ms"


def _load(values: Any) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "n/a"


def _plot(ctx: Context, forwarding: list[dict[str, Any]], search: dict[str, Any]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    labels, p50, p99 = [], [], []
    for f in forwarding:
        for name, s in f["series"].items():
            labels.append(f"{f['transport']}: {name}")
            p50.append(s["p50"])
            p99.append(s["p99"])
    ys = range(len(labels))
    axes[0].barh(list(ys), p99, color="#f3b37a", label="p99")
    axes[0].barh(list(ys), p50, color="#3a78b5", label="p50")
    axes[0].set_yticks(list(ys), labels, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("ms per echo call")
    axes[0].legend()
    levels = list(search["concurrency"])
    axes[1].bar(levels, [search["concurrency"][c]["throughput_per_s"] for c in levels], color="#3a78b5")
    axes[1].set_xlabel("concurrent MCP clients (in memory)")
    axes[1].set_ylabel("search_tools calls / s")
    axes[1].set_title(f"search_tools at {search['tools']:,} tools")
    return save_figure(fig, ctx, "latency.png")


def summary(result: dict[str, Any]) -> str:
    load = result.get("load_average", {})
    lines = [
        "## Latency",
        "",
        f"{result['calls']} `echo` calls per series after {result['warmup']} warm-up calls, series interleaved "
        "call by call. Upstream: `suites/lean_echo.py` (MCP SDK low-level server) over the named transport. "
        f"Load average before/after: {_load(load.get('before'))} / {_load(load.get('after'))} "
        f"on {load.get('cores', '?')} cores (timings on a shared machine are noisy).",
        "",
        "**End to end** (a real client -> `discovery-router serve` / `create_proxy` as subprocesses -> upstream, "
        "every hop on the named transport; `direct` = the client straight to the upstream):",
        "",
    ]
    rows = []
    for f in result["forwarding"]:
        series = f.get("series", {})
        if "router e2e" not in series:
            continue
        d = series["direct"]
        for name in ("direct", "router e2e", "router e2e, SDK path", "create_proxy e2e", "bare relay e2e"):
            if name not in series:
                continue
            s = series[name]
            added = "" if name == "direct" else s["p50"] - d["p50"]
            rows.append([f["transport"], name.replace(" e2e", ""), s["p50"], s["p90"], s["p99"], added])
    lines.append(md_table(["transport", "series", "p50 ms", "p90 ms", "p99 ms", "added p50 ms"], rows))
    levels = result.get("throughput", {}).get("levels", {})
    if levels:
        lines += ["", "**Throughput** over streamable HTTP (calls/s; each client its own MCP session):", ""]
        rows = []
        for clients, level in levels.items():
            direct = level["direct"]["calls_per_s"]
            rows.append(
                [clients]
                + [level[k]["calls_per_s"] for k in ("direct", "router", "create_proxy")]
                + [
                    f"{level['router']['calls_per_s'] / direct:.0%}",
                    f"{level['create_proxy']['calls_per_s'] / direct:.0%}",
                ]
                + [level["router"]["p50"]]
            )
        lines.append(
            md_table(
                [
                    "clients",
                    "direct",
                    "router",
                    "create_proxy",
                    "router / direct",
                    "create_proxy / direct",
                    "router p50 ms",
                ],
                rows,
            )
        )
    lines += [
        "",
        "Every layer (api and mcp-memory are in-process and informational):",
        "",
    ]
    rows = []
    for f in result["forwarding"]:
        if f.get("error"):
            rows.append([f["transport"], "error", f["error"], "", "", "", ""])
        for name, s in f["series"].items():
            rows.append(
                [
                    f["transport"],
                    name,
                    s["p50"],
                    s["p90"],
                    s["p99"],
                    s["p50"] - f["series"]["direct"]["p50"] if name != "direct" else "",
                    s.get("errors", 0),
                ]
            )
    lines.append(
        md_table(["upstream transport", "series", "p50 ms", "p90 ms", "p99 ms", "added p50 ms", "errors"], rows)
    )
    lines += ["", "Overhead at p50 (router vs create_proxy):", ""]
    rows = []
    for f in result["forwarding"]:
        for layer, o in f.get("overhead_p50", {}).items():
            rows.append(
                [
                    f["transport"],
                    layer,
                    o["router_ms"],
                    o["create_proxy_ms"],
                    "n/a" if o["ratio"] is None else f"{o['ratio']:.2f}",
                ]
            )
    lines.append(md_table(["transport", "layer", "router +ms", "create_proxy +ms", "ratio"], rows))
    s = result["search"]
    lines += ["", f"search at {s['tools']:,} tools (router mode {s['mode']}):", ""]
    rows = [
        ["router.search (api)", s["router.search api"]["p50"], s["router.search api"]["p99"], ""],
        [
            "search_tools (MCP in memory, 1 client)",
            s["search_tools mcp-memory"]["p50"],
            s["search_tools mcp-memory"]["p99"],
            "",
        ],
    ]
    for c, v in s["concurrency"].items():
        rows.append([f"search_tools, {c} concurrent in-memory clients", v["p50"], v["p99"], v["throughput_per_s"]])
    lines.append(md_table(["what", "p50 ms", "p99 ms", "calls/s"], rows))
    lines += [
        "",
        "Concurrent clients share this process and its one event loop with the router (2 cores), "
        "so throughput is the router's single-loop capacity including fastmcp's MCP handling.",
        "",
        "![latency](latency.png)",
    ]
    return "\n".join(lines)
