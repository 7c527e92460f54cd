"""Destructive tools: the user confirms through MCP elicitation in both protocol eras, or at a terminal;
a confirmation answers only its own call, once."""

from __future__ import annotations

import json
from pathlib import Path

import mcp_types
import pytest
from fastmcp import Client, Context, FastMCP

from discovery_router.catalog import ToolEntry
from discovery_router.cli.app import main
from discovery_router.errors import (
    PolicyRefusedError,
)
from discovery_router.governance.guard import (
    ToolCall,
    Governance,
    _encode_state,
    call_digest,
)
from discovery_router.front import FrontContext
from discovery_router.governance.policy import Policy, ServerPolicy
from discovery_router.router import Router
from discovery_router.mcp.server import build_server
from tests.governance_upstreams import build_inventory

from tests.governance_support import audit_lines, inventory_entry, refused, settings


# -- destructive tools and confirmation -------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28 (InputRequiredResult) and handshake-era elicitation
async def test_destructive_call_confirmed_or_declined_through_elicitation(tmp_path: Path, mode: str):
    inventory = build_inventory()
    router = Router({"inv": inventory}, settings(tmp_path, confirm_destructive=True))
    asked: list[str] = []
    answers: list[bool] = []

    async def user(message, response_type, params, context):
        asked.append(message)
        return answers.pop(0)

    async with Client(build_server(router), elicitation_handler=user, mode=mode) as client:
        answers.append(True)
        done = await client.call_tool_mcp("call_tool", {"name": "inv/delete_item", "arguments": {"name": "apple"}})
        assert (done.is_error, done.content[0].text) == (False, "deleted apple")
        answers.append(False)
        declined = await client.call_tool_mcp("call_tool", {"name": "inv/delete_item", "arguments": {"name": "pear"}})
        assert declined.is_error and "the user declined to run inv/delete_item" in declined.content[0].text
        additive = await client.call_tool_mcp("call_tool", {"name": "inv/add_item", "arguments": {"name": "fig"}})
        assert additive.content[0].text == "added fig"  # destructiveHint: false: nobody is asked
    assert len(asked) == 2 and '"name": "apple"' in asked[0] and "inv/delete_item" in asked[0]
    assert [c["tool"] for c in inventory.calls] == ["delete_item", "add_item"]
    assert [c.get("name") for c in inventory.calls] == ["apple", "fig"]
    lines = audit_lines(tmp_path)
    assert [(line["outcome"], line.get("confirmed")) for line in lines] == [
        ("ok", True),
        ("refused", None),
        ("ok", None),
    ]


async def test_confirmation_survives_the_upstreams_own_questions(tmp_path: Path):
    """2026-07-28: the user confirms once; the upstream then asks its own question through the router."""
    upstream = FastMCP("ops")

    @upstream.tool(annotations=mcp_types.ToolAnnotations(destructiveHint=True))
    async def wipe(target: str, ctx: Context) -> str | mcp_types.InputRequiredResult:
        """Wipe a target, asking which mode first."""
        if not ctx.input_responses or "mode" not in ctx.input_responses:
            ask = mcp_types.ElicitRequest(
                params=mcp_types.ElicitRequestFormParams(
                    message="which mode?",
                    requested_schema={
                        "type": "object",
                        "properties": {"value": {"type": "string"}},
                        "required": ["value"],
                    },
                )
            )
            return mcp_types.InputRequiredResult(input_requests={"mode": ask}, request_state="upstream-state")
        return f"wiped {target} ({ctx.input_responses['mode'].content['value']}, {ctx.request_state})"

    asked: list[str] = []

    async def user(message, response_type, params, context):
        asked.append(message)
        return True if "Allow this call?" in message else "fast"

    router = Router({"ops": upstream}, settings(tmp_path, confirm_destructive=True))
    async with Client(build_server(router), elicitation_handler=user) as client:
        result = await client.call_tool_mcp("call_tool", {"name": "ops/wipe", "arguments": {"target": "db"}})
    assert (result.is_error, result.content[0].text) == (False, "wiped db (fast, upstream-state)")
    assert len(asked) == 2 and "ops/wipe" in asked[0] and asked[1] == "which mode?"
    assert [(line["outcome"], line.get("confirmed")) for line in audit_lines(tmp_path)] == [("ok", True)]


def _accept(value: object = True) -> dict:
    return {"discovery-router/confirm": mcp_types.ElicitResult(action="accept", content={"value": value})}


async def test_an_approved_confirmation_cannot_be_replayed(tmp_path: Path):
    """A 2026-era client re-sends the sealed state with the accepted answer: the call is asked again, not run
    again (issue 14). Driven leg by leg through a real fastmcp client's session, as a hostile client would."""
    inventory = build_inventory()
    router = Router({"inv": inventory}, settings(tmp_path, confirm_destructive=True))

    async def user(message, response_type, params, context):
        return True

    async with Client(build_server(router), elicitation_handler=user) as client:
        session, arguments = client.session, {"name": "inv/delete_item", "arguments": {"name": "apple"}}
        asked = await session.call_tool("call_tool", arguments, allow_input_required=True)
        assert isinstance(asked, mcp_types.InputRequiredResult)
        state = asked.request_state
        done = await session.call_tool(
            "call_tool", arguments, input_responses=_accept(), request_state=state, allow_input_required=True
        )
        assert isinstance(done, mcp_types.CallToolResult) and done.content[0].text == "deleted apple"
        for _ in range(2):
            replayed = await session.call_tool(
                "call_tool", arguments, input_responses=_accept(), request_state=state, allow_input_required=True
            )
            assert isinstance(replayed, mcp_types.InputRequiredResult)  # asked again, nothing forwarded
            assert "discovery-router/confirm" in replayed.input_requests
        fresh = await session.call_tool(
            "call_tool",
            arguments,
            input_responses=_accept(),
            request_state=replayed.request_state,
            allow_input_required=True,
        )
        assert isinstance(fresh, mcp_types.CallToolResult) and fresh.content[0].text == "deleted apple"
    assert [c.get("name") for c in inventory.calls if c["tool"] == "delete_item"] == ["apple", "apple"]
    assert [(line["outcome"], line.get("confirmed")) for line in audit_lines(tmp_path)] == [("ok", True)] * 2


async def test_a_confirmed_follow_up_leg_cannot_be_replayed(tmp_path: Path):
    """The state that keeps a confirmation across the upstream's own question is single-use too."""
    upstream = FastMCP("ops")
    wiped: list[str] = []

    @upstream.tool(annotations=mcp_types.ToolAnnotations(destructiveHint=True))
    async def wipe(target: str, ctx: Context) -> str | mcp_types.InputRequiredResult:
        """Wipe a target, asking which mode first."""
        if not ctx.input_responses or "mode" not in ctx.input_responses:
            ask = mcp_types.ElicitRequest(
                params=mcp_types.ElicitRequestFormParams(
                    message="which mode?",
                    requested_schema={
                        "type": "object",
                        "properties": {"value": {"type": "string"}},
                        "required": ["value"],
                    },
                )
            )
            return mcp_types.InputRequiredResult(input_requests={"mode": ask}, request_state="upstream-state")
        wiped.append(target)
        return f"wiped {target}"

    router = Router({"ops": upstream}, settings(tmp_path, confirm_destructive=True))
    async with Client(build_server(router), elicitation_handler=lambda *a: True) as client:
        session, arguments = client.session, {"name": "ops/wipe", "arguments": {"target": "db"}}
        asked = await session.call_tool("call_tool", arguments, allow_input_required=True)
        mode_asked = await session.call_tool(
            "call_tool",
            arguments,
            input_responses=_accept(),
            request_state=asked.request_state,
            allow_input_required=True,
        )
        assert isinstance(mode_asked, mcp_types.InputRequiredResult) and "mode" in mode_asked.input_requests
        mode = {"mode": mcp_types.ElicitResult(action="accept", content={"value": "fast"})}
        done = await session.call_tool(
            "call_tool",
            arguments,
            input_responses=mode,
            request_state=mode_asked.request_state,
            allow_input_required=True,
        )
        assert isinstance(done, mcp_types.CallToolResult) and done.content[0].text == "wiped db"
        replayed = await session.call_tool(
            "call_tool",
            arguments,
            input_responses=mode,
            request_state=mode_asked.request_state,
            allow_input_required=True,
        )
        assert isinstance(replayed, mcp_types.InputRequiredResult)
        assert "discovery-router/confirm" in replayed.input_requests
    assert wiped == ["db"]


async def test_destructive_call_refused_when_nobody_can_be_asked(tmp_path: Path):
    inventory = build_inventory()
    router = Router({"inv": inventory}, settings(tmp_path), policies={"inv": ServerPolicy(confirm_destructive=True)})
    async with Client(build_server(router)) as client:  # no elicitation_handler: no elicitation capability
        result = await client.call_tool_mcp("call_tool", {"name": "inv/drop_inventory"})
        assert result.is_error
        text = result.content[0].text
        assert "does not support MCP elicitation" in text and "mcpServers.inv.confirmDestructive" in text
        unannotated = await client.call_tool_mcp("call_tool", {"name": "inv/count_items"})
        assert unannotated.is_error and "it has no annotations" in unannotated.content[0].text
        assert (await client.call_tool_mcp("call_tool", {"name": "inv/list_items"})).is_error is False
    async with router:  # the Python API / CLI path with no confirmer refuses the same way
        await refused(router, "inv/delete_item", {"name": "apple"})
    assert [c["tool"] for c in inventory.calls] == ["list_items"]


def test_cli_call_in_a_script_refuses_a_destructive_tool(tmp_path: Path, capfd):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {"inv": inventory_entry(confirmDestructive=True)},
                "router": {"audit_log": str(tmp_path / "audit.jsonl"), "cache_dir": "none"},
            }
        )
    )
    assert main(["--config", str(config), "call", "inv/delete_item", "--args", '{"name": "apple"}']) == 1
    assert "cannot ask the user" in capfd.readouterr().err  # no terminal to answer [y/N]
    assert main(["--config", str(config), "call", "inv/list_items"]) == 0
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["refused", "ok"]


def test_a_confirmation_answers_only_the_call_it_was_asked_for():
    governance = Governance(Policy(confirm_destructive=True))
    tool = build_inventory_tool("delete_item")
    entry = ToolEntry("inv", tool)

    class Modern:
        available, multi_round = True, True

    import asyncio

    forwarded = mcp_types.CallToolResult(content=[])

    async def prepare(call: ToolCall) -> None:
        call.entry, call.arguments = entry, dict(call.raw_arguments or {})  # type: ignore[arg-type]

    async def forward(_call: ToolCall, _leg) -> mcp_types.CallToolResult:
        return forwarded

    def leg(arguments: dict, asked_for: dict, action: str = "accept"):
        state = _encode_state(call_digest(entry, asked_for), confirmed=False)
        answer = {"discovery-router/confirm": mcp_types.ElicitResult(action=action, content={"value": True})}
        front = FrontContext(confirmer=Modern(), input_responses=answer, request_state=state)
        return asyncio.run(governance.on_call_tool(ToolCall("inv/delete_item", arguments, front, prepare), forward))

    assert leg({"name": "apple"}, {"name": "apple"}) is forwarded  # answered: go ahead
    assert isinstance(leg({"name": "prod"}, {"name": "apple"}), mcp_types.InputRequiredResult)  # another call
    with pytest.raises(PolicyRefusedError):
        leg({"name": "apple"}, {"name": "apple"}, action="decline")


def build_inventory_tool(name: str):
    import asyncio

    async def tools():
        async with Client(build_inventory()) as client:
            return {t.name: t for t in await client.list_tools()}

    return asyncio.run(tools())[name]
