"""The CLI: config editing in place, and the same operations as the MCP tools for a person."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from discovery_router.cli.app import main
from tests.conftest import stdio_entry

REPO = Path(__file__).parent.parent


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "discovery_router", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=120,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "notes": stdio_entry("notes"),
                    "keep": {"url": "http://127.0.0.1:9/mcp", "enabled": False},
                },
                "router": {"search_limit": 3},
            },
            indent=2,
        )
    )
    return path


def test_add_list_remove_edit_in_place(config: Path, capsys):
    before = json.loads(config.read_text())
    assert (
        main(
            [
                "--config",
                str(config),
                "add",
                "remote",
                "--url",
                "https://h.example/mcp",
                "--header",
                "Authorization:Bearer ${TOKEN}",
            ]
        )
        == 0
    )
    assert main(["--config", str(config), "add", "local", "--env", "K=${K}", "--", "my-server", "--flag", "x"]) == 0
    after = json.loads(config.read_text())
    assert after["mcpServers"]["notes"] == before["mcpServers"]["notes"]
    assert after["router"] == before["router"]
    assert after["mcpServers"]["remote"] == {
        "url": "https://h.example/mcp",
        "headers": {"Authorization": "Bearer ${TOKEN}"},
    }
    assert after["mcpServers"]["local"] == {"command": "my-server", "args": ["--flag", "x"], "env": {"K": "${K}"}}
    assert list(after["mcpServers"]) == ["notes", "keep", "remote", "local"]

    capsys.readouterr()
    assert main(["--config", str(config), "list"]) == 0
    listing = capsys.readouterr().out
    assert "remote\thttp\thttps://h.example/mcp\tyes\theaders: Authorization" in listing
    assert "keep\thttp\thttp://127.0.0.1:9/mcp\tno" in listing
    assert main(["--config", str(config), "list", "--json"]) == 0
    listed = {s["server"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["remote"]["headers"] == ["Authorization"] and listed["keep"]["enabled"] is False

    assert main(["--config", str(config), "remove", "remote"]) == 0
    assert "remote" not in json.loads(config.read_text())["mcpServers"]
    assert main(["--config", str(config), "remove", "remote"]) == 1


def test_add_rejects_duplicates_and_bad_input(config: Path, capsys):
    assert main(["--config", str(config), "add", "notes", "--url", "http://h/mcp"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["--config", str(config), "add", "x"]) == 2
    assert main(["--config", str(config), "add", "bad/name", "--url", "http://h/mcp"]) == 1


def test_add_warns_about_literal_secrets(config: Path, capsys):
    assert main(["--config", str(config), "add", "r", "--url", "http://h/mcp", "--header", "X-Key:abc123"]) == 0
    assert "stored as plain text" in capsys.readouterr().err


def test_config_path_follows_flag_and_env(tmp_path: Path):
    assert run("--config", str(tmp_path / "a.json"), "config", "path").stdout.strip() == str(tmp_path / "a.json")
    env = {"DISCOVERY_ROUTER_CONFIG": str(tmp_path / "b.json")}
    assert run("config", "path", env=env).stdout.strip() == str(tmp_path / "b.json")


def test_search_describe_call_status(config: Path):
    found = run("--config", str(config), "search", "write a new note")
    assert found.returncode == 0 and found.stdout.splitlines()[0].startswith("notes/create_note: ")
    described = run("--config", str(config), "describe", "notes/create_note")
    assert json.loads(described.stdout)["inputSchema"]["required"] == ["title"]
    called = run("--config", str(config), "call", "create_note", "--args", '{"title": "cli"}')
    assert called.returncode == 0 and called.stdout.strip() == "created cli"
    rejected = run("--config", str(config), "call", "create_note", "--args", '{"title": 5}')
    assert rejected.returncode == 1 and "5 is not of type 'string'" in rejected.stderr
    status = run("--config", str(config), "status")
    assert status.returncode == 0
    assert "connected\tnotes\tstdio\t3\t" in status.stdout and "disabled\tkeep\thttp" in status.stdout
    as_json = json.loads(run("--config", str(config), "status", "--json").stdout)
    assert {s["server"]: s["state"] for s in as_json} == {"notes": "connected", "keep": "disabled"}
    hits = json.loads(run("--config", str(config), "search", "write a new note", "--json").stdout)
    assert hits[0]["id"] == "notes/create_note" and hits[0]["available"] is True


def test_status_fails_when_a_server_is_down(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {"dead": {"command": sys.executable, "args": ["-c", "pass"]}},
                "router": {"connect_timeout": 10},
            }
        )
    )
    status = run("--config", str(path), "status")
    assert status.returncode == 1 and "failed" in status.stdout


def test_one_broken_server_fails_alone_and_the_rest_serve(tmp_path: Path):
    """An unset ${VAR} (what `import` leaves for VS Code inputs) fails only its own server, never the router."""
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "gh": {"command": "x", "env": {"T": "${NOT_SET_ANYWHERE}"}},
                    "typo": {"comand": "x"},
                    "off": {"command": "x", "env": {"T": "${ALSO_NOT_SET}"}, "disabled": True},
                    "notes": stdio_entry("notes"),
                }
            }
        )
    )
    status = run("--config", str(path), "status", "--json")
    assert status.returncode == 1  # a server is down
    states = {s["server"]: s for s in json.loads(status.stdout)}
    assert states["notes"]["state"] == "connected" and states["off"]["state"] == "disabled"
    assert states["gh"]["state"] == "failed"
    assert states["gh"]["error"] == (
        f"{path}: server 'gh': field 'env.T': environment variable "
        "NOT_SET_ANYWHERE is not set (export it, or write ${NOT_SET_ANYWHERE:-default})"
    )
    assert states["typo"]["state"] == "failed" and "field 'comand'" in states["typo"]["error"]
    called = run("--config", str(path), "call", "notes/create_note", "--args", '{"title": "t", "body": "b"}')
    assert called.returncode == 0, called.stderr


def test_a_file_that_is_not_a_config_still_stops_everything(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"mcpServers": {"a": {"command": "x"}}, "router": {"search_limit": "five"}}))
    result = run("--config", str(path), "status")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {path}: field 'router.search_limit': must be an integer"


def test_help_everywhere():
    for args in ([], ["serve"], ["search"], ["add"], ["call"], ["config"]):
        result = run(*args, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


def test_list_and_add_never_print_inline_secrets(tmp_path: Path, capsys):
    token, key = "ghp_abcdefghijklmnopqrstuvwx123456", "sk-live-0123456789abcdef"
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "gh": {"command": "gh-mcp", "args": [f"--token={token}"]},
                    "api": {"url": f"https://api.example.com/mcp?api_key={key}"},
                }
            }
        )
    )
    assert main(["--config", str(path), "list"]) == 0
    assert main(["--config", str(path), "list", "--json"]) == 0
    assert (
        main(["--config", str(path), "add", "bad", "--url", "https://h/mcp", "--header", f"Authorization {key}"]) == 1
    )
    captured = capsys.readouterr()
    assert "gh-mcp" in captured.out and "api.example.com" in captured.out
    assert token not in captured.out + captured.err and key not in captured.out + captured.err


def test_config_and_verbose_after_the_subcommand_issue_13(tmp_path):
    from discovery_router.cli.app import build_parser

    parser = build_parser()
    after = parser.parse_args(["serve", "--config", "F", "-v"])
    before = parser.parse_args(["--config", "F", "-v", "serve"])
    neither = parser.parse_args(["serve"])
    assert (after.config, after.verbose) == (before.config, before.verbose) == ("F", True)
    assert (neither.config, neither.verbose) == (None, False)


def test_version_flag_issue_13(capsys):
    import pytest
    from discovery_router import __version__
    from discovery_router.cli.app import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out


def test_cli_errors_name_the_cli_command_not_the_meta_tool(config: Path):
    result = run("--config", str(config), "describe", "notes/creat_note")
    assert result.returncode == 1 and "Did you mean: notes/create_note" in result.stderr
    assert "discovery-router search" in result.stderr and "search_tools" not in result.stderr


def test_add_refuses_what_it_would_silently_drop_or_misread(config: Path):
    before = config.read_text()
    env_on_url = run("--config", str(config), "add", "r", "--url", "https://h.example/mcp", "--env", "K=v")
    assert env_on_url.returncode == 2 and "--env and --cwd apply to stdio servers" in env_on_url.stderr
    no_dashes = run("--config", str(config), "add", "local", "/opt/bin/my-server", "--flag")
    assert no_dashes.returncode == 2
    assert (
        "put the server's command after --: discovery-router add local -- /opt/bin/my-server --flag" in no_dashes.stderr
    )
    assert config.read_text() == before


def test_serve_on_a_port_in_use_says_pass_port(tmp_path: Path):
    import socket

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"mcpServers": {"notes": stdio_entry("notes")}}))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("serve", "--config", str(path), "--transport", "http", "--port", str(port))
    assert result.returncode == 1
    assert f"error: port {port} is in use on 127.0.0.1: pass --port N" in result.stderr
    assert "Traceback" not in result.stderr and "Starting MCP server" not in result.stderr  # nothing started


def test_search_with_steps_prints_a_block_per_step(config: Path):
    found = run(
        "--config",
        str(config),
        "search",
        "jot two things down",
        "--step",
        "write a new note",
        "--step",
        "find my notes about a topic",
    )
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == "[1] write a new note" and lines[1].startswith("notes/create_note: ")
    assert "[2] find my notes about a topic" in lines
    as_json = json.loads(run("--config", str(config), "search", "jot", "--step", "write a new note", "--json").stdout)
    assert as_json[0]["id"] == "notes/create_note" and as_json[0]["step"] == 1
