"""Governance against real upstreams: tool filters, read-only mode, destructive confirmation, audit, pinned tools.

The inventory server (tests/governance_upstreams.py) runs in memory where a
test must see what was forwarded, and as a stdio subprocess where the config
file's own path matters. Calls go through a real fastmcp Client wherever the
MCP layer is part of the behaviour (rendering, elicitation, pinned tools).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import mcp_types
import platformdirs
import pytest
from fastmcp import Client, Context, FastMCP

from discovery_router.governance import audit
from discovery_router.paths import APP_NAME, AUDIT_FILE_NAME
from discovery_router.governance.audit import AuditLog, AuditQuery, read_entries
from discovery_router.catalog import ToolEntry
from discovery_router.cli.app import main
from discovery_router.config.loader import parse_config
from discovery_router.errors import (
    ConfigError,
    InvalidArgumentsError,
    PolicyRefusedError,
    UnknownToolError,
    UpstreamUnavailableError,
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
from tests.conftest import FAST, config_router
from tests.governance_upstreams import build_inventory

REPO = Path(__file__).parent.parent
INVENTORY = str(Path(__file__).parent / "governance_upstreams.py")
SECRET = "zq-GOV-SECRET-51d0c3"


def inventory_entry(**governance) -> dict:
    return {"command": sys.executable, "args": [INVENTORY, "stdio"], "env": {"PYTHONPATH": str(REPO)}, **governance}


def settings(tmp_path: Path, **overrides):
    return replace(FAST, audit_log=str(tmp_path / "audit.jsonl"), **overrides)


def audit_lines(tmp_path: Path) -> list[dict]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def refused(router: Router, name: str, arguments: dict | None = None) -> str:
    with pytest.raises(PolicyRefusedError) as caught:
        await router.call(name, arguments or {})
    return str(caught.value)


# -- allow / deny -----------------------------------------------------------


async def test_denied_tools_are_never_indexed_shown_or_callable(tmp_path: Path):
    entry = inventory_entry(tools={"allow": ["*_item", "list_*", "drop_*"], "deny": ["drop_*", "delete_*"]})
    async with config_router({"inv": entry}, settings=settings(tmp_path)) as router:
        await router.describe("inv/list_items")  # waits for the catalog
        ids = {e.id for e in router.catalog.entries}
        assert ids == {"inv/list_items", "inv/add_item", "inv/check_item"}  # allow narrows, deny wins over allow
        hits = await router.search("delete the whole inventory", limit=25)
        assert all(not h.name.startswith(("drop_", "delete_")) for h in hits)
        for name in ("inv/drop_inventory", "inv/delete_item", "delete_item", "inv/count_items"):
            with pytest.raises(UnknownToolError) as caught:
                await router.call(name, {"name": "x"})
            suggested = str(caught.value).partition("Did you mean")[2]
            assert "drop_" not in suggested and "delete_" not in suggested
            with pytest.raises(UnknownToolError):
                await router.describe(name)
        assert (await router.call("inv/list_items")).is_error is False
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["invalid"] * 4 + ["ok"]


# -- read-only mode ---------------------------------------------------------


async def test_read_only_server_calls_only_annotated_or_safe_tools(tmp_path: Path):
    inventory = build_inventory()
    policies = {"inv": ServerPolicy(read_only=True, safe=("count_*",))}
    async with Router({"inv": inventory}, settings(tmp_path), policies=policies) as router:
        await router.wait_ready()
        assert (await router.call("inv/list_items")).is_error is False  # readOnlyHint: true
        assert (await router.call("inv/count_items")).is_error is False  # no annotations, but listed safe
        unannotated = await refused(router, "inv/export_items", {"path": "/tmp/x"})
        assert "has no annotations" in unannotated and "mcpServers.inv.readOnly" in unannotated
        assert "mcpServers.inv.tools.safe" in unannotated
        additive = await refused(router, "inv/add_item", {"name": "plum"})
        assert "not annotated readOnlyHint: true" in additive
        await refused(router, "inv/delete_item", {"name": "apple"})
    assert [c["tool"] for c in inventory.calls] == ["list_items", "count_items"]  # nothing refused was forwarded
    outcomes = [(line["tool"], line["outcome"]) for line in audit_lines(tmp_path)]
    assert outcomes == [
        ("list_items", "ok"),
        ("count_items", "ok"),
        ("export_items", "refused"),
        ("add_item", "refused"),
        ("delete_item", "refused"),
    ]
    assert "mcpServers.inv.readOnly" in audit_lines(tmp_path)[2]["reason"]


async def test_router_wide_read_only_with_a_server_that_opts_out(tmp_path: Path):
    servers = {"inv": inventory_entry(), "open": inventory_entry(readOnly=False)}
    async with config_router(servers, settings=settings(tmp_path, read_only=True)) as router:
        await router.wait_ready()
        message = await refused(router, "inv/add_item", {"name": "plum"})
        assert "router.read_only" in message
        assert (await router.call("open/add_item", {"name": "plum"})).content[0].text == "added plum"
        assert (await router.call("inv/list_items")).is_error is False


async def test_search_and_describe_show_the_policy_state(tmp_path: Path):
    policies = {"inv": ServerPolicy(read_only=True)}
    router = Router({"inv": build_inventory()}, settings(tmp_path), policies=policies)
    async with Client(build_server(router)) as client:
        found = (await client.call_tool("search_tools", {"query": "items inventory", "limit": 25})).content[0].text
        lines = {line.split(" ", 1)[0].rstrip(":"): line for line in found.splitlines()}
        assert "[read-only]" in lines["inv/list_items"]
        assert "[refused: not read-only]" in lines["inv/add_item"]
        described = (await client.call_tool("describe_tool", {"name": "inv/count_items"})).content[0].text
        assert "policy: destructive; refused: inv/count_items has no annotations" in described
        ok = (await client.call_tool("describe_tool", {"name": "inv/list_items"})).content[0].text
        assert ok.endswith("policy: read-only; callable")


async def test_no_governance_leaves_search_and_describe_unchanged(tmp_path: Path):
    router = Router({"inv": build_inventory()}, settings(tmp_path))
    async with Client(build_server(router)) as client:
        found = (await client.call_tool("search_tools", {"query": "items", "limit": 25})).content[0].text
        assert "[" not in found
        described = (await client.call_tool("describe_tool", {"name": "inv/delete_item"})).content[0].text
        assert "policy:" not in described


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


# -- the audit log ----------------------------------------------------------


async def test_audit_lines_for_every_outcome_with_keys_not_values(tmp_path: Path):
    servers = {
        "inv": inventory_entry(),
        "open": inventory_entry(auditArguments=True),
        "gone": {"url": "http://127.0.0.1:9/mcp"},
    }
    async with config_router(servers, settings=settings(tmp_path, read_only=True)) as router:
        await router.wait_ready()
        await router.call("inv/list_items")
        await router.call("inv/check_item", {"name": "plum-value"})  # the upstream answers isError
        await refused(router, "inv/add_item", {"name": "plum-value"})
        with pytest.raises(InvalidArgumentsError):
            await router.call("inv/check_item", {"wrong": 1})  # rejected by the input schema
        with pytest.raises(UpstreamUnavailableError):
            await router.call("gone/anything", {"name": "plum-value"})  # the upstream is unreachable
        await router.call("open/check_item", {"name": "open-value"})
    lines = audit_lines(tmp_path)
    assert [(line["server"], line["tool"], line["outcome"]) for line in lines] == [
        ("inv", "list_items", "ok"),
        ("inv", "check_item", "tool error"),
        ("inv", "add_item", "refused"),
        ("inv", "check_item", "invalid"),
        (None, "gone/anything", "upstream failure"),
        ("open", "check_item", "tool error"),
    ]
    for line in lines:
        assert set(line) >= {"time", "server", "tool", "duration_ms", "outcome", "argument_keys"}
        assert audit.parse_time(line["time"]) is not None and line["duration_ms"] >= 0
    assert lines[1]["argument_keys"] == ["name"] and "arguments" not in lines[1]
    assert "plum-value" not in (tmp_path / "audit.jsonl").read_text()
    assert lines[-1]["arguments"] == {"name": "open-value"}  # auditArguments: true on that server


def test_audit_log_rotates_by_size_and_reads_back_in_order(tmp_path: Path):
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path, max_bytes=400, backups=2)
    for i in range(40):
        log.write({"time": audit.now_iso(), "server": "s" if i % 2 else "t", "tool": f"tool{i}", "outcome": "ok"})
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 400 for p in path.parent.iterdir())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    kept = read_entries(path, AuditQuery(limit=None))
    numbers = [int(r["tool"][4:]) for r in kept]
    assert numbers == sorted(numbers) and numbers[-1] == 39 and len(numbers) < 40  # oldest rotated away
    only_s = read_entries(path, AuditQuery(server="s", limit=3))
    assert [r["tool"] for r in only_s] == ["tool35", "tool37", "tool39"]


async def test_planted_secret_absent_from_audit_and_logs(tmp_path: Path, caplog, monkeypatch):
    monkeypatch.setenv("PLANTED", SECRET)
    caplog.set_level(logging.DEBUG)
    entry = inventory_entry(auditArguments=True)
    entry["env"] = {**entry["env"], "API_KEY": "${PLANTED}"}
    async with config_router({"inv": entry}, settings=settings(tmp_path, confirm_destructive=True)) as router:
        await router.wait_ready()
        echoed = await router.call("inv/read_env", {"name": "API_KEY"})
        assert echoed.content[0].text == SECRET  # the upstream got it; results pass through untouched
        await router.call("inv/check_item", {"name": f"key={SECRET}"})  # a tool error, values audited
        await refused(router, "inv/delete_item", {"name": SECRET})
        with pytest.raises(InvalidArgumentsError):
            await router.call("inv/check_item", {SECRET: "as a key"})  # invalid: the key itself is the secret
        with pytest.raises(UnknownToolError):
            await router.call(f"inv/{SECRET}", {"token": SECRET})  # unknown tool named after the secret
    text = (tmp_path / "audit.jsonl").read_text()
    assert len(text.splitlines()) == 5 and "***" in text
    assert SECRET not in text
    assert SECRET not in caplog.text


# -- pinned tools -----------------------------------------------------------


async def test_pinned_tools_are_listed_and_callable_by_name(tmp_path: Path):
    inventory = build_inventory()
    pinned = ("inv/list_items", "inv/search_tools", "inv/add_*", "inv/delete_item", "nothing/*")
    router = Router(
        {"inv": inventory, "more": build_inventory()},
        settings(tmp_path, pinned=pinned, read_only=True),
        policies={"inv": ServerPolicy(read_only=False)},
    )
    async with Client(build_server(router)) as client:
        tools = {t.name: t for t in await client.list_tools()}
        assert list(tools) == [
            "search_tools",
            "describe_tool",
            "call_tool",
            "list_items",
            "add_item",
            "delete_item",
            "inv_search_tools",
        ]  # catalog order; a name taken by a meta-tool gets the server prefix
        assert tools["delete_item"].annotations.destructive_hint is True
        assert tools["add_item"].input_schema["required"] == ["name"]
        assert (await client.call_tool("add_item", {"name": "kiwi"})).content[0].text == "added kiwi"
        assert (await client.call_tool("inv_search_tools", {"query": "q"})).content[0].text == "inventory search q"
        assert (
            (await client.call_tool("search_tools", {"query": "list items"}))
            .content[0]
            .text.startswith(("inv/list_items", "more/list_items"))
        )  # the meta-tool keeps its name
        bad = await client.call_tool_mcp("add_item", {"nope": 1})
        assert bad.is_error and "Invalid arguments for inv/add_item" in bad.content[0].text
    assert [c["tool"] for c in inventory.calls] == ["add_item"]
    assert [(line["tool"], line["outcome"]) for line in audit_lines(tmp_path)] == [
        ("add_item", "ok"),
        ("search_tools", "ok"),
        ("add_item", "invalid"),
    ]

    readonly = Router({"inv": build_inventory()}, settings(tmp_path, pinned=("inv/*",), read_only=True))
    async with Client(build_server(readonly)) as client:  # tools the policy refuses are not pinned
        names = [t.name for t in await client.list_tools()]
        assert names == [
            "search_tools",
            "describe_tool",
            "call_tool",
            "list_items",
            "inv_search_tools",
            "check_item",
            "read_env",
        ]


# -- the audit command and the config ----------------------------------------


def test_audit_command_table_and_json(tmp_path: Path, capsys):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.write(
        {
            "time": "2020-01-01T00:00:00.000Z",
            "server": "inv",
            "tool": "old",
            "duration_ms": 1.0,
            "outcome": "ok",
            "argument_keys": [],
        }
    )
    log.write(
        {
            "time": audit.now_iso(),
            "server": "inv",
            "tool": "delete_item",
            "duration_ms": 12.5,
            "outcome": "refused",
            "argument_keys": ["name"],
            "reason": "Refused: the user declined",
        }
    )
    log.write(
        {
            "time": audit.now_iso(),
            "server": "other",
            "tool": "x",
            "duration_ms": 2.0,
            "outcome": "ok",
            "argument_keys": ["a", "b"],
        }
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "router": {"audit_log": str(path)}}))
    assert main(["--config", str(config), "audit", "--since", "1h", "--server", "inv", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["tool"] for r in records] == ["delete_item"]
    assert main(["--config", str(config), "audit"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].startswith("#time (UTC)\tserver\ttool\toutcome\tms\targument keys\tnote")
    assert table[2].split("\t")[:4] == ["2020-01-01 00:00:00", "inv", "old", "ok"]
    assert "a, b" in table[4]
    assert main(["--config", str(config), "audit", "--since", "yesterday-ish"]) == 1
    assert "--since takes a duration" in capsys.readouterr().err


@pytest.mark.parametrize(
    "entry, router_section, field",
    [
        ({"tools": ["get_*"]}, {}, "tools"),
        ({"tools": {"allow": "get_*"}}, {}, "tools.allow"),
        ({"tools": {"deny": ["ok", 3]}}, {}, "tools.deny[1]"),
        ({"tools": {"hide": []}}, {}, "tools.hide"),
        ({"readOnly": "yes"}, {}, "readOnly"),
        ({"confirmDestructive": 1}, {}, "confirmDestructive"),
        ({"auditArguments": None, "readOnly": []}, {}, "readOnly"),
        ({"args": ["${keyring:svc/x}"]}, {}, "args[0]"),
        ({}, {"pinned": "time/*"}, "router.pinned"),
        ({}, {"http_allowed_origins": [""]}, "router.http_allowed_origins"),
        ({}, {"read_only": "true"}, "router.read_only"),
        ({}, {"audit_backups": -1}, "router.audit_backups"),
    ],
)
def test_governance_config_errors_name_file_server_and_field(tmp_path: Path, entry, router_section, field):
    path = tmp_path / "config.json"
    raw = {"mcpServers": {"inv": {"command": "x", **entry}}, "router": router_section}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, path=path, environ={})
    assert caught.value.field == field
    assert str(path) in str(caught.value)
    if not field.startswith("router."):
        assert caught.value.server == "inv"


def test_governance_config_parses():
    config = parse_config(
        {
            "mcpServers": {
                "inv": {
                    "command": "x",
                    "tools": {"allow": ["get_*"], "deny": ["*delete*"], "safe": ["list_things"]},
                    "readOnly": True,
                    "confirmDestructive": False,
                    "auditArguments": True,
                }
            },
            "router": {
                "read_only": False,
                "confirm_destructive": True,
                "audit_log": "none",
                "audit_max_bytes": 1000,
                "audit_backups": 1,
                "pinned": ["inv/get_*"],
                "http_allowed_origins": ["https://a.example"],
                "http_require_token": True,
            },
        },
        environ={},
    )
    policy = config.servers["inv"].policy
    assert (policy.allow, policy.deny, policy.safe) == (("get_*",), ("*delete*",), ("list_things",))
    assert (policy.read_only, policy.confirm_destructive, policy.audit_arguments) == (True, False, True)
    assert config.settings.pinned == ("inv/get_*",) and config.settings.confirm_destructive
    assert audit.audit_path(config.settings.audit_log) is None
    # the environment variable moves the default log (the tests use it to stay out of the user's log dir)
    user_log = Path(platformdirs.user_log_dir(APP_NAME)) / AUDIT_FILE_NAME
    assert audit.audit_path(None) == Path(os.environ["DISCOVERY_ROUTER_AUDIT_LOG"]) != user_log


async def test_tool_globs_match_tool_names_whatever_their_case(tmp_path: Path):
    """``*delete*`` in deny must catch DeleteRepo and BULK_DELETE too (README example; issue 14)."""
    upstream = FastMCP("cases")

    @upstream.tool(name="DeleteRepo")
    def delete_repo(name: str) -> str:
        return f"deleted {name}"

    @upstream.tool(name="BULK_DELETE")
    def bulk_delete() -> str:
        return "all gone"

    @upstream.tool(name="ListRepos")
    def list_repos() -> list[str]:
        return ["a"]

    @upstream.tool(name="Get_Repo")
    def get_repo(name: str) -> str:
        return name

    config = parse_config(
        {
            "mcpServers": {
                "gh": {
                    "command": "x",
                    "tools": {"allow": ["get_*", "list*", "*delete*"], "deny": ["*delete*"], "safe": ["GET_*"]},
                    "readOnly": True,
                }
            }
        }
    )
    policies = {"gh": config.servers["gh"].policy}
    async with Router({"gh": upstream}, settings(tmp_path), policies=policies) as router:
        await router.wait_ready()
        assert {e.id for e in router.catalog.entries} == {"gh/ListRepos", "gh/Get_Repo"}
        for name in ("gh/DeleteRepo", "gh/BULK_DELETE"):
            with pytest.raises(UnknownToolError):
                await router.call(name, {"name": "x"} if name.endswith("Repo") else {})
        assert (await router.call("gh/Get_Repo", {"name": "r"})).is_error is False  # safe: GET_* matched
        await refused(router, "gh/ListRepos")  # unannotated and not listed safe: read-only mode refuses
