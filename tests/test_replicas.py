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
from dataclasses import replace
from pathlib import Path
from typing import Any

import mcp_types
import pytest
from fastmcp import Client

from devkit.replicas import ReplicaSet, RoundRobin, get_json
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
    config = parse_config({"mcpServers": {}, "router": {"state_key": "${TEAM_STATE_KEY}"}}, environ={"TEAM_STATE_KEY": KEY})
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
