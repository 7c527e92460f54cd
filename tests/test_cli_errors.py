"""Ordinary user errors are one line on stderr, never a traceback box (issue 13).

Each case runs the real CLI as a subprocess (``serve`` over stdio and HTTP with a real client, and one-shot
commands) and reads its stderr. An upstream's own stderr is relayed prefixed with its name (``[library] ...``)
and is the upstream's business: those lines are left out of the check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError
from mcp import MCPError

from devkit.system import serve_http_argv
from discovery_router.cli.logs import OneLineErrors
from discovery_router.errors import UnknownToolError
from tests.conftest import free_port, wait_for_port
from tests.test_passthrough import library_stdio

REPO = Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
BROKEN = {"command": sys.executable, "args": ["-c", "import sys; sys.exit(1)"]}


def config(tmp_path: Path, servers: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"mcpServers": servers, "router": {"cache_dir": "none", "embedding_model": "none"}}))
    return path


def routers_own(stderr: str) -> str:
    """stderr without the lines relayed from an upstream's own stderr."""
    return "\n".join(line for line in stderr.splitlines() if "[library] " not in line)


def assert_one_line_errors(stderr: str) -> None:
    own = routers_own(stderr)
    assert "Traceback" not in own and "╭" not in own, own
    assert "Error calling tool 'call_tool'" not in own  # a model's mistake is its answer, not an error line
    assert "Error reading resource 'library://nope': " in own  # the upstream's refusal: one line, with why
    assert "Error rendering prompt 'library/summarize': " in own


async def ordinary_mistakes(client: Client) -> None:
    """Every request a model or a user commonly gets wrong, each answered with an error."""
    for tool, arguments in [
        ("call_tool", {"name": "nope/x"}),
        ("call_tool", {"name": "library/nap"}),
        ("call_tool", {"name": "broken/anything"}),
        ("describe_tool", {"name": "zzz"}),
        ("search_tools", {"query": "x", "server": "nope"}),
        ("call_tool", {"args": {}}),
    ]:
        assert (await client.call_tool_mcp(tool, arguments)).is_error
    for attempt in (
        client.read_resource("library://nope"),
        client.get_prompt("library/summarize", {}),
        client.get_prompt("zzz"),
    ):
        with pytest.raises(MCPError):
            await attempt


def test_serving_over_stdio_logs_ordinary_errors_on_one_line(tmp_path: Path):
    path = config(tmp_path, {"library": library_stdio(), "broken": BROKEN})
    log = tmp_path / "stderr.txt"

    async def talk() -> None:
        with log.open("w") as sink:
            transport = StdioTransport(
                sys.executable, ["-m", "discovery_router", "serve", "--config", str(path)], env=ENV, log_file=sink
            )
            async with Client(transport) as client:
                await ordinary_mistakes(client)

    asyncio.run(talk())
    stderr = log.read_text()
    assert "server broken is unreachable" in stderr  # the failed upstream at start-up: one warning line
    assert_one_line_errors(stderr)


def test_serving_over_http_logs_ordinary_errors_on_one_line(tmp_path: Path):
    path = config(tmp_path, {"library": library_stdio(), "broken": BROKEN})
    port = free_port()
    process = subprocess.Popen(
        serve_http_argv(path, port),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)

        async def talk() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                await ordinary_mistakes(client)

        asyncio.run(talk())
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert_one_line_errors(stderr)


def test_one_shot_commands_say_ordinary_errors_on_one_line(tmp_path: Path):
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"mcpServers": {"x": }')
    bad_entry = tmp_path / "bad_entry.json"
    bad_entry.write_text(
        json.dumps({"mcpServers": {"x": {"comand": "foo"}}, "router": {"cache_dir": "none", "embedding_model": "none"}})
    )
    for bad, said in [(broken_json, "invalid JSON"), (bad_entry, "did you mean 'command'?")]:
        served = subprocess.run(
            [sys.executable, "-m", "discovery_router", "--config", str(bad), "serve"],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert said in served.stderr and "Traceback" not in served.stderr, served.stderr
        assert len([line for line in served.stderr.splitlines() if said in line]) == 1
    assert served.returncode == 0  # one unusable server: the rest would serve (stdin at EOF ends it)
    path = config(tmp_path, {"library": library_stdio()})
    search = subprocess.run(
        [sys.executable, "-m", "discovery_router", "--config", str(path), "search", "--server", "nope", "poem"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert search.returncode == 1 and "error: Unknown server 'nope'. Servers: library." in search.stderr
    assert "Traceback" not in routers_own(search.stderr)


@pytest.mark.parametrize(
    "error, kept",
    [
        (UnknownToolError("Unknown tool 'x'.\nUse search."), False),
        (ToolError("no such item"), False),
        (ValueError("a real bug"), True),
    ],
)
def test_only_real_bugs_keep_their_traceback(error: BaseException, kept: bool):
    """The filter behind the above: a router refusal or an upstream's answer loses its traceback and is
    said on one line; any other exception keeps it (a bug to report)."""
    try:
        raise error
    except BaseException:
        record = logging.LogRecord(
            "fastmcp.server.server", logging.ERROR, __file__, 1, "Error calling tool %r", ("t",), sys.exc_info()
        )
    assert OneLineErrors().filter(record)
    text: Any = logging.Formatter("%(message)s").format(record)
    assert ("Traceback" in text) is kept
    if not kept:
        assert text == f"Error calling tool 't': {' '.join(str(error).split())}"
