"""``doctor``: one working stdio server, one broken one, a missing variable, and the token figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


from discovery_router.onboarding.doctor import router_tools, tools_list_json
from tests.conftest import stdio_entry
from tests.test_onboarding import PLANTED, fake_home, run_cli


# capfd, not capsys: stdio servers inherit the real stderr file descriptor.


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake_home(tmp_path, monkeypatch)
    monkeypatch.delenv("DOCTOR_TEST_MISSING", raising=False)
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "notes": {
                        **stdio_entry("notes"),
                        "env": {**stdio_entry("notes")["env"], "NOTES_TOKEN": f"tok-{PLANTED}-123456"},
                    },
                    "broken": {"command": str(tmp_path / "no-such-server")},
                    "needs-var": {
                        "url": "https://example.invalid/mcp",
                        "headers": {"Authorization": "Bearer ${DOCTOR_TEST_MISSING}"},
                    },
                    "off": {"command": "whatever", "enabled": False},
                }
            }
        )
    )
    return path


def test_doctor_reports_each_problem_on_one_line(config: Path, capfd):
    code, out, err = run_cli(capfd, "--config", str(config), "doctor", "--timeout", "20")
    assert code == 1
    lines = out.splitlines()
    # ok, or a slow-start warning when this machine is busy (the start-up took over 5 s)
    assert any(
        line.startswith(("ok\tserver\tnotes\t3 tools, started in", "warn\tserver\tnotes\tslow start-up: 3 tools"))
        for line in lines
    ), lines
    assert any(line.startswith("skip\tserver\toff") for line in lines)
    problems = [line for line in lines if line.startswith("problem: ")]
    assert len(problems) == 2
    assert problems[0].startswith("problem: needs-var: environment variable DOCTOR_TEST_MISSING is not set")
    assert problems[1].startswith("problem: broken: unreachable:") and "fix: install `no-such-server`" in problems[1]
    assert any(line.startswith("ok\tcache\t") for line in lines)
    assert any(line.startswith("ok\ttokenizer\to200k_base") for line in lines)  # quicktok is a dependency
    assert "through the router's 3 tools" in out
    assert PLANTED not in out + err


def test_doctor_json_and_token_figures(config: Path, capfd):
    code, out, _ = run_cli(capfd, "--config", str(config), "doctor", "--json", "--timeout", "20")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    servers = {s["name"]: s for s in report["servers"]}
    assert servers["notes"]["state"] == "connected" and servers["notes"]["tools"] == 3
    assert servers["notes"]["seconds"] > 0
    assert servers["broken"]["state"] == "failed" and servers["off"]["state"] == "disabled"
    assert {c["area"] for c in report["checks"]} >= {"config", "server", "cache", "model", "tokenizer"}
    assert servers["notes"]["tokens"] > 0
    tokens = report["tokens"]
    assert tokens["tokenizer"] == "o200k_base" and tokens["before"] == servers["notes"]["tokens"]
    assert tokens["after"] > 0 and "broken" in tokens["note"]


async def test_router_tools_list_is_the_three_meta_tools():
    tools = await router_tools()
    assert sorted(t.name for t in tools) == ["call_tool", "describe_tool", "search_tools"]
    assert json.loads(tools_list_json(tools))["tools"][0]["inputSchema"]


def test_doctor_without_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd):
    fake_home(tmp_path, monkeypatch)
    code, out, _ = run_cli(capfd, "--config", str(tmp_path / "missing.json"), "doctor")
    assert code == 1 and "problem: " in out and "discovery-router import" in out


def test_doctor_on_a_broken_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd):
    fake_home(tmp_path, monkeypatch)
    path = tmp_path / "config.json"
    path.write_text('{"mcpServers": {"a": {"command": "x", "bogus": 1}}}')
    code, out, _ = run_cli(capfd, "--config", str(path), "doctor")
    assert code == 1 and "field 'bogus': unknown field" in out


def test_doctor_says_a_disabled_cache_is_disabled(tmp_path: Path, capfd):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "router": {"cache_dir": "none"}}))
    code, out, _ = run_cli(capfd, "--config", str(config), "doctor", "--json", "--timeout", "5")
    cache = [c for c in json.loads(out)["checks"] if c["area"] == "cache"]
    assert [c["status"] for c in cache] == ["skip"] and "disabled" in cache[0]["detail"]
    assert not (Path.cwd() / "none").exists()
