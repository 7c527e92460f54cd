"""Several replicas of the router behind a load balancer behave as one service (issue 18, part B).

In process (fast): the shared ``requestState`` key ring, a 2026-era confirmation
finished by another server, a bridged ask retried on the wrong replica.
As processes (``devkit.replicas``): three ``serve --transport http`` replicas
with one config and one key, real clients spread round robin, health checks
with access control on, SIGTERM under load (nothing lost) and SIGKILL (only
that replica's calls fail).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import mcp_types
import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from devkit.replicas import HAProxy, ReplicaSet, RoundRobin, get_json
from discovery_router.config.loader import parse_config
from discovery_router.errors import ConfigError, RouterError
from discovery_router.mcp.server import build_server
from discovery_router.mcp.state_key import request_state_security, state_key_ring
from discovery_router.paths import STATE_KEY_ENV_VAR
from discovery_router.router import Router
from tests.conftest import FAST, config_router
from tests.governance_support import inventory_entry
from tests.governance_upstreams import build_inventory
from tests.test_passthrough import Answers, library_stdio

KEY = secrets.token_hex(32)
OLD_KEY = secrets.token_hex(32)
TOKEN = "replica-test-token-" + secrets.token_hex(8)
CONFIRM = "discovery-router/confirm"
DELETE = {"name": "inv/delete_item", "arguments": {"name": "apple"}}


def _accept() -> dict[str, Any]:
    return {CONFIRM: mcp_types.ElicitResult(action="accept", content={"value": True})}


async def _yes(message: str, response_type: Any, params: Any, context: Any) -> bool:
    return True


# -- the key ring --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("short-key", "too weak"),
        ("a" * 64, "too weak"),  # long, but not random text
        ("0123" * 16, "too weak"),
        (f"{KEY},,{OLD_KEY}", "is empty"),
        (f"{KEY},{KEY}", "same key twice"),
        (f"{KEY},tooshort", "key 2 of 2"),
    ],
)
def test_a_weak_or_malformed_state_key_is_refused_without_showing_it(value: str, complaint: str):
    with pytest.raises(RouterError) as caught:
        state_key_ring(replace(FAST, state_key=value), environ={})
    message = str(caught.value)
    assert complaint in message and "router.state_key" in message
    assert "secrets.token_hex(32)" in message or "comma" in message or "twice" in message
    for part in value.split(","):
        if len(part) >= 6:
            assert part not in message


def test_the_ring_comes_from_the_config_else_the_environment_first_key_sealing():
    assert state_key_ring(FAST, environ={}) is None
    assert state_key_ring(FAST, environ={STATE_KEY_ENV_VAR: f"{KEY}, {OLD_KEY}"}) == (
        (KEY, OLD_KEY),
        f"${STATE_KEY_ENV_VAR}",
    )
    configured = replace(FAST, state_key=OLD_KEY)
    assert state_key_ring(configured, environ={STATE_KEY_ENV_VAR: KEY}) == ((OLD_KEY,), "router.state_key")


def test_router_state_key_expands_variables_and_is_masked_everywhere(caplog: pytest.LogCaptureFixture):
    config = parse_config(
        {"mcpServers": {}, "router": {"state_key": "${TEAM_STATE_KEY}"}}, environ={"TEAM_STATE_KEY": KEY}
    )
    assert config.settings.state_key == KEY
    assert KEY not in repr(config.settings)
    assert config.redactor(f"key={KEY}") == "key=***"
    with pytest.raises(ConfigError) as caught:
        parse_config({"mcpServers": {}, "router": {"state_key": "${TEAM_STATE_KEY}"}}, environ={})
    assert "router.state_key" in str(caught.value) and "TEAM_STATE_KEY is not set" in str(caught.value)
    router = Router.from_config(config)
    with caplog.at_level(logging.INFO):
        assert request_state_security(config.settings, redactor=config.redactor) is not None
        logging.getLogger("discovery_router.test").warning("leaked %s", KEY)
    assert KEY not in caplog.text and router.redact(KEY) == "***"


# -- a 2026-era confirmation across two servers, in process --------------------


async def test_a_confirmation_started_on_one_server_completes_on_another_with_the_shared_key(tmp_path: Path):
    """Leg 1 (the question) on server A, leg 2 (the user's yes) on server B: B runs the call; a replay is asked
    again on B, and on A too once the two share their spent nonces."""
    settings = replace(FAST, confirm_destructive=True, audit_log="none")
    inventories = [build_inventory(), build_inventory()]
    routers = [Router({"inv": inventory}, settings) for inventory in inventories]
    security = request_state_security(replace(settings, state_key=KEY), environ={})
    routers[1].governance.nonces = routers[0].governance.nonces  # a store shared by both (the team database's job)
    async with (
        Client(build_server(routers[0], state_security=security), elicitation_handler=_yes) as a,
        Client(build_server(routers[1], state_security=security), elicitation_handler=_yes) as b,
    ):
        asked = await a.session.call_tool("call_tool", DELETE, allow_input_required=True)
        assert isinstance(asked, mcp_types.InputRequiredResult) and CONFIRM in asked.input_requests
        done = await b.session.call_tool(
            "call_tool", DELETE, input_responses=_accept(), request_state=asked.request_state, allow_input_required=True
        )
        assert isinstance(done, mcp_types.CallToolResult) and done.content[0].text == "deleted apple"
        for replica in (b, a):  # the same accepted answer again, on either server: asked again, nothing runs
            replayed = await replica.session.call_tool(
                "call_tool",
                DELETE,
                input_responses=_accept(),
                request_state=asked.request_state,
                allow_input_required=True,
            )
            assert isinstance(replayed, mcp_types.InputRequiredResult)
    assert [len(inventory.calls) for inventory in inventories] == [0, 1]


async def test_without_a_shared_key_another_server_cannot_open_the_state():
    settings = replace(FAST, confirm_destructive=True, audit_log="none")
    inventories = [build_inventory(), build_inventory()]
    routers = [Router({"inv": inventory}, settings) for inventory in inventories]
    async with (
        Client(build_server(routers[0]), elicitation_handler=_yes) as a,
        Client(build_server(routers[1]), elicitation_handler=_yes) as b,
    ):
        asked = await a.session.call_tool("call_tool", DELETE, allow_input_required=True)
        assert isinstance(asked, mcp_types.InputRequiredResult)
        with pytest.raises(Exception, match="Invalid or expired requestState"):
            await b.session.call_tool(
                "call_tool",
                DELETE,
                input_responses=_accept(),
                request_state=asked.request_state,
                allow_input_required=True,
            )
    assert [len(inventory.calls) for inventory in inventories] == [0, 0]


# -- a bridged ask (handshake-era upstream, 2026-era client) -------------------


async def test_a_bridged_ask_answered_on_another_replica_gets_a_clear_error_and_runs_nothing_again():
    """The upstream's call waits in replica A's memory; B cannot answer it and says why, instead of starting the
    tool again; A still can."""
    security = request_state_security(replace(FAST, state_key=KEY), environ={})
    routers = [config_router({"library": library_stdio()}) for _ in range(2)]
    answers = Answers()
    handlers = {"elicitation_handler": answers.elicit, "sampling_handler": answers.sample}
    order = {"name": "library/confirm_order", "arguments": {"item": "tea"}}
    answer = {"upstream-ask": mcp_types.ElicitResult(action="accept", content={"quantity": 2})}
    async with (
        Client(build_server(routers[0], state_security=security), **handlers) as a,
        Client(build_server(routers[1], state_security=security), **handlers) as b,
    ):
        asked = await a.session.call_tool("call_tool", order, allow_input_required=True)
        assert isinstance(asked, mcp_types.InputRequiredResult)
        elsewhere = await b.session.call_tool(
            "call_tool", order, input_responses=answer, request_state=asked.request_state, allow_input_required=True
        )
        assert isinstance(elsewhere, mcp_types.CallToolResult) and elsewhere.is_error
        text = elsewhere.content[0].text
        assert "not waiting in this router process" in text and "Nothing was run again" in text
        assert "one replica" in text
        here = await a.session.call_tool(
            "call_tool", order, input_responses=answer, request_state=asked.request_state, allow_input_required=True
        )
        assert isinstance(here, mcp_types.CallToolResult) and here.content[0].text == "ordered 2 x tea"


# -- three `serve --transport http` replicas -----------------------------------

NAP = 0.4


def team_config(tmp_path: Path, **router: Any) -> Path:
    """One config for every replica: a confirming inventory and a library whose `nap` keeps a call in flight."""
    config = tmp_path / "config.json"
    servers = {"inv": inventory_entry(confirmDestructive=True), "lib": library_stdio("lib")}
    settings = {"embedding_model": "none", "connect_timeout": 30, "retry_initial": 0.2, **router}
    config.write_text(json.dumps({"mcpServers": servers, "router": settings}))
    return config


def client(url: str, **kwargs: Any) -> Client:
    return Client(url, auth=TOKEN, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory):
    """Three replicas, one config, one state key, access control on (a bearer token)."""
    folder = tmp_path_factory.mktemp("team")
    with ReplicaSet(team_config(folder), env={STATE_KEY_ENV_VAR: KEY, "DISCOVERY_ROUTER_TOKEN": TOKEN}) as replicas:
        yield replicas


def test_health_checks_need_no_token_and_reveal_nothing(team: ReplicaSet):
    for replica in team:
        assert replica.liveness() == (200, {"status": "alive"})
        status, body = replica.readiness()
        assert (status, body["status"]) == (200, "ready") and set(body) <= {"status", "search"}
        assert get_json(replica.url)[0] == 401  # the MCP endpoint itself still wants the token
        log = replica.log_text()
        assert KEY not in log and TOKEN not in log


async def test_a_confirmation_started_on_one_replica_completes_on_the_next(team: ReplicaSet):
    for i in range(3):
        first, second = team[i], team[(i + 1) % 3]
        call = {"name": "inv/delete_item", "arguments": {"name": f"item-{i}"}}
        async with client(first.url, elicitation_handler=_yes) as a, client(second.url, elicitation_handler=_yes) as b:
            asked = await a.session.call_tool("call_tool", call, allow_input_required=True)
            assert isinstance(asked, mcp_types.InputRequiredResult) and CONFIRM in asked.input_requests
            done = await b.session.call_tool(
                "call_tool",
                call,
                input_responses=_accept(),
                request_state=asked.request_state,
                allow_input_required=True,
            )
            assert isinstance(done, mcp_types.CallToolResult) and done.content[0].text == f"deleted item-{i}"
    confirmed = []
    for replica in team:
        audit = team.config.parent / f"audit-{replica.index}.jsonl"
        lines = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
        confirmed += [(replica.index, line["tool"]) for line in lines if line.get("confirmed")]
    assert sorted(confirmed) == [(0, "delete_item"), (1, "delete_item"), (2, "delete_item")]  # each ran where retried


async def test_without_a_shared_key_the_next_replica_refuses_the_state(tmp_path: Path):
    with ReplicaSet(team_config(tmp_path), count=2, env={"DISCOVERY_ROUTER_TOKEN": TOKEN}) as replicas:
        async with (
            client(replicas[0].url, elicitation_handler=_yes) as a,
            client(replicas[1].url, elicitation_handler=_yes) as b,
        ):
            asked = await a.session.call_tool("call_tool", DELETE, allow_input_required=True)
            assert isinstance(asked, mcp_types.InputRequiredResult)
            with pytest.raises(Exception, match="Invalid or expired requestState"):
                await b.session.call_tool(
                    "call_tool",
                    DELETE,
                    input_responses=_accept(),
                    request_state=asked.request_state,
                    allow_input_required=True,
                )


class Sent:
    """One call through the balancer: where it went, when, and how it ended."""

    def __init__(self, replica: int, sent: float) -> None:
        self.replica, self.sent = replica, sent
        self.done = 0.0
        self.ok = False
        self.text = ""


async def load(
    pick: Callable[[], tuple[int, str]], calls: list[Sent], stop: asyncio.Event, *, once: bool = False
) -> None:
    """One client of many: call after call, each to the (replica, URL) ``pick`` gives, until ``stop`` (or once)."""
    while not stop.is_set():
        if once:
            stop.set()
        index, url = pick()
        sent = Sent(index, time.monotonic())
        calls.append(sent)
        seconds = round(NAP + len(calls) * 1e-5, 5)  # each call's own answer: one that crossed would not match
        try:
            async with client(url) as c:
                result = await c.call_tool_mcp("call_tool", {"name": "lib/nap", "arguments": {"seconds": seconds}})
            sent.text = " ".join(getattr(part, "text", "") for part in result.content)
            sent.ok = not result.is_error and sent.text == f"slept {seconds:g}"
        except Exception as exc:  # a refused connection, a dropped response: the call failed
            sent.text = repr(exc)
        sent.done = time.monotonic()


async def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


async def test_sigterm_loses_no_call_and_sigkill_fails_only_that_replicas_calls(tmp_path: Path):
    """Under load: replica 0 gets SIGTERM (readiness false, still serving for shutdown_delay, drained, exit 0:
    every call answered), then replica 1 gets SIGKILL (only calls sent to it fail); replica 2 serves on."""
    config = team_config(tmp_path, shutdown_delay=8, shutdown_drain=10)
    with ReplicaSet(config, env={STATE_KEY_ENV_VAR: KEY, "DISCOVERY_ROUTER_TOKEN": TOKEN}) as replicas:
        balancer = RoundRobin(replicas, poll_interval=0.1)
        calls: list[Sent] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(balancer.watch())

        def pick() -> tuple[int, str]:
            replica = balancer.pick()
            return replica.index, replica.url

        workers = [asyncio.create_task(load(pick, calls, stop)) for _ in range(6)]
        try:
            await wait_until(lambda: sum(c.ok for c in calls if c.replica == 0) >= 3)
            terminated = time.monotonic()
            replicas.terminate(0)
            # readiness goes false at once; liveness stays true while it drains
            assert (await wait_until(lambda: replicas[0].readiness()[0] == 503 and replicas[0].readiness()))[1] == {
                "status": "draining"
            }
            assert replicas[0].liveness()[0] == 200
            late: list[Sent] = []  # from a balancer that has not noticed yet: still served, within the delay
            await load(lambda: (0, replicas[0].url), late, asyncio.Event(), once=True)
            assert late[0].ok, late[0].text
            assert await asyncio.to_thread(replicas[0].process.wait, 60) == 0
            await wait_until(lambda: sum(c.ok for c in calls if c.sent > terminated) >= 6)
            killed = time.monotonic()
            await asyncio.to_thread(replicas.kill, 1)
            await wait_until(lambda: sum(c.ok and c.replica == 2 for c in calls if c.sent > killed + 1) >= 4)
        finally:
            stop.set()
            await asyncio.gather(*workers)
            watcher.cancel()
    on_0 = [c for c in calls if c.replica == 0]
    assert on_0 and all(c.ok for c in on_0), [c.text for c in on_0 if not c.ok]  # drained: nothing lost
    assert any(c.sent < terminated < c.done for c in on_0)  # some were in flight at the signal, and finished
    assert balancer.unready_seen[0] >= terminated
    failed = [c for c in calls if not c.ok]
    assert all(c.replica == 1 and c.done >= killed for c in failed), [(c.replica, c.text) for c in failed]
    assert all(c.ok for c in calls if c.replica == 2)
    assert all(c.ok for c in calls if c.sent > balancer.unready_seen[1])  # once out of the pool, nothing fails


async def test_readiness_waits_for_first_connections_then_stays_until_the_stop():
    from discovery_router.mcp.health import Health

    stopping = [False]
    router = config_router({"lib": library_stdio("lib")})
    health = Health(router, stopping=lambda: stopping[0])
    assert health.readiness() == (503, {"status": "starting"})
    async with router:
        await router.wait_ready()
        assert health.readiness() == (200, {"status": "ready", "search": "lexical"})
        router.upstreams["lib"].first_attempt_done.clear()  # a reconnect later on does not pull the replica out
        assert health.readiness()[0] == 200
        stopping[0] = True
        assert health.readiness() == (503, {"status": "draining"})


async def test_a_draining_replica_opens_no_new_session():
    """After the delay, a session started on a stopping replica would die with it: refused with the reason."""
    from discovery_router.mcp.http import Drain

    app = build_server(config_router({}))
    drain = Drain()
    app.add_middleware(drain)
    async with Client(app, mode="legacy") as early:
        drain.draining = True
        refused = await early.call_tool_mcp("call_tool", {"name": "lib/nap", "arguments": {"seconds": 0}})
        assert refused.is_error and "shutting down" in refused.content[0].text
        with pytest.raises(Exception, match="shutting down"):
            async with Client(app, mode="legacy"):
                pass


@pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed (Debian: apt-get install haproxy)"
)
async def test_behind_haproxy_sessions_stick_confirmations_cross_and_a_sigterm_loses_nothing(tmp_path: Path):
    """The README's haproxy set-up, for real: handshake-era sessions stick by Mcp-Session-Id (and break without
    it), 2026-era confirmations finish wherever the retry lands, and a SIGTERMed replica loses no call."""
    config = team_config(tmp_path, shutdown_delay=4, shutdown_drain=10)
    with ReplicaSet(config, env={STATE_KEY_ENV_VAR: KEY, "DISCOVERY_ROUTER_TOKEN": TOKEN}) as replicas:
        with HAProxy(replicas) as balancer:
            async with client(balancer.url, mode="legacy") as legacy:  # one session, many requests
                for _ in range(6):
                    found = await legacy.call_tool_mcp("search_tools", {"query": "delete an item"})
                    assert not found.is_error and "inv/delete_item" in found.content[0].text
            for i in range(3):
                call = {"name": "inv/delete_item", "arguments": {"name": f"lb-{i}"}}
                async with client(balancer.url, elicitation_handler=_yes) as agent:
                    asked = await agent.session.call_tool("call_tool", call, allow_input_required=True)
                    assert isinstance(asked, mcp_types.InputRequiredResult)
                    done = await agent.session.call_tool(
                        "call_tool",
                        call,
                        input_responses=_accept(),
                        request_state=asked.request_state,
                        allow_input_required=True,
                    )
                    assert isinstance(done, mcp_types.CallToolResult) and done.content[0].text == f"deleted lb-{i}"
            calls: list[Sent] = []
            stop = asyncio.Event()
            workers = [asyncio.create_task(load(lambda: (-1, balancer.url), calls, stop)) for _ in range(6)]
            try:
                await wait_until(lambda: sum(c.ok for c in calls) >= 6)
                terminated = time.monotonic()
                replicas.terminate(0)
                assert await asyncio.to_thread(replicas[0].process.wait, 60) == 0
                await wait_until(lambda: sum(c.ok for c in calls if c.sent > terminated + 1) >= 6)
            finally:
                stop.set()
                await asyncio.gather(*workers)
            assert calls and all(c.ok for c in calls), [c.text for c in calls if not c.ok]
        with HAProxy(replicas, sticky=False) as unsticky:  # the same without the stick rules: the session breaks
            with pytest.raises(MCPError, match="Session not found"):
                async with client(unsticky.url, mode="legacy") as legacy:
                    for _ in range(4):
                        await legacy.call_tool_mcp("search_tools", {"query": "delete an item"})


def test_serve_with_a_weak_key_stops_before_serving_and_never_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from devkit.system import free_port
    from discovery_router.cli.app import main

    weak = "abcd" * 12  # long enough, but four different characters are not random text
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}}))
    monkeypatch.setenv(STATE_KEY_ENV_VAR, weak)
    assert main(["--config", str(config), "serve", "--transport", "http", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert f"${STATE_KEY_ENV_VAR}" in err and "too weak" in err and weak not in err
