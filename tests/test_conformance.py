"""The official MCP conformance suite (`@modelcontextprotocol/conformance`) against the router over HTTP.

`devkit/conformance.py` does the work: it serves the router (`discovery-router serve --transport
http`) with two stdio upstreams, `conformance` (devkit/conformance_upstream.py: the tools, resources
and prompts the suite asks for, under the names it uses) and `everything` (server-everything), runs
every server scenario once (about 10 s in all, most of it starting the router), and also runs the suite
straight against the fixture, to show that a failure through the router is the router's.

Each scenario then is one of (the lists, with reasons, are in devkit/conformance.py):
- NOT_APPLICABLE: it calls or lists a test tool by name, and the router exposes three meta-tools by
  design. The same tools are checked through call_tool instead (the last tests in this file).
- KNOWN_FAILURES: it applies and fails today (xfail, not strict: drop the entry once it passes).
- anything else must pass.

Needs node + npm (Node 22 and the suite come from npm and are cached); skipped without them.
"""

from __future__ import annotations

import base64
import sys
import time
import warnings
from collections.abc import AsyncIterator

import pytest
from fastmcp import Client

from devkit import conformance as suite
from devkit.conformance import FIXTURE_FAILS_DIRECTLY, KNOWN_FAILURES, NOT_APPLICABLE, SERVER_SCENARIOS
from devkit.conformance_upstream import WAV_SILENCE
from discovery_router.mcp.server import build_server
from tests.conftest import config_router
from tests.npm_packages import conformance


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    conformance()  # skips without node/npm; installs (once) otherwise
    started = time.monotonic()
    document = suite.run(direct=True, work_dir=tmp_path_factory.mktemp("conformance"))
    document["test_seconds"] = time.monotonic() - started
    print("\n" + suite.table(document), file=sys.stderr)
    return document


def by_name(document: dict) -> dict[str, dict]:
    return {r["scenario"]: r for r in document["scenarios"]}


def test_pinned_suite_lists_the_scenarios_we_classified():
    conformance()
    assert tuple(suite.list_scenarios()) == SERVER_SCENARIOS
    assert not (set(NOT_APPLICABLE) & set(KNOWN_FAILURES))
    assert set(NOT_APPLICABLE) | set(KNOWN_FAILURES) <= set(SERVER_SCENARIOS)


def test_every_scenario_ran(results: dict):
    assert set(by_name(results)) == set(SERVER_SCENARIOS)  # its time is in conformance.json, not asserted


def test_fixture_passes_the_suite_directly(results: dict):
    """The fixture is right: every scenario that fails through the router passes without it."""
    failing = {
        s: results["direct_failures"].get(s)
        for s, ok in results["direct"].items()
        if not ok and s not in FIXTURE_FAILS_DIRECTLY
    }
    assert not failing


@pytest.mark.parametrize("scenario", SERVER_SCENARIOS)
def test_scenario(results: dict, scenario: str):
    if scenario in NOT_APPLICABLE:
        pytest.skip(f"not applicable to a router: {NOT_APPLICABLE[scenario]}")
    outcome = by_name(results)[scenario]
    if scenario in KNOWN_FAILURES:
        if outcome["passed"]:
            warnings.warn(f"{scenario} passes now: drop it from KNOWN_FAILURES in devkit/conformance.py", stacklevel=1)
            return
        pytest.xfail(f"{KNOWN_FAILURES[scenario]} -- {'; '.join(outcome['failures'])}")
    assert outcome["passed"], "; ".join(outcome["failures"]) or "no check succeeded"


# -- the not-applicable tool scenarios, through call_tool ------------------------------------------


def fixture_entry() -> dict:
    return {
        "command": sys.executable,
        "args": [str(suite.FIXTURE_SCRIPT), "stdio"],
        "env": {"PYTHONPATH": str(suite.ROOT)},
    }


@pytest.fixture
async def fixture_client() -> AsyncIterator[tuple[Client, list]]:
    """A real MCP client (in memory) on the router, with the conformance fixture behind it over stdio."""
    logs: list = []

    async def on_log(message) -> None:
        logs.append(message)

    router = config_router({"conformance": fixture_entry()})
    async with Client(build_server(router), log_handler=on_log) as client:
        assert await router.wait_ready(), router.status()
        yield client, logs


async def call(client: Client, tool: str, **kwargs):
    return await client.call_tool_mcp("call_tool", {"name": f"conformance/{tool}", "arguments": {}}, **kwargs)


async def test_suite_content_types_through_call_tool(fixture_client):
    client, _ = fixture_client
    text = await call(client, "test_simple_text")
    assert text.content[0].text == "This is a simple text response for testing."

    image = await call(client, "test_image_content")
    assert image.content[0].type == "image" and image.content[0].mime_type == "image/png"

    audio = await call(client, "test_audio_content")
    assert audio.content[0].type == "audio" and audio.content[0].mime_type == "audio/wav"
    assert audio.content[0].data == WAV_SILENCE and base64.b64decode(audio.content[0].data)[:4] == b"RIFF"

    embedded = await call(client, "test_embedded_resource")
    assert str(embedded.content[0].resource.uri) == "test://embedded-resource"
    assert embedded.content[0].resource.text == "This is an embedded resource content."

    mixed = await call(client, "test_multiple_content_types")
    assert [block.type for block in mixed.content] == ["text", "image", "resource"]

    error = await call(client, "test_error_handling")
    assert error.is_error is True
    assert error.content[0].text == "This tool intentionally returns an error for testing"


async def test_suite_progress_through_call_tool(fixture_client):
    client, logs = fixture_client
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    result = await call(client, "test_tool_with_progress", progress_handler=on_progress)
    assert result.is_error is False
    assert progress == [(0, 100), (50, 100), (100, 100)]


async def test_suite_logging_through_call_tool(fixture_client):
    # Its own client: a handshake-era upstream's log lines name no call, so lines arriving just after
    # another (2026-era, hence unidentifiable) request ended are kept from every client.
    client, logs = fixture_client
    result = await call(client, "test_tool_with_logging")
    assert result.is_error is False
    messages = [str(getattr(log, "data", log)) for log in logs]
    for expected in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        assert any(expected in message for message in messages), messages
