"""The router with its index cache and hybrid search: restarts, stale servers, reindex."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fastmcp import FastMCP

from discovery_router.config.loader import parse_config

from discovery_router.config.model import RouterSettings
from discovery_router.errors import UpstreamUnavailableError
from discovery_router.mcp.render import search_results
from discovery_router.router import Router
from tests.conftest import FAST, stdio_entry
from tests.upstreams import build_notes, build_weather

REPO = Path(__file__).parent.parent


def settings_with_cache(cache: Path, **overrides) -> RouterSettings:
    return replace(FAST, cache_dir=str(cache), embedding_model=None, cache_poll_interval=0.2, **overrides)


def extra_tools_server(path: Path, names: list[str], **env: str) -> dict:
    path.write_text(json.dumps(names))
    entry = stdio_entry("notes")
    entry["env"] = {**entry["env"], "EXTRA_TOOLS_FILE": str(path), **env}
    return entry


def make_router(servers: dict, settings: RouterSettings) -> Router:
    config = parse_config({"mcpServers": servers}, environ=dict(os.environ))
    return Router(config.servers, settings, redactor=config.redactor)


async def run_once(servers: dict, settings: RouterSettings) -> Router:
    router = make_router(servers, settings)
    async with router:
        await router.wait_ready()
        assert await router.wait_hybrid(timeout=120)
    return router


async def test_hybrid_finds_a_tool_that_shares_no_word_with_the_query(tmp_path: Path):
    router = make_router(
        {"notes": stdio_entry("notes"), "weather": stdio_entry("weather")}, settings_with_cache(tmp_path / "cache")
    )
    async with router:
        assert await router.wait_hybrid(timeout=120)
        hits = [e.id for e in await router.search("jot down a memo", limit=3)]
        assert "notes/create_note" in hits


async def test_warm_restart_embeds_nothing_and_a_changed_tool_once(tmp_path: Path):
    settings = settings_with_cache(tmp_path / "cache")
    names = ["alpha_tool", "beta_tool", "gamma_tool"]
    servers = {"extra": extra_tools_server(tmp_path / "tools.json", names)}
    first = await run_once(servers, settings)
    total = len(first.catalog)
    assert first.indexer.embedding_counts.encoded == total == 6
    warm = await run_once(servers, settings)
    assert warm.indexer.embedding_counts.encoded == 0
    assert warm.indexer.embedding_counts.cached == total
    changed = await run_once(
        {"extra": extra_tools_server(tmp_path / "tools.json", ["alpha_tool", "beta_tool", "delta_tool"])}, settings
    )
    assert changed.indexer.embedding_counts.encoded == 1


async def test_a_server_down_at_start_stays_searchable_from_the_cache(tmp_path: Path):
    settings = settings_with_cache(tmp_path / "cache")
    await run_once({"notes": stdio_entry("notes")}, settings)
    broken = stdio_entry("notes")
    broken["env"] = {**broken["env"], "UPSTREAM_BROKEN": "1"}
    router = make_router({"notes": broken}, settings)
    async with router:
        assert (await router.search("create a new note"))[0].id == "notes/create_note"  # from the cache, at once
        await router.wait_ready()
        hits = await router.search("create a new note")
        assert hits[0].id == "notes/create_note" and not hits[0].available
        assert "notes/create_note [server unreachable]" in search_results(hits, 120)
        with pytest.raises(UpstreamUnavailableError, match="Server 'notes' is unreachable: "):
            await router.call("notes/create_note", {"title": "x"})


async def test_reindex_command_reports_and_a_running_router_picks_it_up(tmp_path: Path):
    cache = tmp_path / "cache"
    tools_file = tmp_path / "tools.json"
    servers = {"extra": extra_tools_server(tools_file, ["first_tool"])}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": servers, "router": {"cache_dir": str(cache)}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def reindex(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "discovery_router", "--config", str(config), "reindex", *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    done = reindex()
    assert done.returncode == 0, done.stderr
    assert "servers: 1 (1 connected)" in done.stdout
    assert "tools: 4 indexed, 4 new, 0 changed, 0 removed" in done.stdout
    assert "embedded: 4 tools (0 reused from the cache)" in done.stdout
    assert done.stderr.count("\r") == 0  # no progress bar when not on a terminal

    running = make_router(servers, settings_with_cache(cache))
    async with running:
        await running.wait_ready()
        assert "extra/second_tool" not in running.catalog
        tools_file.write_text(json.dumps(["first_tool", "second_tool"]))
        again = await asyncio.to_thread(reindex, "--server", "extra")
        assert "tools: 5 indexed, 1 new, 0 changed, 0 removed" in again.stdout
        assert "embedded: 1 tools (4 reused from the cache)" in again.stdout
        for _ in range(200):
            if "extra/second_tool" in running.catalog:
                break
            await asyncio.sleep(0.05)
        assert "extra/second_tool" in running.catalog
        assert (await running.call("extra/second_tool")).content[0].text == "extra"
    forced = reindex("--force")
    assert "embedded: 5 tools (0 reused from the cache)" in forced.stdout
    assert reindex("--server", "nope").returncode == 1


def _depot(instructions: str | None) -> FastMCP:
    """A server whose tools say nothing of what they are for: only its instructions do."""
    mcp = FastMCP("depot", instructions=instructions)

    @mcp.tool
    def list_items(prefix: str = "") -> list[str]:
        """List the items."""
        return []

    @mcp.tool
    def adjust(item: str, count: int) -> str:
        """Change the count of an item."""
        return item

    return mcp


DEPOT_INSTRUCTIONS = "Tracks the warehouse inventory of spare parts for the repair shop."


async def test_a_server_without_a_config_description_is_found_by_its_own_instructions():
    router = Router(
        {"depot": _depot(DEPOT_INSTRUCTIONS), "notes": build_notes(), "weather": build_weather()}, FAST, semantic=False
    )
    async with router:
        await router.wait_ready()
        assert "warehouse inventory" in router.server_descriptions()["depot"]
        hits = [e.id for e in await router.search("spare parts in the warehouse", limit=2)]
    assert sorted(hits) == ["depot/adjust", "depot/list_items"]


async def test_without_instructions_the_same_query_does_not_find_them():
    router = Router({"depot": _depot(None), "notes": build_notes(), "weather": build_weather()}, FAST, semantic=False)
    async with router:
        await router.wait_ready()
        assert "depot" not in router.server_descriptions()
        hits = [e.id for e in await router.search("spare parts in the warehouse", limit=2)]
    assert not any(h.startswith("depot/") for h in hits)
