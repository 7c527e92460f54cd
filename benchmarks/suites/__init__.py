"""Benchmark suites for discovery-router, one module per suite (see benchmarks/README.md).

Every suite module exposes ``NAME``, ``async def run(ctx) -> dict`` and
``def summary(result) -> str``. Suites import and drive the product's own
code (``discovery_router``) and real FastMCP servers; they
never re-implement its search or forwarding.
"""

SUITES = ("tokens", "retrieval", "latency", "scale", "soak")
