"""``discovery-router``: a thin command-line shell over :class:`~discovery_router.router.Router`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import mcp_types

from discovery_router import __version__

from discovery_router.mcp import render
from discovery_router.paths import APP_NAME
from discovery_router.catalog import SEARCH_HINT
from discovery_router.config.loader import EVERY_VARIABLE_SET, load_config, locate_config, read_raw, servers_of
from discovery_router.config.model import RouterConfig
from discovery_router.config.edit import add_server, remove_server
from discovery_router.errors import RouterError
from discovery_router.cli.confirm import TerminalConfirmer
from discovery_router.front import FrontContext
from discovery_router.cli.auth import register as register_auth
from discovery_router.cli.governance import register as register_governance
from discovery_router.cli.logs import configure as configure_logging
from discovery_router.cli.onboarding import register as register_onboarding
from discovery_router.cli.output import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Output, Table
from discovery_router.onboarding.secrets import redactor_for
from discovery_router.router import Router
from discovery_router.upstreams.status import UpstreamState


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `add NAME -- COMMAND ARG...`: everything after `--` is the server's command line.
    command_line: list[str] = []
    if "--" in argv and "add" in argv[: argv.index("--")]:
        split = argv.index("--")
        argv, command_line = argv[:split], argv[split + 1 :]
    if not command_line and "add" in argv:
        args, extra = parser.parse_known_args(argv)
        if args.command == "add" and extra:  # a command typed without the `--` in front of it
            print(
                f"error: put the server's command after --: discovery-router add {args.name} -- {' '.join(extra)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    args = parser.parse_args(argv)
    args.command_line = command_line
    configure_logging(
        logging.DEBUG if args.verbose else logging.INFO if args.command == "serve" else logging.WARNING,
        verbose=args.verbose,
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except RouterError as exc:
        message = str(exc).replace(SEARCH_HINT, "Use `discovery-router search QUERY` to find tool ids.")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=APP_NAME,
        description="Route an agent to the right tool on many MCP servers through three tools: "
        "search_tools, describe_tool and call_tool.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $DISCOVERY_ROUTER_CONFIG, else the user config dir; see `config path`)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the router as an MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.set_defaults(handler=cmd_serve)

    search = sub.add_parser("search", help="find tools for a task, as an agent would")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=None)
    search.add_argument("--server", default=None, help="only this server's tools")
    search.add_argument(
        "--step",
        action="append",
        default=None,
        dest="steps",
        metavar="STEP",
        help="one step of the task's plan (repeat): tools are found per step",
    )
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(handler=cmd_search)

    describe = sub.add_parser("describe", help="show one tool's description and schemas")
    describe.add_argument("id", help="<server>/<tool>, or a tool name only one server has")
    describe.set_defaults(handler=cmd_describe)

    call = sub.add_parser("call", help="validate and call one tool")
    call.add_argument("id")
    call.add_argument("--args", default=None, metavar="JSON", help="arguments as a JSON object")
    call.add_argument("--json", action="store_true", help="print the raw MCP result")
    call.set_defaults(handler=cmd_call)

    status = sub.add_parser("status", help="connect to every server and report its state and tool count")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    listing = sub.add_parser("list", help="list configured servers (no connection; secrets hidden)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_list)

    add = sub.add_parser(
        "add",
        help="add a server to the config file",
        usage="discovery-router add NAME --url URL [--header K:V]...\n"
        "       discovery-router add NAME [--env K=V]... -- COMMAND [ARG...]",
    )
    add.add_argument("name")
    add.add_argument("--url")
    add.add_argument("--header", action="append", default=[], metavar="K:V")
    add.add_argument("--transport", choices=["http", "streamable-http", "sse"])
    add.add_argument("--env", action="append", default=[], metavar="K=V")
    add.add_argument("--cwd")
    add.add_argument("--timeout", type=float)
    add.add_argument("--disabled", action="store_true", help="add it with enabled: false")
    add.add_argument("--replace", action="store_true", help="overwrite an existing entry of that name")
    add.set_defaults(handler=cmd_add)

    remove = sub.add_parser("remove", help="remove a server from the config file")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_remove)

    config = sub.add_parser("config", help="config file helpers")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    config_sub.add_parser("path", help="print the config file's path").set_defaults(handler=cmd_config_path)

    reindex = sub.add_parser("reindex", help="refresh tool lists and embeddings in the index cache")
    reindex.add_argument("--server", default=None, help="only this server")
    reindex.add_argument("--force", action="store_true", help="re-embed every tool, ignoring cached vectors")
    reindex.set_defaults(handler=cmd_reindex)

    register_onboarding(sub)
    register_governance(sub)
    register_auth(sub)
    _accept_global_options_after(sub)
    return parser


def _accept_global_options_after(sub: Any) -> None:
    """``--config`` and ``-v`` also after the subcommand (``serve --config FILE``, what ``install`` writes).

    SUPPRESS keeps a value given before the subcommand when the subcommand's copy is not given.
    """
    for parser in sub.choices.values():
        parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="config file")
        parser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging on stderr"
        )
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_global_options_after(action)


# -- commands ---------------------------------------------------------------


def _load(args: argparse.Namespace) -> RouterConfig:
    return load_config(args.config, missing_ok=args.config is None)


def _run_with_router(args: argparse.Namespace, work: Any, *, semantic: bool = False) -> int:
    """Connect, wait for every server's first attempt, run ``work``; the model loads only to search."""

    async def run() -> int:
        async with Router.from_config(_load(args), semantic=semantic) as router:
            await router.wait_ready()
            return await work(router)

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    from discovery_router.mcp.server import build_server
    from discovery_router.mcp.state_key import request_state_security

    config = _load(args)
    if not args.verbose:
        logging.getLogger().setLevel(config.settings.log_level.upper())
    if args.transport != "stdio":  # bearer token + Origin check; refuses an unsafe bind before anything starts
        from discovery_router.mcp.access import serving_middleware

        guard = serving_middleware(args.host, config.settings, redactor=config.redactor)
        if _port_in_use(args.host, args.port):  # uvicorn would log a bare bind error after starting everything
            raise RouterError(f"port {args.port} is in use on {args.host}: pass --port N")
    if not config.servers:
        logging.getLogger("discovery_router").warning(
            "no servers configured in %s; add one with `discovery-router add`", config.path
        )
    # One key ring on every replica, so any of them can finish a multi-round call another started.
    state_security = request_state_security(config.settings, redactor=config.redactor)
    router = Router.from_config(config)
    # The config file is watched: edits apply while clients stay connected.
    app = build_server(router, config_path=config.path, state_security=state_security)
    if args.transport == "stdio":
        _serve_stdio_until_stopped(app, router)
    else:
        from discovery_router.mcp.http import serve_http

        # fastmcp's guard checks Host on a loopback bind (DNS rebinding); ours checks Origin and the token.
        serve_http(
            app,
            config.settings,
            transport=args.transport,
            host=args.host,
            port=args.port,
            middleware=guard,
            allowed_origins=list(config.settings.http_allowed_origins),
            router=router,
        )
    return EXIT_OK


def _port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound now (another server holds it)."""
    import socket

    try:
        with socket.create_server((host, port)):
            return False
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE


def _serve_stdio_until_stopped(app: Any, router: Router) -> None:
    """Serve on stdio until EOF, SIGINT or SIGTERM; on a signal drain the calls in flight, then stop every child.

    A signal cannot simply cancel the server: its stdin reader is a worker
    thread that only returns when a line arrives. So the handler stops the
    router itself (terminating stdio children) and exits without waiting.
    """
    from discovery_router.mcp.http import Drain

    drain = Drain()  # calls in flight get router.shutdown_drain seconds, then an error answer
    app.add_middleware(drain)
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if stopping:  # a second signal: answer what is left now
            drain.abandon()
        else:
            stopping.append(asyncio.get_running_loop().create_task(stop_and_exit()))

    async def stop_and_exit() -> None:
        with contextlib.suppress(BaseException):
            await drain.drain(router.settings.shutdown_drain)
            await asyncio.sleep(0.2)  # let the stdout writer send the last answers
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(router.stop(), timeout=10)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)

    from discovery_router.mcp.stdio import run_stdio

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        await run_stdio(app)  # answers a request the SDK cannot parse (a lone surrogate) instead of dropping it

    from discovery_router.mcp.loop import run

    run(serve())
    # EOF: the lifespan has stopped every upstream. Exit without joining the
    # embedding thread, which may be inside onnxruntime and abort on teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_OK)


def cmd_search(args: argparse.Namespace) -> int:
    async def work(router: Router) -> int:
        await router.wait_hybrid(timeout=120)
        hits = await router.search(args.query, args.limit, args.server, steps=args.steps)
        out = Output(as_json=args.json)
        if out.rich and hits.steps:
            print(render.search_results(hits, router.settings.summary_chars))  # a table cannot show the steps
        elif out.rich:
            rows = [
                [h.id, "" if h.available else "unreachable", render.summarize(h.tool.description, 200)] for h in hits
            ]
            out.table(Table(f"search: {args.query}", ["id", "server state", "summary"], rows, status_column=None))
        elif not args.json:
            print(render.search_results(hits, router.settings.summary_chars))  # what an agent gets
        step_of = {e.id: n for n, group in enumerate(hits.groups) for e in group}
        out.document(
            [
                {
                    "id": h.id,
                    "server": h.server,
                    "tool": h.name,
                    "available": h.available,
                    "summary": render.summarize(h.tool.description, router.settings.summary_chars),
                }
                | ({"step": step_of[h.id] + 1} if h.id in step_of else {})
                for h in hits
            ]
        )
        return EXIT_OK if hits else EXIT_FAILURE

    return _run_with_router(args, work, semantic=True)


def cmd_describe(args: argparse.Namespace) -> int:
    async def work(router: Router) -> int:
        entry = await router.describe(args.id)
        print(json.dumps(render.tool_description(entry), indent=2, ensure_ascii=False))
        return EXIT_OK

    return _run_with_router(args, work)


def cmd_call(args: argparse.Namespace) -> int:
    async def work(router: Router) -> int:
        result = await router.call(
            args.id, args.args, front=FrontContext(confirmer=TerminalConfirmer())
        )  # y/N at a terminal
        if args.json:
            print(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2))
        else:
            print(render.readable_result(result))
        return EXIT_FAILURE if isinstance(result, mcp_types.CallToolResult) and result.is_error else EXIT_OK

    return _run_with_router(args, work)


def cmd_status(args: argparse.Namespace) -> int:
    async def work(router: Router) -> int:
        statuses = router.status()
        out = Output(as_json=args.json, redact=router.redact)
        if not statuses:
            out.line(f"no servers configured in {router_config_path(args)}")
        rows = [
            [
                s.state.value,
                s.name,
                s.transport,
                s.tool_count if s.state is UpstreamState.CONNECTED else "",
                s.error or "",
            ]
            for s in statuses
        ]
        out.table(Table("servers", ["state", "server", "transport", "tools", "error"], rows))
        for s in statuses:  # a hostile or buggy server's tool list: what was dropped, so nothing vanishes silently
            if s.duplicate_tools:
                out.line(f"{s.name}: tools listed twice (first kept): {', '.join(s.duplicate_tools)}", "warn")
            if s.refused_tools:
                out.line(f"{s.name}: tools refused for invalid names: {', '.join(s.refused_tools)}", "warn")
        out.document(
            [
                {
                    "server": s.name,
                    "state": s.state.value,
                    "transport": s.transport,
                    "tools": s.tool_count,
                    "error": s.error,
                    "duplicate_tools": list(s.duplicate_tools),
                    "refused_tools": list(s.refused_tools),
                }
                for s in statuses
            ]
        )
        failed = [s for s in statuses if s.state not in (UpstreamState.CONNECTED, UpstreamState.DISABLED)]
        return EXIT_FAILURE if failed else EXIT_OK

    return _run_with_router(args, work)


def router_config_path(args: argparse.Namespace) -> str:
    return str(locate_config(args.config))


def cmd_list(args: argparse.Namespace) -> int:
    config = load_config(args.config, missing_ok=args.config is None, environ=EVERY_VARIABLE_SET)
    raw_servers = _raw_servers(config)
    out = Output(as_json=args.json, redact=redactor_for(raw_servers))  # tokens in args or URLs stay hidden
    if not config.servers:
        out.line(f"no servers configured in {config.path}")
    rows, documents = [], []
    for name, server in config.servers.items():
        raw = raw_servers.get(name, {})
        target = (
            raw.get("url") if server.transport != "stdio" else " ".join([raw.get("command", ""), *raw.get("args", [])])
        )
        secret_keys = {key: sorted(raw.get(key) or {}) for key in ("env", "headers")}  # names only, never values
        rows.append(
            [
                name,
                server.transport,
                target,
                "yes" if server.enabled else "no",
                ", ".join(f"{key}: {', '.join(names)}" for key, names in secret_keys.items() if names),
            ]
        )
        documents.append(
            {
                "server": name,
                "transport": server.transport,
                "target": target,
                "enabled": server.enabled,
                **{k: v for k, v in secret_keys.items() if v},
            }
        )
    out.table(
        Table(
            f"servers in {config.path}",
            ["server", "transport", "command / url", "enabled", "keys"],
            rows,
            status_column=None,
        )
    )
    out.document(documents)
    return EXIT_OK


def _raw_servers(config: RouterConfig) -> dict[str, Any]:
    if config.path is None or not config.path.exists():
        return {}
    raw = read_raw(config.path)
    return servers_of(raw)


def cmd_add(args: argparse.Namespace) -> int:
    command_line = args.command_line
    if bool(args.url) == bool(command_line):
        print("error: give either --url URL or -- COMMAND ARG...", file=sys.stderr)
        return EXIT_USAGE
    if args.url and (args.env or args.cwd):
        print(
            "error: --env and --cwd apply to stdio servers (-- COMMAND ...); a --url server takes --header",
            file=sys.stderr,
        )
        return EXIT_USAGE
    entry: dict[str, Any] = {}
    if args.url:
        entry["url"] = args.url
        if args.transport:
            entry["transport"] = args.transport
        if args.header:
            entry["headers"] = dict(_split_pair(h, ":", "--header") for h in args.header)
    else:
        entry["command"], entry["args"] = command_line[0], command_line[1:]
        if args.env:
            entry["env"] = dict(_split_pair(e, "=", "--env") for e in args.env)
        if args.cwd:
            entry["cwd"] = args.cwd
    if args.timeout:
        entry["timeout"] = args.timeout
    if args.disabled:
        entry["enabled"] = False
    path = locate_config(args.config)
    add_server(path, args.name, entry, replace=args.replace)
    literal = [k for k, v in {**entry.get("headers", {}), **entry.get("env", {})}.items() if "${" not in v]
    if literal:
        print(
            f"note: {', '.join(literal)} stored as plain text; ${{VAR}} keeps a secret in the environment instead",
            file=sys.stderr,
        )
    print(f"added {args.name} to {path}")
    return EXIT_OK


def _split_pair(text: str, separator: str, flag: str) -> tuple[str, str]:
    key, found, value = text.partition(separator)
    if not found or not key.strip():
        raise RouterError(f"{flag} takes KEY{separator}VALUE")  # never echo it: the value may be a secret
    return key.strip(), value.strip()


def cmd_remove(args: argparse.Namespace) -> int:
    path = locate_config(args.config)
    remove_server(path, args.name)
    print(f"removed {args.name} from {path}")
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace) -> int:
    from discovery_router.reindex import reindex, summary

    config = _load(args)
    with _progress_display() as progress:
        report = asyncio.run(reindex(config, server=args.server, force=args.force, progress=progress))
    print(summary(report))
    return EXIT_FAILURE if report.failed else EXIT_OK


@contextlib.contextmanager
def _progress_display() -> Any:
    """A rich progress bar on a terminal; silence in scripts and pipes."""
    if not sys.stderr.isatty():
        yield lambda _phase, _done, _total: None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total or None)
            bar.update(tasks[phase], completed=done)

        yield update


def cmd_config_path(args: argparse.Namespace) -> int:
    print(locate_config(args.config))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
