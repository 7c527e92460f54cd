"""OAuth 2.1 upstreams (issue 16), against a real OAuth-protected MCP server on 127.0.0.1.

The server is FastMCP guarded by its in-memory authorization server (discovery, dynamic client
registration, PKCE, refresh with rotation; consent auto-approves). ``login --no-browser`` runs as a
user would run it, and the test plays the browser: it fetches the printed URL with an HTTP client
and follows the redirects to the router's callback. Nothing of the protocol is mocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from discovery_router.config.loader import parse_config
from discovery_router.errors import ConfigError, LoginRequiredError
from discovery_router.router import Router
from discovery_router.upstreams.status import UpstreamState
from discovery_router.upstreams.oauth import TokenStore, describe_storage, storage_backend, token_file
from tests.conftest import FAST
from tests.oauth_upstream import OAuthUpstream
from tests.upstreams import build_weather

REPO = Path(__file__).parent.parent
LOGIN_REQUIRED = "login required: run `discovery-router login vault`"


@pytest.fixture
def upstream() -> Iterator[OAuthUpstream]:
    server = OAuthUpstream()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Everything the router writes goes under tmp_path: data (tokens), cache, audit log. No OS keyring here
    (the fail backend), in this process and in the CLI subprocesses, so tokens go to the 0600 file."""
    monkeypatch.setenv("DISCOVERY_ROUTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DISCOVERY_ROUTER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DISCOVERY_ROUTER_AUDIT_LOG", str(tmp_path / "logs" / "audit.jsonl"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield tmp_path
    finally:
        keyring.set_keyring(previous)


def write_config(home: Path, upstream: OAuthUpstream, **router: object) -> Path:
    path = home / "config.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {"vault": {"url": upstream.url, "auth": "oauth"}},
                "router": {"embedding_model": "none", **router},
            }
        )
    )
    return path


def cli(config: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discovery_router", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def login(config: Path, *extra: str) -> tuple[int, str, str, str]:
    """``login vault --no-browser`` as a user over SSH runs it: read the URL it prints, open it (here: fetch it
    and follow the redirects, as a browser does), and wait for the command to finish. Returns
    (exit code, the URL line, the rest of stdout, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "discovery_router", "--config", str(config), "login", "vault", "--no-browser", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rstrip("\n")
        if url.startswith("http"):
            page = httpx2.get(url, follow_redirects=True, timeout=60)
            assert page.status_code == 200, page.text[:300]
        out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return process.returncode, url, out, err


def stored(home: Path) -> dict:
    return json.loads((home / "data" / "oauth" / "vault.json").read_text())


def stored_access_token(home: Path) -> str:
    tokens = stored(home)["mcp-oauth-token"]
    return next(iter(tokens.values()))["access_token"]


def router_for(config: Path, **settings: object) -> Router:
    parsed = parse_config(json.loads(config.read_text()), path=config, environ=dict(os.environ))
    return Router(parsed.servers, replace(FAST, **settings), redactor=parsed.redactor)


def files_written(home: Path) -> dict[Path, str]:
    """Every file the router wrote, except the credential store itself."""
    return {
        path: path.read_text(errors="replace")
        for path in home.rglob("*")
        if path.is_file() and path != token_file("vault") and path.name != "config.json"
    }


# -- the journey a new user takes ------------------------------------------------


def test_login_calls_restart_logout_and_tokens_nowhere_else(upstream: OAuthUpstream, home: Path):
    config = write_config(home, upstream)
    before = cli(config, "status")
    assert before.returncode == 1 and f"\t{LOGIN_REQUIRED}" in before.stdout  # the error column says just that
    refused = cli(config, "call", "vault/vault_balance", "--args", '{"account": "a1"}')
    assert refused.returncode == 1 and f"error: {LOGIN_REQUIRED}" in refused.stderr

    code, url, out, err = login(config)
    assert code == 0, err
    assert (
        url.startswith(f"{upstream.base}/authorize?")
        and "code_challenge=" in url
        and "redirect_uri=http%3A%2F%2F127.0.0.1" in url
    )
    assert "tokens stored in" in err and "mode 0600" in err and "not the OS keyring" in err
    issued = upstream.issued()
    assert len(issued) == 2  # one access and one refresh token
    assert stored_access_token(home) in issued

    # Each command is a new process: the tokens persist across restarts.
    status = cli(config, "status")
    assert status.returncode == 0 and "connected" in status.stdout, status.stdout + status.stderr
    called = cli(config, "-v", "call", "vault/vault_balance", "--args", '{"account": "a1"}')
    assert called.returncode == 0 and "a1: 1234.56 EUR" in called.stdout, called.stderr
    found = cli(config, "search", "vault balance of an account")
    described = cli(config, "describe", "vault/vault_balance")
    assert "vault/vault_balance" in found.stdout and "account" in described.stdout

    out_logout = cli(config, "logout", "vault")
    assert out_logout.returncode == 0 and not token_file("vault").exists()
    after = cli(config, "status")
    assert after.returncode == 1 and f"\t{LOGIN_REQUIRED}" in after.stdout
    again = cli(config, "call", "vault/vault_balance", "--args", '{"account": "a1"}')
    assert again.returncode == 1 and f"error: {LOGIN_REQUIRED}" in again.stderr
    assert cli(config, "logout", "vault").returncode == 1  # nothing left to forget

    issued |= upstream.issued()
    streams = [before, refused, status, called, found, described, out_logout, after, again]
    outputs = "\n".join(p.stdout + p.stderr for p in streams) + out + err + url
    written = files_written(home)
    assert any("audit.jsonl" in str(path) for path in written) and any("cache" in str(path) for path in written)
    for token in issued:
        assert token not in outputs
        for path, text in written.items():
            assert token not in text, path
        assert token not in config.read_text()


def test_token_file_is_private(upstream: OAuthUpstream, home: Path):
    config = write_config(home, upstream)
    assert login(config)[0] == 0
    path = token_file("vault")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert set(upstream.issued()) <= set(_values(stored(home)))


def _values(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for item in node.values() for v in _values(item)]
    return [node] if isinstance(node, str) else []


def test_doctor_says_login_required_with_the_command(upstream: OAuthUpstream, home: Path):
    config = write_config(home, upstream)
    report = cli(config, "doctor", "--json", timeout=180)
    text = report.stdout + report.stderr
    assert LOGIN_REQUIRED in text and "discovery-router login vault" in text


# -- refresh -------------------------------------------------------------------------


async def test_a_token_about_to_expire_is_refreshed_before_it_is_used(upstream: OAuthUpstream, home: Path, caplog):
    config = write_config(home, upstream)
    assert (await asyncio.to_thread(login, config))[0] == 0
    old = stored_access_token(home)
    document = stored(home)
    expiry = document["mcp-oauth-token-expiry"]
    for value in expiry.values():
        value["expires_at"] = time.time() + 20  # still valid, but within the refresh margin
    token_file("vault").write_text(json.dumps(document))
    caplog.set_level(logging.DEBUG)
    async with router_for(config) as router:
        await router.wait_ready()
        result = await router.call("vault/vault_balance", {"account": "b2"})
        assert result.content[0].text == "b2: 1234.56 EUR"
    new = stored_access_token(home)
    assert new != old and new in upstream.provider.access_tokens
    assert old not in upstream.provider.access_tokens  # rotated: the old one was given back by the refresh
    for token in (old, new, *upstream.issued()):
        assert token not in caplog.text


async def test_a_refused_access_token_is_refreshed_on_401(upstream: OAuthUpstream, home: Path, caplog):
    config = write_config(home, upstream)
    assert (await asyncio.to_thread(login, config))[0] == 0
    old = stored_access_token(home)
    caplog.set_level(logging.DEBUG)
    async with router_for(config) as router:
        await router.wait_ready()
        assert router.upstreams["vault"].state is UpstreamState.CONNECTED
        assert router.redact(f"token {old}") == "token ***"  # tokens join the redactor as they are loaded
        upstream.revoke_access_tokens()  # expired early, server side; the refresh token still works
        result = await router.call("vault/vault_balance", {"account": "c3"})
        assert result.content[0].text == "c3: 1234.56 EUR"
        new = stored_access_token(home)
        assert new != old
        assert router.redact(f"token {new}") == "token ***"
    assert old not in caplog.text and new not in caplog.text


async def test_a_refused_refresh_means_login_required_and_other_servers_carry_on(upstream: OAuthUpstream, home: Path):
    config = write_config(home, upstream)
    assert (await asyncio.to_thread(login, config))[0] == 0
    parsed = parse_config(json.loads(config.read_text()), path=config, environ=dict(os.environ))
    servers = {**parsed.servers, "weather": build_weather()}
    async with Router(servers, FAST, redactor=parsed.redactor) as router:
        await router.wait_ready()
        upstream.revoke_everything()  # the user revoked the app at the provider
        with pytest.raises(LoginRequiredError) as refused:
            await router.call("vault/vault_balance", {"account": "d4"})
        assert str(refused.value) == LOGIN_REQUIRED
        deadline = time.monotonic() + 30
        while router.upstreams["vault"].state is not UpstreamState.FAILED and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        status = {s.name: s for s in router.status()}
        assert status["vault"].state is UpstreamState.FAILED and status["vault"].error == LOGIN_REQUIRED
        assert status["weather"].state is UpstreamState.CONNECTED
        with pytest.raises(LoginRequiredError):
            await router.call("vault/vault_balance", {"account": "d4"})
        forecast = await router.call("weather/get_forecast", {"city": "Oslo"})
        assert not forecast.is_error


async def test_a_running_router_picks_up_a_new_login(upstream: OAuthUpstream, home: Path):
    config = write_config(home, upstream)
    # Retries an hour apart: only noticing the login itself can bring the server up in time.
    async with router_for(config, retry_initial=3600, retry_max=3600) as router:
        await router.wait_ready()
        vault = router.upstreams["vault"]
        assert vault.state is UpstreamState.FAILED and vault.error == LOGIN_REQUIRED
        assert (await asyncio.to_thread(login, config))[0] == 0
        deadline = time.monotonic() + 60
        while vault.state is not UpstreamState.CONNECTED and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert vault.state is UpstreamState.CONNECTED
        result = await router.call("vault/vault_balance", {"account": "e5"})
        assert result.content[0].text == "e5: 1234.56 EUR"


def test_a_pre_registered_client_logs_in_without_registration(
    upstream: OAuthUpstream, home: Path, monkeypatch: pytest.MonkeyPatch
):
    from mcp.shared.auth import OAuthClientInformationFull

    from devkit.system import free_port

    port, secret = free_port(), "static-client-secret-5b1e"
    upstream.provider.clients["router-app"] = OAuthClientInformationFull(
        client_id="router-app",
        client_secret=secret,
        redirect_uris=[f"http://127.0.0.1:{port}/callback"],
        token_endpoint_auth_method="client_secret_post",
        grant_types=["authorization_code", "refresh_token"],
    )
    monkeypatch.setenv("VAULT_CLIENT_SECRET", secret)
    config = home / "config.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "vault": {
                        "url": upstream.url,
                        "auth": "oauth",
                        "oauth": {
                            "clientId": "router-app",
                            "clientSecret": "${VAULT_CLIENT_SECRET}",
                            "callbackPort": port,
                        },
                    }
                },
                "router": {"embedding_model": "none"},
            }
        )
    )
    code, url, out, err = login(config)
    assert code == 0, err
    assert "client_id=router-app" in url and f"127.0.0.1%3A{port}%2Fcallback" in url
    assert list(upstream.provider.clients) == ["router-app"]  # nothing was registered dynamically
    called = cli(config, "call", "vault/vault_balance", "--args", '{"account": "g7"}')
    assert called.returncode == 0 and "g7: 1234.56 EUR" in called.stdout, called.stderr
    assert secret not in url + out + err + called.stdout + called.stderr


async def test_logout_reaches_a_running_router(upstream: OAuthUpstream, home: Path):
    config = write_config(home, upstream)
    assert (await asyncio.to_thread(login, config))[0] == 0
    async with router_for(config) as router:
        await router.wait_ready()
        assert (await router.call("vault/vault_balance", {"account": "f6"})).content[0].text == "f6: 1234.56 EUR"
        assert (await asyncio.to_thread(cli, config, "logout", "vault")).returncode == 0
        with pytest.raises(LoginRequiredError):  # its tokens still work at the server, but the user said no
            await router.call("vault/vault_balance", {"account": "f6"})
        await asyncio.sleep(1)
        assert not token_file("vault").exists()  # and the router did not write them back


def test_login_without_oauth_or_with_an_unknown_server_says_why(home: Path, upstream: OAuthUpstream):
    config = home / "config.json"
    config.write_text(json.dumps({"mcpServers": {"plain": {"url": upstream.url}}}))
    plain = cli(config, "login", "plain", "--no-browser")
    assert plain.returncode == 1 and '"auth": "oauth"' in plain.stderr
    missing = cli(config, "login", "nope", "--no-browser")
    assert missing.returncode == 1 and "no server 'nope'" in missing.stderr


# -- config ----------------------------------------------------------------------------


def test_config_takes_auth_oauth_and_its_settings():
    config = parse_config(
        {
            "mcpServers": {
                "crm": {
                    "url": "https://crm.example.com/mcp",
                    "auth": "oauth",
                    "oauth": {
                        "scopes": ["read", "write"],
                        "clientId": "router-app",
                        "clientSecret": "${CRM_SECRET}",
                        "callbackPort": 8901,
                    },
                }
            }
        },
        environ={"CRM_SECRET": "crm-client-secret-value"},
    )
    oauth = config.servers["crm"].oauth
    assert oauth is not None and oauth.scopes == ("read", "write") and oauth.client_id == "router-app"
    assert oauth.client_secret == "crm-client-secret-value" and oauth.callback_port == 8901
    assert config.redactor("x crm-client-secret-value") == "x ***"
    assert "crm-client-secret-value" not in repr(oauth)
    bare = parse_config({"mcpServers": {"a": {"url": "https://a.example.com/mcp", "auth": "oauth"}}})
    assert bare.servers["a"].oauth is not None and bare.servers["a"].oauth.client_id is None
    assert parse_config({"mcpServers": {"b": {"url": "https://b.example.com/mcp"}}}).servers["b"].oauth is None


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ({"command": "x", "auth": "oauth"}, "auth", "only remote"),
        ({"url": "https://a.example.com/mcp", "auth": "basic"}, "auth", 'must be "oauth"'),
        ({"url": "https://a.example.com/mcp", "oauth": {}}, "oauth", 'only with "auth": "oauth"'),
        (
            {"url": "https://a.example.com/mcp", "auth": "oauth", "oauth": {"scope": ["a"]}},
            "oauth.scope",
            "did you mean 'scopes'",
        ),
        (
            {"url": "https://a.example.com/mcp", "auth": "oauth", "oauth": {"callbackPort": 70000}},
            "oauth.callbackPort",
            "port",
        ),
        (
            {"url": "https://a.example.com/mcp", "auth": "oauth", "oauth": {"clientSecret": "s3cr3t-literal"}},
            "oauth.clientSecret",
            "needs oauth.clientId",
        ),
        (
            {"url": "https://a.example.com/mcp", "auth": "oauth", "oauth": {"clientId": "c", "clientSecret": 12345678}},
            "oauth.clientSecret",
            "must be a string",
        ),
    ],
)
def test_config_mistakes_name_the_field_and_never_the_value(entry: dict, field: str, words: str):
    with pytest.raises(ConfigError) as refused:
        parse_config({"mcpServers": {"srv": entry}}, path=Path("/cfg.json"))
    message = str(refused.value)
    assert f"server 'srv': field '{field}'" in message and words in message
    assert "s3cr3t-literal" not in message and "12345678" not in message


# -- where tokens live ----------------------------------------------------------------


class _SecureTestKeyring(KeyringBackend):
    """A keyring backend of our own (not keyrings.alt): stands in for the macOS Keychain or Secret Service."""

    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


async def test_tokens_go_to_a_real_os_keyring_when_there_is_one(home: Path):
    backend = _SecureTestKeyring()
    keyring.set_keyring(backend)
    assert storage_backend()[0] == "keyring" and "OS keyring" in describe_storage("vault")
    store = TokenStore("vault", staged=True)
    await store.put("k", {"access_token": "keyring-held-access-token"}, collection="mcp-oauth-token")
    await store.commit()
    assert not token_file("vault").exists()
    assert "keyring-held-access-token" in backend.entries[("discovery-router-oauth", "vault")]
    assert await TokenStore("vault").has_tokens()
    from discovery_router.upstreams.oauth import forget

    assert forget("vault") and not backend.entries


async def test_the_plaintext_keyrings_alt_backend_is_not_trusted_with_tokens(home: Path, tmp_path: Path):
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring_pass.cfg")
    keyring.set_keyring(backend)
    kind, why = storage_backend()
    assert kind == "file" and "keyrings.alt" in why and "plain file" in why
    store = TokenStore("vault", staged=True)
    await store.put("k", {"access_token": "never-in-plaintext-keyring"}, collection="mcp-oauth-token")
    await store.commit()
    assert token_file("vault").exists() and not Path(backend.file_path).exists()


def test_secret_set_says_plainly_when_the_keyring_is_the_plaintext_one(tmp_path: Path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path),
    }
    stored_secret = subprocess.run(
        [sys.executable, "-m", "discovery_router", "secret", "set", "api"],
        input="plain-secret-value\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stored_secret.returncode == 0, stored_secret.stderr
    assert "not an OS keyring" in stored_secret.stderr and "plain file" in stored_secret.stderr
    assert "in the OS keyring" not in stored_secret.stdout and "insecure keyring backend" in stored_secret.stdout
