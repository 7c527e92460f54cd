"""The audit log: one line per call with its outcome, argument keys (values only when asked), masked, rotated."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from discovery_router.governance import audit
from discovery_router.governance.audit import AuditLog, AuditQuery, read_entries
from discovery_router.errors import (
    InvalidArgumentsError,
    UnknownToolError,
    UpstreamUnavailableError,
)
from tests.conftest import config_router

from tests.governance_support import SECRET, audit_lines, inventory_entry, refused, settings


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
