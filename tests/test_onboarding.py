"""Onboarding: reading every client's config format, the import plan, install / uninstall round trips, secrets.

Every test runs in a fake home directory (HOME, XDG_CONFIG_HOME, APPDATA point into tmp_path):
nothing here reads or writes the real user's files.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from discovery_router.config.loader import EVERY_VARIABLE_SET, parse_config
from discovery_router.errors import RouterError
from discovery_router.config.jsonc import strip_jsonc
from discovery_router.onboarding.clients import CLIENTS, Environment, read_client_file
from discovery_router.cli.onboarding import register, render_import
from discovery_router.onboarding.importer import apply_import, plan_import
from discovery_router.onboarding.installer import BACKUP_SUFFIX, install, uninstall
from discovery_router.onboarding.normalise import is_router_entry, normalise
from discovery_router.cli.output import Output

FIXTURES = Path(__file__).parent / "fixtures" / "clients"
PLANTED = "PLANTEDsecretVALUE"  # part of every inline secret in the fixtures
FAKE_ROUTER = ("/opt/router/bin/discovery-router", [])

# Where each fixture goes on Linux, relative to the fake home ("PROJECT/" = the current directory).
LINUX_PLACES = {
    "claude_desktop_config.json": ".config/Claude/claude_desktop_config.json",
    "claude.json": ".claude.json",
    "project_mcp.json": "PROJECT/.mcp.json",
    "cursor_mcp.json": ".cursor/mcp.json",
    "vscode_mcp.json": ".config/Code/User/mcp.json",
    "vscode_settings.json": ".config/Code/User/settings.json",
    "windsurf_mcp_config.json": ".codeium/windsurf/mcp_config.json",
}


# -- helpers (also used by test_onboarding_doctor.py) ------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discovery-router")
    parser.add_argument("--config")
    parser.add_argument("-v", "--verbose", action="store_true")
    register(parser.add_subparsers(dest="command"))
    return parser


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run one onboarding command as ``cli.main`` does; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    args = build_parser().parse_args(list(argv))
    try:
        code = args.handler(args)
    except RouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("APPDATA", str(home / "AppData" / "Roaming"))
    for name in ("CLAUDE_CONFIG_DIR", "DISCOVERY_ROUTER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "platform", "linux")
    assert Path.home() == home
    return home, project


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fake_home(tmp_path, monkeypatch)[0]


@pytest.fixture
def env(home: Path) -> Environment:
    return Environment.current()


@pytest.fixture
def router_config(tmp_path: Path) -> Path:
    return tmp_path / "router" / "config.json"


def place(env: Environment, fixture: str) -> Path:
    """Copy a fixture to where its client keeps it (Linux layout); returns the path."""
    relative = LINUX_PLACES[fixture]
    assert env.cwd is not None
    target = env.cwd / relative.removeprefix("PROJECT/") if relative.startswith("PROJECT/") else env.home / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / fixture, target)
    return target


def planned(plan) -> dict[str, tuple[str, dict | None]]:
    return {item.original: (item.action, item.entry) for item in plan.items}


# -- locations ----------------------------------------------------------------


def test_standard_locations_per_platform(tmp_path: Path):
    home = tmp_path / "u"
    mac = Environment(home, "darwin", {}, cwd=tmp_path / "p")
    win = Environment(home, "win32", {"APPDATA": str(tmp_path / "Roaming")}, cwd=tmp_path / "p")
    linux = Environment(home, "linux", {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path / "p")

    def paths(client: str, env: Environment) -> list[Path]:
        return [s.path for s in CLIENTS[client].sources(env)]

    support = home / "Library" / "Application Support"
    assert paths("claude-desktop", mac) == [support / "Claude" / "claude_desktop_config.json"]
    assert paths("claude-desktop", win) == [tmp_path / "Roaming" / "Claude" / "claude_desktop_config.json"]
    assert paths("claude-desktop", linux) == [tmp_path / "xdg" / "Claude" / "claude_desktop_config.json"]
    assert paths("claude-code", mac) == [home / ".claude.json", tmp_path / "p" / ".mcp.json"]
    assert paths("cursor", win) == [home / ".cursor" / "mcp.json", tmp_path / "p" / ".cursor" / "mcp.json"]
    assert paths("windsurf", linux) == [home / ".codeium" / "windsurf" / "mcp_config.json"]
    assert support / "Code" / "User" / "mcp.json" in paths("vscode", mac)
    assert tmp_path / "Roaming" / "Code" / "User" / "settings.json" in paths("vscode", win)
    assert tmp_path / "p" / ".vscode" / "mcp.json" in paths("vscode", linux)
    assert CLIENTS["vscode"].install_path(linux) == tmp_path / "xdg" / "Code" / "User" / "mcp.json"
    custom = Environment(home, "linux", {"CLAUDE_CONFIG_DIR": str(tmp_path / "cc")})
    assert CLIENTS["claude-code"].install_path(custom) == tmp_path / "cc" / ".claude.json"


def test_jsonc_comments_and_trailing_commas_but_not_urls():
    text = '{\n // note\n "a": "https://x.example/y", /* block */ "b": [1, 2,],\n}'
    assert json.loads(strip_jsonc(text)) == {"a": "https://x.example/y", "b": [1, 2]}
    assert json.loads(strip_jsonc('{"s": "a \\" // not a comment"}')) == {"s": 'a " // not a comment'}


# -- every client's format -----------------------------------------------------


def test_claude_desktop(env: Environment, router_config: Path):
    place(env, "claude_desktop_config.json")
    plan = plan_import(env, router_config, ["claude-desktop"])
    got = planned(plan)
    assert got["filesystem"][0] == got["github"][0] == got["time"][0] == "add"
    assert got["discovery-router"] == ("ignore", None)
    assert got["github"][1] == {
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-github"],
        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_PLANTEDsecretVALUE0123456789abcdef"},
    }
    assert [s.where for s in plan.secrets] == ["env.GITHUB_PERSONAL_ACCESS_TOKEN"]


def test_claude_code_user_local_and_project_scopes(env: Environment, router_config: Path):
    place(env, "claude.json")
    place(env, "project_mcp.json")
    plan = plan_import(env, router_config, ["claude-code"])
    got = planned(plan)
    assert got["sentry"] == (
        "add",
        {"url": "https://mcp.sentry.dev/mcp", "headers": {"Authorization": "Bearer ${SENTRY_TOKEN}"}},
    )
    assert got["linear"] == ("add", {"url": "https://mcp.linear.app/events", "transport": "sse"})
    assert got["time"] == (
        "add",
        {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=Europe/Paris"], "env": {}},
    )
    assert "postgres" not in got  # local scope (projects.<path>.mcpServers) belongs to its project: listed only
    assert [(p.project, p.servers) for p in plan.skipped_projects] == [("/home/alice/src/webapp", ["postgres"])]
    assert got["playwright"][0] == "add"  # project scope: ./.mcp.json (the current directory)
    assert not plan.secrets  # the header is a ${VAR} reference


def test_claude_code_per_project_servers_are_listed_then_imported_with_project(
    env: Environment, router_config: Path, capsys
):
    """issue 13: `import` no longer flattens every project's servers into the global config; it says which
    it left out and how to import one project's."""
    place(env, "claude.json")
    code, out, _ = run_cli(capsys, "--config", str(router_config), "import", "--from", "claude-code")
    assert code == 0
    written = json.loads(router_config.read_text())["mcpServers"]
    assert set(written) == {"sentry", "linear", "time"}
    assert (
        "Claude Code's servers for project /home/alice/src/webapp (postgres)" in out
        and "`discovery-router import --from claude-code --project /home/alice/src/webapp`" in out
    )
    assert "/home/alice/src/empty" not in out  # no servers there

    code, out, _ = run_cli(
        capsys,
        "--config",
        str(router_config),
        "import",
        "--from",
        "claude-code",
        "--project",
        "/home/alice/src/webapp",
        "--json",
    )
    assert code == 0, out
    document = json.loads(out)
    assert [(i["action"], i["name"]) for i in document["items"]] == [("add", "postgres")]
    assert document["skipped_projects"] == []
    assert set(json.loads(router_config.read_text())["mcpServers"]) == {"sentry", "linear", "time", "postgres"}

    code, _, err = run_cli(capsys, "--config", str(router_config), "import", "--project", "/home/alice/src/nope")
    assert code == 1 and "no servers for this folder" in err and "projects with servers: /home/alice/src/webapp" in err
    code, _, err = run_cli(capsys, "--config", str(router_config), "import", "--from", "cursor", "--project", "/x")
    assert code == 1 and "use it with --from claude-code" in err


def test_claude_code_project_takes_the_projects_own_mcp_json(env: Environment, router_config: Path, capsys):
    place(env, "claude.json")
    assert env.cwd is not None
    other = env.cwd.parent / "other"
    other.mkdir()
    shutil.copyfile(FIXTURES / "project_mcp.json", other / ".mcp.json")
    plan = plan_import(env, router_config, ["claude-code"], project=other)
    assert {i.original for i in plan.items} == {"playwright"}  # neither user scope nor another project's


def test_cursor(env: Environment, router_config: Path):
    place(env, "cursor_mcp.json")
    plan = plan_import(env, router_config, ["cursor"])
    got = planned(plan)
    assert got["github"][1]["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_TOKEN}"}  # ${env:X} -> ${X}
    assert got["context7"][1] == {
        "url": "https://mcp.context7.com/mcp",
        "headers": {"CONTEXT7_API_KEY": "ctx7-PLANTEDsecretVALUE0123456789"},
    }
    local = next(i for i in plan.items if i.original == "local-tools")
    assert "envFile" not in local.entry and any(d.startswith("envFile") for d in local.dropped)
    assert [(s.where, s.variable) for s in plan.secrets] == [("headers.CONTEXT7_API_KEY", "CONTEXT7_API_KEY")]


def test_vscode_mcp_json_with_comments_inputs_and_settings(env: Environment, router_config: Path):
    place(env, "vscode_mcp.json")
    place(env, "vscode_settings.json")
    plan = plan_import(env, router_config, ["vscode"])
    got = planned(plan)
    assert got["Perplexity"][1] == {
        "command": "npx",
        "args": ["-y", "server-perplexity-ask"],
        "env": {"PERPLEXITY_API_KEY": "${PERPLEXITY_KEY}"},
    }
    assert got["fetch"][1] == {"command": "uvx", "args": ["mcp-server-fetch"]}  # "type": "stdio" dropped
    remote = next(i for i in plan.items if i.original == "github remote")
    assert (remote.action, remote.name) == ("rename", "github-remote")
    assert remote.entry == {"url": "https://api.githubcopilot.com/mcp/"}
    assert set(remote.dropped) == {"gallery", "version"}
    assert got["memory"][0] == "add"  # from settings.json "mcp": {"servers": ...}


def test_windsurf(env: Environment, router_config: Path):
    place(env, "windsurf_mcp_config.json")
    plan = plan_import(env, router_config, ["windsurf"])
    got = planned(plan)
    assert got["figma"][1] == {"url": "https://mcp.figma.com/sse", "enabled": False}  # serverUrl, disabled
    assert got["brave-search"][1] == {
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-brave-search"],
        "env": {"BRAVE_API_KEY": "BSA-PLANTEDsecretVALUE0123456789"},
    }
    figma = next(i for i in plan.items if i.original == "figma")
    assert "serverUrl -> url" in figma.converted and "disabledTools" in figma.dropped
    assert "alwaysAllow" in next(i for i in plan.items if i.original == "brave-search").dropped


def test_everything_imported_is_a_valid_router_config(env: Environment, router_config: Path):
    for fixture in LINUX_PLACES:
        place(env, fixture)
    plan = plan_import(env, router_config)
    assert not [i for i in plan.items if i.action == "error"]
    apply_import(plan)
    raw = json.loads(router_config.read_text())
    config = parse_config(raw, path=router_config, environ=EVERY_VARIABLE_SET)
    assert "discovery-router" not in config.servers
    assert {"filesystem", "github", "github-cursor", "sentry", "playwright", "figma", "memory"} <= set(config.servers)
    assert not config.servers["figma"].enabled and config.servers["figma"].transport == "sse"
    assert config.servers["linear"].transport == "sse"


# -- the plan: add / skip / rename -------------------------------------------------


def test_plan_adds_skips_and_renames(env: Environment, router_config: Path, capsys):
    place(env, "claude_desktop_config.json")
    place(env, "cursor_mcp.json")
    router_config.parent.mkdir(parents=True)
    router_config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=Europe/Paris"]},
                    "fs": {
                        "command": "npx",
                        "args": [
                            "-y",
                            "@modelcontextprotocol/server-filesystem",
                            "/Users/alice/Desktop",
                            "/Users/alice/Downloads",
                        ],
                    },
                },
                "router": {"search_limit": 4},
            }
        )
    )
    code, out, _ = run_cli(
        capsys, "--config", str(router_config), "import", "--from", "claude-desktop", "--from", "cursor"
    )
    assert code == 0
    after = json.loads(router_config.read_text())
    servers = after["mcpServers"]
    assert list(servers) == ["time", "fs", "github", "github-cursor", "context7", "local-tools"]
    assert after["router"] == {"search_limit": 4}
    assert servers["github-cursor"]["command"] == "docker"
    lines = out.splitlines()
    assert any(line.startswith("skip\ttime\t") and "already present" in line for line in lines)
    assert any(line.startswith("skip\tfs (was filesystem)") and "already present as fs" in line for line in lines)
    assert any(line.startswith("rename\tgithub-cursor (was github)\tcursor") for line in lines)
    assert any(line.startswith("ignore\tdiscovery-router") for line in lines)

    # importing again changes nothing
    before = router_config.read_bytes()
    code, out, _ = run_cli(
        capsys, "--config", str(router_config), "import", "--from", "claude-desktop", "--from", "cursor"
    )
    assert code == 0 and router_config.read_bytes() == before
    assert "0 to add, 0 renamed" in out


def test_dry_run_writes_nothing(env: Environment, router_config: Path, capsys):
    for fixture in LINUX_PLACES:
        place(env, fixture)
    code, out, _ = run_cli(capsys, "--config", str(router_config), "import", "--dry-run")
    assert code == 0 and not router_config.exists() and "Dry run: nothing written" in out
    router_config.parent.mkdir(parents=True)
    router_config.write_text('{"mcpServers": {}}')
    code, out, _ = run_cli(capsys, "--config", str(router_config), "import", "--dry-run", "--json")
    assert code == 0 and router_config.read_text() == '{"mcpServers": {}}'
    document = json.loads(out)
    assert document["written"] is False and {i["action"] for i in document["items"]} >= {"add", "rename", "ignore"}


def test_import_from_a_file_and_bad_sources(env: Environment, router_config: Path, capsys, tmp_path: Path):
    other = tmp_path / "elsewhere.json"
    shutil.copyfile(FIXTURES / "windsurf_mcp_config.json", other)
    code, _, _ = run_cli(capsys, "--config", str(router_config), "import", "--from", str(other))
    assert code == 0 and set(json.loads(router_config.read_text())["mcpServers"]) == {"brave-search", "figma", "time"}
    code, _, err = run_cli(capsys, "--config", str(router_config), "import", "--from", "nonsense")
    assert code == 1 and "not a known client" in err
    code, out, _ = run_cli(capsys, "--config", str(router_config), "import", "--from", "cursor")
    assert code == 1 and "not found: cursor" in out


def test_nothing_found_is_a_failure(env: Environment, router_config: Path, capsys):
    code, out, _ = run_cli(capsys, "--config", str(router_config), "import")
    assert code == 1 and "no MCP client config found" in out and not router_config.exists()


def test_router_own_entry_is_recognised():
    assert is_router_entry({"command": "/x/bin/discovery-router", "args": ["serve"]})
    assert is_router_entry({"command": "C:\\venv\\Scripts\\discovery-router.exe", "args": ["serve"]})
    assert is_router_entry({"command": "python3", "args": ["-m", "discovery_router", "serve"]})
    assert is_router_entry({"command": "uvx", "args": ["discovery-router", "serve"]})
    assert not is_router_entry({"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]})


def test_unusable_entries_are_reported_not_imported(env: Environment):
    assert normalise("x", {"args": ["a"]}, env).error
    assert normalise("x", {"command": "a", "args": "not-a-list"}, env).error
    assert normalise("bad/name", {"command": "a"}, env).name == "bad-name"


# -- secrets -------------------------------------------------------------------


def test_inline_secrets_reported_by_name_never_printed(env: Environment, router_config: Path, capsys):
    for fixture in LINUX_PLACES:
        place(env, fixture)
    outputs = []
    for extra in (["--dry-run"], ["--dry-run", "--json"], [], ["--json"]):
        code, out, err = run_cli(capsys, "--config", str(router_config), "import", *extra)
        outputs.append(out + err)
    # the rich (terminal) rendering too
    plan = plan_import(env, router_config)
    stream = io.StringIO()
    render_import(
        Output(stream=stream, redact=plan.redactor, force_terminal=True), plan, env, dry_run=True, wanted=None
    )
    outputs.append(stream.getvalue())
    for config_args in (["install", "--client", "cursor", "--replace"], ["uninstall", "--client", "cursor"]):
        outputs.append("".join(run_cli(capsys, "--config", str(router_config), *config_args)[1:]))
    text = "\n".join(outputs)
    assert PLANTED not in text
    assert "env.GITHUB_PERSONAL_ACCESS_TOKEN" in text and "${BRAVE_API_KEY}" in text
    assert "headers.CONTEXT7_API_KEY" in text
    # the secret went into the router's config (where the user will move it to ${VAR}), not into any output
    assert PLANTED in router_config.read_text()


# -- install / uninstall ----------------------------------------------------------


CLIENT_FIXTURES = {
    "claude-desktop": "claude_desktop_config.json",
    "claude-code": "claude.json",
    "cursor": "cursor_mcp.json",
    "vscode": "vscode_mcp.json",
}


@pytest.mark.parametrize("client", list(CLIENT_FIXTURES))
def test_install_replace_then_uninstall_round_trip(client: str, env: Environment, router_config: Path):
    path = place(env, CLIENT_FIXTURES[client])
    original = path.read_bytes()
    apply_import(plan_import(env, router_config, [client]))
    served = set(json.loads(router_config.read_text())["mcpServers"])
    assert served

    result = install(client, env, router_config, replace=True, command=FAKE_ROUTER)
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    assert result.path == path and result.backup == backup and backup.read_bytes() == original
    raw, _ = read_client_file(path)
    key = CLIENTS[client].servers_key
    entry = raw[key]["discovery-router"]
    assert entry["command"] == FAKE_ROUTER[0]
    assert entry["args"] == ["serve", "--config", str(router_config)]
    assert entry.get("type") == ("stdio" if client in ("claude-code", "vscode") else None)
    assert result.replaced and not set(raw[key]) - {"discovery-router"}  # every server now goes through the router
    if client == "claude-code":  # everything else in ~/.claude.json is kept
        assert raw["numStartups"] == 42 and raw["oauthAccount"] == {"emailAddress": "alice@example.com"}
        # the project's own server was not imported, so the client keeps it
        assert set(raw["projects"]["/home/alice/src/webapp"]["mcpServers"]) == {"postgres"}
        assert raw["projects"]["/home/alice/src/webapp"]["hasTrustDialogAccepted"] is True
    if client == "claude-desktop":
        assert raw["globalShortcut"] == "Ctrl+Space"

    restored = uninstall(client, env)
    assert restored.action == "restored" and not backup.exists()
    if client == "claude-desktop":  # that file already had a (stale) router entry: gone, the rest as before
        raw, _ = read_client_file(path)
        assert "discovery-router" not in raw["mcpServers"] and set(raw["mcpServers"]) == {
            "filesystem",
            "github",
            "time",
        }
    else:
        assert path.read_bytes() == original


def test_install_without_replace_keeps_entries_and_reinstall_keeps_first_backup(env: Environment, router_config: Path):
    path = place(env, "cursor_mcp.json")
    original = path.read_bytes()
    apply_import(plan_import(env, router_config, ["cursor"]))
    first = install("cursor", env, router_config, command=FAKE_ROUTER)
    assert set(first.still_direct) == {"github", "context7", "local-tools"} and not first.replaced
    assert any("--replace" in note for note in first.notes)
    install("cursor", env, router_config, replace=True, command=("/elsewhere/discovery-router", []))
    assert path.with_name(path.name + BACKUP_SUFFIX).read_bytes() == original
    assert json.loads(path.read_text())["mcpServers"]["discovery-router"]["command"] == "/elsewhere/discovery-router"
    uninstall("cursor", env)
    assert path.read_bytes() == original


def test_install_into_a_new_file_then_uninstall_deletes_it(env: Environment, router_config: Path, capsys):
    code, out, _ = run_cli(capsys, "--config", str(router_config), "install", "--client", "cursor")
    path = env.home / ".cursor" / "mcp.json"
    assert code == 0 and "does not exist yet" in out
    assert set(json.loads(path.read_text())["mcpServers"]) == {"discovery-router"}
    code, out, _ = run_cli(capsys, "--config", str(router_config), "uninstall", "--client", "cursor")
    assert code == 0 and not path.exists() and "deleted" in out
    code, _, err = run_cli(capsys, "--config", str(router_config), "uninstall", "--client", "cursor")
    assert code == 1 and "nothing to uninstall" in err


def test_uninstall_after_the_user_edited_the_file_merges(env: Environment, router_config: Path):
    path = place(env, "cursor_mcp.json")
    apply_import(plan_import(env, router_config, ["cursor"]))
    install("cursor", env, router_config, replace=True, command=FAKE_ROUTER)
    raw = json.loads(path.read_text())
    raw["mcpServers"]["added-later"] = {"command": "my-server"}
    path.write_text(json.dumps(raw))
    result = uninstall("cursor", env)
    assert result.action == "merged" and set(result.restored) == {"github", "context7", "local-tools"}
    assert set(json.loads(path.read_text())["mcpServers"]) == {"github", "context7", "local-tools", "added-later"}


def test_install_dry_run_and_json(env: Environment, router_config: Path, capsys):
    path = place(env, "claude_desktop_config.json")
    before = path.read_bytes()
    code, out, _ = run_cli(
        capsys,
        "--config",
        str(router_config),
        "install",
        "--client",
        "claude-desktop",
        "--replace",
        "--dry-run",
        "--json",
    )
    assert code == 0 and path.read_bytes() == before and not path.with_name(path.name + BACKUP_SUFFIX).exists()
    document = json.loads(out)
    assert document["dry_run"] is True and document["args"][:2] == ["serve", "--config"]
    assert Path(document["command"]).is_absolute()


def test_install_refuses_unknown_client():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["install", "--client", "windsurf"])


@pytest.mark.parametrize("client", list(CLIENT_FIXTURES))
async def test_the_installed_entry_starts_and_routes_a_call(client: str, env: Environment, router_config: Path):
    """Launch what `install` wrote exactly as the client would (its command, its args), then route a call.

    Before issue 13 the entry's `serve --config FILE` exited 2: options were accepted only before `serve`.
    """
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    from tests.conftest import stdio_entry

    router_config.parent.mkdir(parents=True)
    router_config.write_text(
        json.dumps(
            {"mcpServers": {"notes": stdio_entry("notes")}, "router": {"cache_dir": "none", "embedding_model": "none"}}
        )
    )
    result = install(client, env, router_config)  # the real command: this interpreter's discovery-router
    raw, _ = read_client_file(result.path)
    entry = raw[CLIENTS[client].servers_key]["discovery-router"]
    transport = StdioTransport(entry["command"], entry["args"], env={**os.environ, **entry.get("env", {})})
    async with Client(transport) as mcp_client:
        tools = {tool.name for tool in await mcp_client.list_tools()}
        assert {"search_tools", "describe_tool", "call_tool"} <= tools
        called = await mcp_client.call_tool("call_tool", {"name": "notes/create_note", "arguments": {"title": "t"}})
        assert "created t" in called.content[0].text


def test_import_lists_the_inputs_it_could_not_carry_over_before_replace(
    env: Environment, router_config: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    """VS Code's ${input:...} prompt becomes ${PERPLEXITY_KEY}: said, with how to set it, before --replace."""
    place(env, "vscode_mcp.json")
    monkeypatch.delenv("PERPLEXITY_KEY", raising=False)
    code, out, _ = run_cli(capsys, "--config", str(router_config), "import", "--from", "vscode")
    assert code == 0
    lines = out.splitlines()
    warning = next(line for line in lines if "not carried over" in line)
    assert "${PERPLEXITY_KEY} (used by Perplexity) is not set" in warning
    how = next(i for i, line in enumerate(lines) if "discovery-router secret set NAME" in line)
    replace = next(i for i, line in enumerate(lines) if "install --client <client> --replace" in line)
    assert lines.index(warning) < how < replace
