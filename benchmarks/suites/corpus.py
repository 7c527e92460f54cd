"""The labelled corpus, and real in-memory FastMCP servers whose tools carry its schemas (the router's,
the merged proxy's and the flat catalog's upstreams)."""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
        for server, slug in corpus.slugs.items()
        if slug in servers
    }
