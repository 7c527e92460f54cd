"""Governance against real upstreams: tool filters, read-only mode, pinned tools, the audit command.

The inventory server (tests/governance_upstreams.py) runs in memory where a
test must see what was forwarded, and as a stdio subprocess where the config
file's own path matters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import platformdirs
import pytest
from fastmcp import Client, FastMCP

from discovery_router.governance import audit
from discovery_router.paths import APP_NAME, AUDIT_FILE_NAME
from discovery_router.governance.audit import AuditLog
from discovery_router.cli.app import main
from discovery_router.config.loader import parse_config
from discovery_router.errors import (
    ConfigError,
    UnknownToolError,
)
from discovery_router.governance.policy import ServerPolicy
from discovery_router.router import Router
from discovery_router.mcp.server import build_server
from tests.conftest import config_router
from tests.governance_upstreams import build_inventory

from tests.governance_support import audit_lines, inventory_entry, refused, settings


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
