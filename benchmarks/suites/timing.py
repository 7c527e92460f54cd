"""Timing primitives the latency suites share: a timed series, its percentiles, a server subprocess."""

from __future__ import annotations

import contextlib
import subprocess
import time

from benchmarks.suites.report import pct

from devkit.system import child_env, wait_for_port


async def timed(call, n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await call()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def stats(samples: list[float]) -> dict[str, float]:
    return pct(samples, 50, 90, 99) | {"n": len(samples)}


@contextlib.contextmanager
def subprocess_server(argv: list[str], port: int | None):
    process = subprocess.Popen(argv, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if port is not None:
            wait_for_port(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
