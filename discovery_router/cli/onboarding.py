"""The ``import``, ``install``, ``uninstall`` and ``doctor`` subcommands.

``cli.py`` wires them in with ``register(sub)``; each handler takes the argparse
namespace (with ``.config`` and ``.verbose``) and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from discovery_router.config.loader import locate_config
from discovery_router.onboarding.clients import CLIENTS, INSTALLABLE, Environment
from discovery_router.onboarding.doctor import FAIL, OK, SKIP, WARN, DoctorReport, run_doctor
from discovery_router.onboarding.importer import (
    ERROR,
    IGNORE,
    SKIP as PLAN_SKIP,
    ImportPlan,
    apply_import,
    describe_target,
    plan_import,
)
from discovery_router.onboarding.installer import ROUTER_NAME, InstallResult, install, uninstall
from discovery_router.cli.output import EXIT_FAILURE, EXIT_OK, Output, Table


def register(subparsers: Any) -> None:
    """Add ``import``, ``install``, ``uninstall`` and ``doctor`` to the CLI's subparsers."""
    importing = subparsers.add_parser(
        "import",
        help="copy the servers configured in Claude Desktop, Claude Code, Cursor, VS Code or Windsurf "
        "into the router's config",
        description="Read each client's own config file, convert its servers to the router's format and add "
        "them to the router's config: new ones are added, identical ones skipped, and a different server "
        "under a taken name is renamed (e.g. github-cursor).",
    )
    importing.add_argument(
        "--from",
        dest="sources",
        action="append",
        metavar="CLIENT|FILE",
        help=f"where to import from: {', '.join(CLIENTS)} or a JSON file (repeatable; default: every client found)",
    )
    importing.add_argument(
        "--project",
        metavar="PATH",
        type=Path,
        help="import the servers Claude Code keeps for this project folder (its entry under "
        '"projects" in ~/.claude.json and its .mcp.json); without it those per-project '
        "servers are listed, not imported",
    )
    importing.add_argument("--dry-run", action="store_true", help="show the plan, write nothing")
    importing.add_argument("--json", action="store_true", help="machine-readable output")
    importing.set_defaults(handler=cmd_import)

    installing = subparsers.add_parser(
        "install",
        help="add the router to a client's config (backing the file up first)",
        description="Write a `discovery-router` entry that runs `discovery-router serve --config <this config>` "
        "into the client's config file. The file is copied to <file>.discovery-router.bak first.",
    )
    installing.add_argument("--client", required=True, choices=INSTALLABLE)
    installing.add_argument(
        "--replace",
        action="store_true",
        help="also take out the client's entries the router now serves (kept in the backup)",
    )
    installing.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    installing.add_argument("--json", action="store_true", help="machine-readable output")
    installing.set_defaults(handler=cmd_install)

    uninstalling = subparsers.add_parser(
        "uninstall", help="take the router out of a client's config (restores the backup)"
    )
    uninstalling.add_argument("--client", required=True, choices=INSTALLABLE)
    uninstalling.add_argument("--json", action="store_true", help="machine-readable output")
    uninstalling.set_defaults(handler=cmd_uninstall)

    doctoring = subparsers.add_parser(
        "doctor", help="check the config, every server, the cache, the model and the tokenizer; show token savings"
    )
    doctoring.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds each server gets to start (default: router.connect_timeout)",
    )
    doctoring.add_argument("--json", action="store_true", help="machine-readable output")
    doctoring.set_defaults(handler=cmd_doctor)


def _environment() -> Environment:
    return Environment.current()


# -- import -------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    env = _environment()
    config_path = locate_config(args.config)
    plan = plan_import(env, config_path, args.sources, project=getattr(args, "project", None))
    if not args.dry_run:
        apply_import(plan)
    out = Output(as_json=args.json, redact=plan.redactor)
    out.document(plan.to_json())
    render_import(out, plan, env, dry_run=args.dry_run, wanted=args.sources)
    failed = plan.not_found or plan.unreadable or any(i.action == ERROR for i in plan.items)
    nothing = not plan.read
    return EXIT_FAILURE if failed or nothing else EXIT_OK


def render_import(out: Output, plan: ImportPlan, env: Environment, *, dry_run: bool, wanted: list[str] | None) -> None:
    for line in plan.not_found:
        out.line(f"not found: {line}", "fail")
    for line in plan.unreadable:
        out.line(f"cannot read {line}", "fail")
    if not plan.read:
        if not wanted:
            looked = [env.display(s.path) for c in CLIENTS.values() for s in c.sources(env)]
            out.line("no MCP client config found; looked in: " + ", ".join(looked), "fail")
        return
    table = Table(
        f"Import into {env.display(plan.config_path)}" + (" (dry run)" if dry_run else ""),
        ["action", "name", "client", "from", "command / url", "notes"],
    )
    for item in plan.items:
        notes = [item.reason] if item.reason else []
        notes += [f"converted {c}" for c in item.converted]
        notes += [f"dropped {d}" for d in item.dropped]
        name = item.name if item.name == item.original else f"{item.name} (was {item.original})"
        table.rows.append([item.action, name, item.client, item.source, describe_target(item.entry), "; ".join(notes)])
    out.table(table)
    for skipped in plan.skipped_projects:
        out.line(
            f"not imported: Claude Code's servers for project {skipped.project} ({', '.join(skipped.servers)}) "
            f"belong to that project; to import them: `{skipped.command}`",
            "warn",
        )
    for secret in plan.secrets:
        out.line(f"inline secret: {secret.advice()}", "warn")
    counts = {
        action: sum(1 for i in plan.items if i.action == action)
        for action in ("add", "rename", PLAN_SKIP, IGNORE, ERROR)
    }
    summary = (
        f"{counts['add']} to add, {counts['rename']} renamed, {counts[PLAN_SKIP]} already present, "
        f"{counts[ERROR]} not importable"
    )
    if dry_run:
        out.line(f"{summary}. Dry run: nothing written.")
    elif plan.written:
        out.line(f"{summary}. Wrote {len(plan.to_write)} server(s) to {plan.config_path}.", "ok")
        missing = unset_inputs(plan, env)
        for variable, servers in missing.items():
            out.line(
                f"not carried over: ${{{variable}}} (used by {', '.join(servers)}) is not set; the "
                f"server{'s stay' if len(servers) > 1 else ' stays'} failed until it is",
                "warn",
            )
        if missing:
            out.line(
                "Set each in the environment the client starts the router with (an `env` entry in its "
                "config, or your shell), or store it with `discovery-router secret set NAME` and write "
                "${keyring:discovery-router/NAME} in the server's env/headers. Then:"
            )
        out.line("Next: `discovery-router doctor`, then `discovery-router install --client <client> --replace`.")
    else:
        out.line(f"{summary}. Nothing to write.")


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")  # ${VAR}, ${VAR:-default}


def unset_inputs(plan: ImportPlan, env: Environment) -> dict[str, list[str]]:
    """Variables the written entries need but the environment lacks (VS Code's ``${input:...}`` prompts
    become such variables), each with the servers using it: said before ``install --replace`` is offered."""
    missing: dict[str, list[str]] = {}
    for item in plan.to_write:
        for variable in sorted(set(_VARIABLE.findall(json.dumps(item.entry)))):
            name, has_default = variable
            if not has_default and name not in env.environ and item.name not in missing.setdefault(name, []):
                missing[name].append(item.name)
    return {name: servers for name, servers in missing.items() if servers}


# -- install / uninstall -------------------------------------------------------


def cmd_install(args: argparse.Namespace) -> int:
    env = _environment()
    result = install(args.client, env, locate_config(args.config), replace=args.replace, dry_run=args.dry_run)
    out = Output(as_json=args.json)
    out.document(result.to_json())
    render_install(out, result, env)
    return EXIT_OK


def render_install(out: Output, result: InstallResult, env: Environment) -> None:
    title = CLIENTS[result.client].title
    verb = "would install" if result.dry_run else "installed"
    table = Table(f"{verb} {ROUTER_NAME} into {title}", ["item", "value"], status_column=None)
    table.rows.append(["file", str(result.path)])
    table.rows.append(["command", " ".join([result.command, *result.args])])
    table.rows.append(["backup", str(result.backup) if result.backup else "none (the file is new)"])
    if result.replaced:
        table.rows.append(["taken out (the router serves them)", ", ".join(result.replaced)])
    if result.still_direct:
        table.rows.append([f"still started by {title}", ", ".join(result.still_direct)])
    out.table(table)
    for note in result.notes:
        out.line(f"note: {note}", "warn")
    if not result.dry_run:
        out.line(
            f"Restart {title} to load the router. Undo with `discovery-router uninstall --client {result.client}`."
        )


def cmd_uninstall(args: argparse.Namespace) -> int:
    env = _environment()
    result = uninstall(args.client, env)
    out = Output(as_json=args.json)
    out.document(result.to_json())
    title = CLIENTS[result.client].title
    message = {
        "restored": f"restored {env.display(result.path)} from its backup",
        "merged": f"removed {ROUTER_NAME} from {env.display(result.path)}",
        "removed": f"removed {ROUTER_NAME} from {env.display(result.path)}",
        "deleted": f"deleted {env.display(result.path)} (install had created it)",
    }[result.action]
    out.line(message, "ok")
    if result.restored:
        out.line(f"{title} starts these again: {', '.join(result.restored)}")
    for note in result.notes:
        out.line(f"note: {note}", "warn")
    out.line(f"Restart {title} to apply.")
    return EXIT_OK


# -- doctor -------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    report = run_doctor(locate_config(args.config), connect_timeout=args.timeout)
    out = Output(as_json=args.json)
    out.document(report.to_json())
    render_doctor(out, report)
    return EXIT_FAILURE if report.problems else EXIT_OK


def render_doctor(out: Output, report: DoctorReport) -> None:
    checks = Table("Checks", ["status", "area", "subject", "detail"])
    for check in report.checks:
        checks.rows.append([check.status, check.area, check.subject, check.detail])
    out.table(checks)
    if report.servers:
        servers = Table("Servers", ["state", "server", "transport", "tools", "start-up (s)", "tools/list tokens"])
        for s in report.servers:
            servers.rows.append(
                [
                    {"connected": OK, "disabled": SKIP}.get(s.state, FAIL) if out.rich else s.state,
                    s.name,
                    s.transport,
                    s.tools if s.state == "connected" else "",
                    f"{s.seconds:.2f}" if s.seconds is not None else "",
                    s.tokens if s.tokens is not None else "",
                ]
            )
        out.table(servers)
    out.line(token_summary(report))
    warnings = [c for c in report.checks if c.status == WARN]
    for check in warnings:
        out.line(f"warning: {check.subject}: {check.detail}" + (f" -- {check.fix}" if check.fix else ""), WARN)
    for check in report.problems:
        out.line(f"problem: {check.subject}: {check.detail}" + (f" -- fix: {check.fix}" if check.fix else ""), FAIL)
    if not report.problems:
        out.line("No problems found.", OK)


def token_summary(report: DoctorReport) -> str:
    if report.tokens_before is None or report.tokens_after is None:
        return f"tokens: {report.token_note or 'not measured'}"
    counted = [s for s in report.servers if s.tokens is not None]
    if not counted:
        return f"tools/list tokens (o200k): no server answered; the router's 3 tools take {report.tokens_after:,}"
    tools = sum(s.tools for s in counted)
    before, after = report.tokens_before, report.tokens_after
    saving = f" ({(before - after) / before:.0%} less)" if before > after else ""
    text = (
        f"tools/list tokens (o200k): {before:,} for {tools} tools on {len(counted)} server(s) directly, "
        f"{after:,} through the router's 3 tools{saving}"
    )
    return text + (f"; {report.token_note}" if report.token_note else "")
