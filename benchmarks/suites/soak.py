"""soak: the router serving calls for minutes, with its memory, descriptors and children sampled.

A real ``discovery-router serve --transport http`` subprocess routes to two
stdio upstreams (``echo_server.py``); a few concurrent MCP clients call through
it without pause, each call carrying a unique token that must come back. Every
second we sample the router's RSS, open file descriptors and child processes.
A leak shows as a rising line; a lost or crossed result fails the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.suites.context import Context

from benchmarks.suites.report import check, md_table, pyplot, save_figure

from devkit.system import child_env, free_port, rss_mb, wait_for_port, serve_http_argv

NAME = "soak"
ECHO = str(Path(__file__).resolve().parent / "echo_server.py")
CLIENTS = 8


def _fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _children(pid: int) -> int | None:
    """Processes whose parent is ``pid``, from /proc; None where /proc is missing."""
    if not Path("/proc").is_dir():
        return None
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                count += 1
        except (OSError, IndexError, ValueError):
            continue
    return count


async def run(ctx: Context) -> dict[str, Any]:
    from fastmcp import Client

    duration = float(os.environ.get("SOAK_SECONDS") or (15.0 if ctx.quick else 180.0))
    config = ctx.out / "soak-config.json"
    upstream = {"command": sys.executable, "args": [ECHO, "stdio"]}
    config.write_text(
        json.dumps(
            {
                "mcpServers": {"a": upstream, "b": upstream},
                "router": {
                    "cache_dir": "none",
                    "embedding_model": "none",
                    "audit_log": str(ctx.out / "soak-audit.jsonl"),
                },
            }
        )
    )
    port = free_port()
    router = subprocess.Popen(
        serve_http_argv(config, port),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    samples: list[dict[str, Any]] = []
    calls = mismatches = errors = 0
    error_samples: list[str] = []
    try:
        wait_for_port(port, router)
        async with Client(url) as warm:  # both upstreams connected before the clock starts
            for name in ("a/echo", "b/echo"):
                await warm.call_tool("call_tool", {"name": name, "arguments": {"text": "warm"}})
        start = time.monotonic()
        stop_at = start + duration

        async def caller(n: int) -> None:
            nonlocal calls, mismatches, errors
            async with Client(url) as client:
                i = 0
                while time.monotonic() < stop_at:
                    token = f"{n}-{i}-{uuid.uuid4().hex}"
                    result = await client.call_tool_mcp(
                        "call_tool", {"name": ("a/echo", "b/echo")[i % 2], "arguments": {"text": token}}
                    )
                    calls += 1
                    if result.is_error:
                        errors += 1
                        if len(error_samples) < 5:
                            error_samples.append(" ".join(getattr(b, "text", "") for b in result.content)[:300])
                    elif result.content[0].text != token:
                        mismatches += 1
                    i += 1

        async def sampler() -> None:
            while time.monotonic() < stop_at:
                samples.append(
                    {
                        "t": round(time.monotonic() - start, 2),
                        "rss_mb": rss_mb(router.pid),
                        "fds": _fds(router.pid),
                        "children": _children(router.pid),
                        "calls": calls,
                    }
                )
                await asyncio.sleep(1.0)

        await asyncio.gather(sampler(), *(caller(n) for n in range(CLIENTS)))
    finally:
        router.terminate()
        router.wait(30)
    ctx.log(f"soak: {calls} calls in {duration:.0f}s, {mismatches} crossed, {errors} errors")
    first, last = samples[len(samples) // 10] if samples else {}, samples[-1] if samples else {}
    growth = (last.get("rss_mb") or 0) - (first.get("rss_mb") or 0)
    checks = [
        check(
            "soak: every result back to its caller",
            "0 lost or crossed",
            f"{mismatches + errors} of {calls}",
            mismatches + errors == 0,
        ),
        check(
            "soak: descriptors and children stable",
            "no growth",
            f"fds {first.get('fds')} -> {last.get('fds')}, children {first.get('children')} -> {last.get('children')}",
            (last.get("fds") or 0) <= (first.get("fds") or 0) + 8 and last.get("children") == first.get("children"),
        ),
        check("soak: RSS growth after warm-up", "reported", f"{growth:+.1f} MiB", None),
    ]
    result = {
        "suite": NAME,
        "duration_s": duration,
        "clients": CLIENTS,
        "calls": calls,
        "calls_per_s": calls / duration,
        "mismatches": mismatches,
        "errors": errors,
        "error_samples": error_samples,
        "samples": samples,
        "checks": checks,
    }
    result["plots"] = [_plot(ctx, samples)]
    return result


def _plot(ctx: Context, samples: list[dict[str, Any]]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ts = [s["t"] for s in samples]
    axes[0].plot(ts, [s["rss_mb"] for s in samples], "o-", ms=3)
    axes[0].set_xlabel("seconds")
    axes[0].set_ylabel("router RSS (MiB)")
    axes[0].set_title("memory over time")
    axes[1].plot(ts, [s["fds"] for s in samples], "o-", ms=3, label="open fds")
    axes[1].plot(ts, [s["children"] for s in samples], "s-", ms=3, label="child processes")
    axes[1].set_xlabel("seconds")
    axes[1].legend()
    axes[1].set_title("descriptors and children")
    return save_figure(fig, ctx, "soak.png")


def summary(result: dict[str, Any]) -> str:
    samples = result.get("samples") or [{}]
    rows = [
        [f"{s.get('t')}", f"{s.get('rss_mb') or 0:.1f}", s.get("fds"), s.get("children"), s.get("calls")]
        for s in samples[:: max(1, len(samples) // 10)]
    ]
    return "\n".join(
        [
            "## Soak",
            "",
            f"`serve --transport http` routing to two stdio upstreams for {result.get('duration_s', 0):.0f} s, "
            f"{result.get('clients')} clients calling without pause: {result.get('calls', 0):,} calls "
            f"({result.get('calls_per_s', 0):.0f}/s), {result.get('mismatches', 0)} crossed, {result.get('errors', 0)} errors.",
            "",
            md_table(["t (s)", "RSS (MiB)", "fds", "children", "calls so far"], rows),
            "",
            "![soak](soak.png)",
        ]
    )
