"""Reliability II (issue 14): operators, hostile upstreams and clients lose nothing, through real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.test_router_index import extra_tools_server, make_router, settings_with_cache

REPO = Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def cli(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "discovery_router", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


# -- 2: reindex --force keeps the cache -------------------------------------------------------------------


async def test_reindex_force_rewrites_nothing_away_and_reports_honest_counts(tmp_path: Path):
    cache = tmp_path / "cache"
    tools_file = tmp_path / "tools.json"
    servers = {"extra": extra_tools_server(tools_file, ["first_tool", "second_tool"])}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": servers, "router": {"cache_dir": str(cache)}}))
    first = cli(config, "reindex")
    assert first.returncode == 0, first.stderr
    tool_files = sorted((cache / "v1" / "tools").glob("*.json"))
    embedding_files = sorted((cache / "v1" / "embeddings").glob("*.npz"))
    assert tool_files and embedding_files

    forced = cli(config, "reindex", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "tools: 5 indexed, 0 new, 0 changed, 0 removed" in forced.stdout  # unchanged tools are unchanged
    assert "embedded: 5 tools (0 reused from the cache)" in forced.stdout  # --force still re-encodes
    assert sorted((cache / "v1" / "tools").glob("*.json")) == tool_files
    assert sorted((cache / "v1" / "embeddings").glob("*.npz")) == embedding_files
    again = cli(config, "reindex")
    assert "tools: 5 indexed, 0 new, 0 changed, 0 removed" in again.stdout
    assert "embedded: 0 tools (5 reused from the cache)" in again.stdout

    # The server is down afterwards: its tools are still searchable from the cache.
    broken = extra_tools_server(tools_file, ["first_tool", "second_tool"], UPSTREAM_BROKEN="1")
    router = make_router({"extra": broken}, settings_with_cache(cache))
    async with router:
        await router.wait_ready()
        hits = await router.search("extra tool called second tool")
        assert any(hit.id == "extra/second_tool" and not hit.available for hit in hits)


def test_reindex_force_killed_mid_run_loses_no_cache_file(tmp_path: Path):
    """Item 2's other half: a `reindex --force` killed while it waits for a slow server leaves every tool
    list and embeddings file of the previous run in place, unchanged."""
    import signal
    import time

    cache = tmp_path / "cache"
    extra = extra_tools_server(tmp_path / "tools.json", ["first_tool", "second_tool"])
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"mcpServers": {"extra": extra}, "router": {"cache_dir": str(cache)}}))
    assert cli(first, "reindex").returncode == 0
    files = {p: p.read_bytes() for p in sorted(cache.glob("v1/*/*")) if p.suffix in (".json", ".npz")}
    assert any(p.suffix == ".npz" for p in files) and any(p.parent.name == "tools" for p in files)

    started = tmp_path / "slow-started"
    slow = {
        "command": sys.executable,
        "args": ["-c", f"open({str(started)!r}, 'w').close(); import time; time.sleep(600)"],
    }
    second = tmp_path / "second.json"
    second.write_text(
        json.dumps(
            {"mcpServers": {"extra": extra, "slow": slow}, "router": {"cache_dir": str(cache), "connect_timeout": 300}}
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "discovery_router", "--config", str(second), "reindex", "--force"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert started.exists(), "the slow server never started"
        time.sleep(2.0)  # the run is now waiting for the slow server, past anything it does first
        assert process.poll() is None
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert {p: p.read_bytes() for p in files if p.exists()} == files


# -- 3: concurrent add / remove lose nothing --------------------------------------------------------------


def test_concurrent_adds_and_removes_lose_no_update(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {f"old{i}": {"command": "true"} for i in range(10)}}))

    def add(i: int) -> subprocess.CompletedProcess:
        return cli(config, "add", f"s{i}", "--", "true", str(i), timeout=120)

    def remove(i: int) -> subprocess.CompletedProcess:
        return cli(config, "remove", f"old{i}", timeout=120)

    with ThreadPoolExecutor(max_workers=30) as pool:
        adds = [pool.submit(add, i) for i in range(30)]
        removes = [pool.submit(remove, i) for i in range(10)]
        results = [f.result() for f in adds + removes]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    servers = json.loads(config.read_text())["mcpServers"]
    assert sorted(servers) == sorted(f"s{i}" for i in range(30))
    assert not list(tmp_path.glob(".config.json.*.tmp")) and not [
        p for p in tmp_path.iterdir() if p.name.startswith(".config.json.") and not p.name.endswith(".lock")
    ]
