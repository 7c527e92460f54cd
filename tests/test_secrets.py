"""A planted secret never reaches the index cache, logs, search or describe results, errors or status."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from discovery_router.config.loader import parse_config
from discovery_router.errors import RouterError
from discovery_router.mcp.render import describe_text, search_results
from discovery_router.router import Router
from tests.conftest import FAST, stdio_entry

SECRET = "zq-SECRET-7f3a9c1e5b"
REPO = Path(__file__).parent.parent


def secret_config() -> dict:
    local = stdio_entry("notes")
    local["env"] = {**local["env"], "API_KEY": "${PLANTED}", "LITERAL": SECRET + "-literal"}
    return {
        "mcpServers": {
            "local": local,
            "remote": {
                "url": "http://127.0.0.1:9/mcp?token=${PLANTED}",
                "headers": {"Authorization": "Bearer ${PLANTED}"},
            },
        }
    }


async def test_planted_secret_appears_nowhere(tmp_path: Path, caplog, monkeypatch):
    monkeypatch.setenv("PLANTED", SECRET)
    caplog.set_level(logging.DEBUG)
    config = parse_config(secret_config(), environ=dict(os.environ))
    cache = tmp_path / "cache"
    outputs: list[str] = []
    router = Router(config.servers, replace(FAST, cache_dir=str(cache), embedding_model=None), redactor=config.redactor)
    async with router:
        await router.wait_ready()
        await router.wait_hybrid(timeout=120)
        outputs.append(search_results(await router.search("create a note", limit=10), 120))
        outputs.append(describe_text(await router.describe("local/create_note")))
        outputs.extend(f"{s.name} {s.state} {s.error}" for s in router.status())
        for name in ("remote/anything", "local/nope", "create_note"):
            try:
                await router.call(name, {"title": SECRET[:3]})
            except RouterError as exc:
                outputs.append(str(exc))
    assert any("remote" in line and "failed" in line for line in outputs)
    cached_bytes = b"".join(p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert cached_bytes, "the cache was written"
    assert SECRET.encode() not in cached_bytes
    assert SECRET not in "\n".join(outputs)
    assert SECRET not in caplog.text


def test_cli_status_list_and_verbose_logs_hide_the_secret(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(secret_config()))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLANTED": SECRET}
    for args in (["-v", "status"], ["list"], ["-v", "call", "remote/x"]):
        done = subprocess.run(
            [sys.executable, "-m", "discovery_router", "--config", str(config), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert "remote" in done.stdout + done.stderr, args  # it got as far as naming the server
        assert SECRET not in done.stdout + done.stderr, args
