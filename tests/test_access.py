"""``discovery-router serve --transport http`` access control, over real HTTP on 127.0.0.1.

Bearer token (401 without it), Origin check against DNS rebinding (403 for a
foreign Origin), and the refusal to bind a non-loopback address without a token.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastmcp import Client

from devkit.system import serve_http_argv
from discovery_router.mcp.access import AccessMiddleware, check_serving, is_loopback
from discovery_router.errors import RouterError
from tests.conftest import free_port, stdio_entry, wait_for_port

REPO = Path(__file__).parent.parent
TOKEN = "tok-3e9f1c0b7a5d42"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DISCOVERY_ROUTER_TOKEN"}
    # No keyring token either: this machine's keyring must not decide the test.
    return {**env, "PYTHONPATH": str(REPO), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", **extra}


@contextmanager
def serving(tmp_path: Path, env: dict[str, str], router: dict | None = None) -> Iterator[str]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {"notes": stdio_entry("notes")}, "router": router or {}}))
    port = free_port()
    process = subprocess.Popen(
        serve_http_argv(config, port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
        assert TOKEN.encode() not in err  # the token never reaches a log line


def request(url: str, **headers: str) -> tuple[int, dict[str, str]]:
    sent = urllib.request.Request(
        url, data=json.dumps(INITIALIZE).encode(), method="POST", headers={**MCP_HEADERS, **headers}
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def post(url: str, **headers: str) -> int:
    return request(url, **headers)[0]


def test_bearer_token_required_and_accepted_over_http(tmp_path: Path):
    allowed = "https://app.example.com"
    with serving(tmp_path, base_env(DISCOVERY_ROUTER_TOKEN=TOKEN), {"http_allowed_origins": [allowed]}) as url:
        assert post(url) == 401
        assert post(url, Authorization="Bearer wrong-token") == 401
        assert post(url, Authorization=f"Basic {TOKEN}") == 401
        assert post(url, Authorization=f"Bearer {TOKEN}", Origin="https://evil.example") == 403
        assert post(url, Origin="https://evil.example") == 403  # the Origin check comes first
        assert post(url, Authorization=f"Bearer {TOKEN}", Origin="http://localhost:3000") == 200
        assert post(url, Authorization=f"Bearer {TOKEN}", Origin=allowed) == 200
        assert post(url, Authorization=f"Bearer {TOKEN}") == 200
        status, headers = request(url)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")

        async def talk() -> str:
            async with Client(url, auth=TOKEN) as client:
                result = await client.call_tool("call_tool", {"name": "notes/create_note", "arguments": {"title": "t"}})
                return result.content[0].text

        assert asyncio.run(talk()) == "created t"


def test_loopback_without_a_token_serves_but_still_checks_origin(tmp_path: Path):
    with serving(tmp_path, base_env()) as url:
        assert post(url) == 200
        assert post(url, Origin="http://127.0.0.1:8080") == 200
        assert post(url, Origin="https://attacker.example") == 403  # DNS rebinding from a web page
        assert post(url, Origin="null") == 403
        assert post(url, Host="evil.example.com") == 421  # a rebound name, even without an Origin header


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "config.json"
    if not config.exists():
        config.write_text(json.dumps({"mcpServers": {}}))
    return subprocess.run(
        [sys.executable, "-m", "discovery_router", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_non_loopback_bind_without_token_is_refused(tmp_path: Path):
    done = run_cli(
        tmp_path, base_env(), "serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())
    )
    assert done.returncode == 1
    assert "refusing to serve over HTTP on 0.0.0.0 without a bearer token" in done.stderr
    assert "DISCOVERY_ROUTER_TOKEN" in done.stderr and "127.0.0.1" in done.stderr
    (tmp_path / "config.json").write_text(json.dumps({"mcpServers": {}, "router": {"http_require_token": True}}))
    required = run_cli(tmp_path, base_env(), "serve", "--transport", "http", "--port", str(free_port()))
    assert required.returncode == 1 and "router.http_require_token is true" in required.stderr


def test_access_rules_in_process():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.8.0.1", "a.localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "example.com", "::"))
    check_serving("127.0.0.1", None, require_token=False)
    check_serving("0.0.0.0", "t", require_token=True)
    for host, require in (("0.0.0.0", False), ("127.0.0.1", True)):
        try:
            check_serving(host, None, require_token=require)
        except RouterError:
            continue
        raise AssertionError(f"{host} without a token was allowed")
    guard = AccessMiddleware(None, token=None, allowed_origins=["https://*.corp.example"])
    assert guard.origin_allowed("https://tools.corp.example")
    assert guard.origin_allowed("http://[::1]:5173")
    assert not guard.origin_allowed("https://corp.example.evil.com")
    assert not guard.origin_allowed("file://")
