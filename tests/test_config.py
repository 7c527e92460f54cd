"""Config parsing: the accepted shapes, and one precise message for each kind of mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discovery_router.config.loader import load_config, locate_config, parse_config
from discovery_router.paths import CONFIG_ENV_VAR, default_config_path
from discovery_router.errors import ConfigError

SECRET = "s3cr3t-token-value"


def test_claude_desktop_style_config_parses():
    config = parse_config(
        {
            "mcpServers": {
                "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
                "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer x"}},
                "legacy": {"url": "https://example.com/sse"},
                "vscode": {"type": "http", "url": "https://example.com/events/sse"},
                "off": {"command": "x", "enabled": False, "timeout": 5},
            }
        },
        environ={},
    )
    servers = config.servers
    assert servers["fs"].transport == "stdio" and servers["fs"].args[0] == "-y"
    assert servers["remote"].transport == "http"
    assert servers["legacy"].transport == "sse"  # inferred from the /sse path
    assert servers["vscode"].transport == "http"  # declared type wins over inference
    assert list(config.enabled_servers) == ["fs", "remote", "legacy", "vscode"]
    assert servers["off"].timeout == 5.0
    assert config.settings.search_limit == 5


def test_variables_expand_with_defaults_and_are_redacted():
    config = parse_config(
        {
            "mcpServers": {
                "gh": {
                    "url": "https://api.example.com/${TENANT:-public}/mcp",
                    "headers": {"Authorization": "Bearer ${TOKEN}"},
                }
            }
        },
        environ={"TOKEN": SECRET},
    )
    server = config.servers["gh"]
    assert server.url == "https://api.example.com/public/mcp"
    assert server.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(server)
    assert config.redactor(f"401 for Bearer {SECRET}") == "401 for ***"


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ({"command": "x", "url": "http://h"}, "url", "not both"),
        ({"command": "x", "args": "not-a-list"}, "args", "list of strings"),
        ({"command": "x", "args": ["ok", 3]}, "args[1]", "must be a string"),
        ({"command": "x", "env": {"K": 1}}, "env.K", "must be a string"),
        ({"command": "x", "colour": "red"}, "colour", "unknown field"),
        ({"url": "ftp://h"}, "url", "http://"),
        ({"url": "http://h", "transport": "carrier-pigeon"}, "transport", "one of"),
        ({"command": "x", "timeout": -1}, "timeout", "positive"),
        ({"command": "x", "enabled": "yes"}, "enabled", "true or false"),
        ({"url": "http://h", "env": {"A": "b"}}, "env", "only stdio"),
        ({"command": "x", "protocol": "2019"}, "protocol", '"legacy"'),
    ],
)
def test_bad_entries_name_file_server_and_field(entry, field, words):
    with pytest.raises(ConfigError) as caught:
        parse_config({"mcpServers": {"srv": entry}}, path=Path("/etc/router.json"), environ={})
    message = str(caught.value)
    assert message.startswith("/etc/router.json: server 'srv': ")
    assert f"field {field!r}" in message
    assert words in message


def test_missing_variable_names_server_field_and_variable_but_no_value():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"mcpServers": {"gh": {"command": "x", "env": {"A": SECRET, "TOKEN": "${GH_TOKEN}"}}}},
            path=Path("c.json"),
            environ={},
        )
    message = str(caught.value)
    assert "server 'gh'" in message and "field 'env.TOKEN'" in message and "GH_TOKEN is not set" in message
    assert SECRET not in message


def test_unknown_top_level_key_and_bad_router_setting():
    with pytest.raises(ConfigError, match="unknown top-level key"):
        parse_config({"mcpServerz": {}}, environ={})
    with pytest.raises(ConfigError, match=r"field 'router.search_limit': must be an integer"):
        parse_config({"router": {"search_limit": "five"}}, environ={})
    with pytest.raises(ConfigError, match=r"router.colour.*unknown setting"):
        parse_config({"router": {"colour": 1}}, environ={})
    with pytest.raises(ConfigError, match=r"field 'router.log_level': must be one of DEBUG"):
        parse_config({"router": {"log_level": "chatty"}}, environ={})
    assert parse_config({"router": {"log_level": "debug"}}, environ={}).settings.log_level == "debug"


@pytest.mark.parametrize(
    ("router", "field", "problem"),
    [
        ({"connect_timeout": True}, "connect_timeout", "must be a number"),  # strict: true is not 1
        ({"connect_timeout": -1}, "connect_timeout", "must not be negative"),
        ({"pinned": ["ok", "  "]}, "pinned", "must be a list of non-empty strings"),
        ({"pinned": "weather/*"}, "pinned", "must be a list of non-empty strings"),
        ({"read_only": "yes-s3cr3t-value"}, "read_only", "must be true or false"),
        ({"cache_dri": "x"}, "cache_dri", "unknown setting (did you mean 'cache_dir'?)"),
    ],
)
def test_router_settings_are_validated_in_the_loaders_words_without_values(router, field, problem):
    with pytest.raises(ConfigError) as caught:
        parse_config({"router": router}, path=Path("c.json"), environ={})
    message = str(caught.value)
    assert message.startswith(f"c.json: field 'router.{field}': {problem}"), message
    assert "s3cr3t" not in message and "pydantic" not in message and "errors.pydantic.dev" not in message


def test_settings_made_in_code_are_validated_too():
    from dataclasses import replace

    from pydantic import ValidationError

    from discovery_router.config.model import RouterSettings

    assert replace(RouterSettings(), pinned=["a/b"]).pinned == ("a/b",)  # a list becomes the tuple
    with pytest.raises(ValidationError):
        replace(RouterSettings(), search_limit=-3)


def test_invalid_json_names_the_file_and_position(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text('{"mcpServers": {"a": {"command": "x" "args": []}}}')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and "line 1" in str(caught.value)


def test_config_location_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    assert locate_config() == default_config_path()
    monkeypatch.setenv(CONFIG_ENV_VAR, str(tmp_path / "env.json"))
    assert locate_config() == tmp_path / "env.json"
    assert locate_config(tmp_path / "flag.json") == tmp_path / "flag.json"


def test_relative_cwd_resolves_against_the_config_file(tmp_path: Path):
    path = tmp_path / "sub" / "c.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"mcpServers": {"a": {"command": "x", "cwd": ".."}}}))
    assert load_config(path).servers["a"].cwd == str(tmp_path)


def test_pasted_configs_from_other_clients_load(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """JSONC, other clients' keys and VS Code's envFile: what people paste from Cursor, Cline or VS Code."""
    (tmp_path / ".env").write_text(f"# tokens\nAPI_TOKEN={SECRET}\nexport REGION='eu'\nMODE=file\n")
    path = tmp_path / "c.json"
    path.write_text("""{
      // pasted from VS Code
      "servers": {
        "a": {"type": "local", "command": "x", "envFile": ".env", "env": {"MODE": "explicit"},
              "autoApprove": ["read"], "alwaysAllow": []},
        "b": {"url": "https://h.example/mcp", "disabled": true, /* off for now */},
      },
    }""")
    config = load_config(path)
    a = config.servers["a"]
    assert a.error is None and a.transport == "stdio"
    assert dict(a.env) == {"API_TOKEN": SECRET, "REGION": "eu", "MODE": "explicit"}
    assert config.redactor(f"token {SECRET}") == "token ***"
    assert config.servers["b"].enabled is False
    assert "ignoring alwaysAllow, autoApprove" in caplog.text and SECRET not in caplog.text


def test_a_near_miss_key_suggests_the_fix():
    with pytest.raises(ConfigError, match=r"field 'comand': unknown field \(did you mean 'command'\?"):
        parse_config({"mcpServers": {"srv": {"comand": "x"}}}, environ={})
