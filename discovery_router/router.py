"""The router's Python API: the one place search, describe and call are implemented.

The MCP server (:mod:`discovery_router.mcp.server`), the CLI and the benchmarks
are all thin shells over :class:`Router`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mcp_types
from fastmcp import Client

from discovery_router.arguments import prepare_arguments
from discovery_router.catalog import Catalog, ToolEntry, clean_id
from discovery_router.config.model import RouterConfig, RouterSettings, ServerConfig
from discovery_router.paths import CACHE_ENV_VAR, OFF, turned_off
from discovery_router.errors import RouterError, UnknownServerError, UnknownToolError
from discovery_router.front import NOBODY, FrontContext
from discovery_router.governance.guard import Leg, ToolCall, governance_for
from discovery_router.indexer import Indexer
from discovery_router.governance.policy import ServerPolicy
from discovery_router.governance.redact import Redactor, redact_logs
from discovery_router.upstreams.relay import LoneClient
from discovery_router.search import SearchIndex
from discovery_router.upstreams.spec import UpstreamSpec, spec_of
from discovery_router.upstreams.connection import Upstream, UpstreamState, UpstreamStatus
from discovery_router.cache import IndexCache, clean_tool

logger = logging.getLogger(__name__)


class Matches(list[ToolEntry]):
    """What :meth:`Router.search` found: the tools, best first, plus what a client should be told.

    A list, so callers that only want the tools use it as one. ``weak``: even
    the best hit barely matches the query (say so rather than pass off filler as
    answers). In step mode, ``steps`` are the plan, ``groups[i]`` the tools for
    ``steps[i]`` and ``weak_steps[i]`` whether that step's best is weak.
    """

    def __init__(
        self,
        entries: Iterable[ToolEntry] = (),
        *,
        weak: bool = False,
        steps: tuple[str, ...] = (),
        groups: tuple[list[ToolEntry], ...] = (),
        weak_steps: tuple[bool, ...] = (),
    ) -> None:
        super().__init__(entries)
        self.weak, self.steps, self.groups, self.weak_steps = weak, steps, groups, weak_steps


ServerTarget = ServerConfig | UpstreamSpec | Any
"""A config entry, a spec, or anything ``fastmcp.Client`` accepts (a FastMCP server, a transport, a URL)."""


STARTING_GRACE = 10.0
"""Seconds after start during which a search waits for servers never seen before (bounded by connect_timeout)."""


def _server_named(name: str) -> str | None:
    """The server part of a ``<server>/<tool>`` id (None for a bare tool name)."""
    name = clean_id(name)
    return name.split("/", 1)[0] if "/" in name else None


def _names(query: str, name: str) -> bool:
    """``name`` appears in ``query`` as a whole word (``git`` in "git log", not in "digital")."""
    return re.search(rf"(?<![\w-]){re.escape(name.casefold())}(?![\w-])", query.casefold()) is not None


def open_cache(settings: RouterSettings) -> IndexCache | None:
    """The on-disk index store, unless ``cache_dir`` is ``"none"``."""
    if turned_off(settings.cache_dir if settings.cache_dir else os.environ.get(CACHE_ENV_VAR)):
        return None  # the setting, else $DISCOVERY_ROUTER_CACHE_DIR, may be "none"
    return IndexCache(Path(settings.cache_dir).expanduser() if settings.cache_dir else None)


class Router:
    """Connects to every upstream and serves search / describe / call over their tools."""

    def __init__(
        self,
        servers: Mapping[str, ServerTarget],
        settings: RouterSettings | None = None,
        *,
        redactor: Redactor | None = None,
        semantic: bool = True,
        policies: Mapping[str, ServerPolicy] | None = None,
    ) -> None:
        """``semantic=False`` skips loading the embedding model (one-shot commands that never search).

        ``policies`` sets per-server governance for servers given as objects (config entries carry their own).
        """
        self.settings = settings or RouterSettings()
        self._redactor = redactor or Redactor()
        redact_logs(self._redactor)
        specs = {name: spec_of(name, target) for name, target in servers.items()}
        own_policies = {name: spec.policy for name, spec in specs.items() if spec.policy is not None}
        self.governance = governance_for({**own_policies, **(policies or {})}, self.settings, self._redactor)
        self.component_listeners: list[Callable[[], None]] = []
        """Called when any upstream's resources, templates or prompts change (the MCP server notifies clients)."""
        self.resource_listeners: list[Callable[[str, str], None]] = []
        """Called with (server, uri) when an upstream says a subscribed resource was updated."""
        self.lone_client = LoneClient()
        """The stdio client, when it declared roots: asked for them by upstreams outside any call."""
        self._descriptions = {name: spec.description for name, spec in specs.items() if spec.description}
        self.upstreams: dict[str, Upstream] = {
            name: Upstream(
                name,
                spec.client_factory(),
                settings=self.settings,
                call_timeout=spec.call_timeout,
                redact=self._redactor,
                on_tools_changed=self._tools_changed,
                on_components_changed=self._components_changed,
                on_resource_updated=self._resource_updated,
                transport=spec.transport,
                enabled=spec.enabled,
                config_error=spec.error,
                roots=spec.roots,
                lone_client=self.lone_client,
            )
            for name, spec in specs.items()
        }
        self.cache = open_cache(self.settings)
        self._cache_keys = {name: spec.cache_key for name, spec in specs.items()}
        self._saved_tools: dict[str, list[dict[str, Any]] | None] = {}
        """What the cache holds per server, as far as this process knows (skips rewriting the same list)."""
        self.indexer = Indexer(
            self._entries,
            server_descriptions=self.server_descriptions,
            embedding_model=self.settings.embedding_model if semantic else OFF,
            cache=self.cache,
        )
        self._load_cached_tools()
        self._started = False
        self._started_at = 0.0
        self._watch_task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: RouterConfig, *, semantic: bool = True) -> Router:
        return cls(config.servers, config.settings, redactor=config.redactor, semantic=semantic)

    @property
    def catalog(self) -> Catalog:
        return self.indexer.catalog

    @property
    def index(self) -> SearchIndex:
        return self.indexer.index

    # -- the index cache -------------------------------------------------

    def cache_key_of(self, name: str) -> str:
        """The key of ``name``'s tool list in the index cache."""
        return self._cache_keys[name]

    def _load_cached_tools(self) -> None:
        """Stale but searchable: last known tools of every server, before any connects."""
        if self.cache is None:
            return
        for name, upstream in self.upstreams.items():
            if upstream.state is UpstreamState.DISABLED or upstream.tools:
                continue
            cached = self._saved_tools[name] = self.cache.load_tools(self._cache_keys[name])
            if cached:
                upstream.tools = [mcp_types.Tool.model_validate(tool) for tool in cached]
        self.indexer.request_rebuild()

    async def _watch_cache(self) -> None:
        """Pick up a ``discovery-router reindex`` run by another process."""
        assert self.cache is not None
        seen = self.cache.generation()
        while True:
            await asyncio.sleep(self.settings.cache_poll_interval)
            current = self.cache.generation()
            if current != seen:
                seen = current
                logger.info("the index cache was refreshed by a reindex; updating")
                self._adopt_reindexed_tools()

    def _adopt_reindexed_tools(self) -> None:
        """Re-list live servers, restart those whose reindexed list differs, refresh stale ones."""
        assert self.cache is not None
        for name, upstream in self.upstreams.items():
            if upstream.state is UpstreamState.DISABLED:
                continue
            cached = self._saved_tools[name] = self.cache.load_tools(self._cache_keys[name])
            if upstream.state is not UpstreamState.CONNECTED:
                if cached is not None:
                    upstream.tools = [mcp_types.Tool.model_validate(tool) for tool in cached]
                upstream.retry_now()
            elif cached is not None and cached != [clean_tool(t) for t in upstream.tools]:
                upstream.restart()  # e.g. a stdio server upgraded on disk: our child is the old version
            else:
                upstream.request_refresh()
        self.indexer.request_rebuild()

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting to every enabled upstream concurrently; returns at once."""
        if not self._started:
            self._started = True
            self._started_at = time.monotonic()
            self.indexer.start()
            for upstream in self.upstreams.values():
                upstream.start()
            if self.cache is not None and self.settings.cache_poll_interval:
                self._watch_task = asyncio.create_task(self._watch_cache(), name="cache-watch")

    async def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until every upstream has made its first connection attempt."""
        return await self._settled(self.upstreams.values(), timeout)

    async def _settled(self, upstreams: Iterable[Upstream], timeout: float | None = None) -> bool:
        """Wait (bounded) for these upstreams' first connection attempts; True if all made one."""
        await self.start()
        waits = [u.first_attempt_done.wait() for u in upstreams if not u.first_attempt_done.is_set()]
        if not waits:
            return True
        limit = self.settings.connect_timeout + 5 if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout=limit)
            return True
        except TimeoutError:
            return False

    async def ready_catalog(self, server: str | None = None) -> Catalog:
        """Every server's tools, live or cached.

        With ``server`` (a call or lookup aimed at it), waits for that server's first connection attempt
        (bounded by ``connect_timeout``). Otherwise waits only for servers never seen before, and only
        during the first :data:`STARTING_GRACE` seconds after start: a server that never connects must
        not hold every session's first search for ``connect_timeout``; search says it is still starting.
        """
        await self.start()
        if server is not None and server in self.upstreams:
            await self._settled([self.upstreams[server]])
            return self.catalog
        left = self._started_at + min(STARTING_GRACE, self.settings.connect_timeout) - time.monotonic()
        unseen = [u for u in self.upstreams.values() if not u.tools]
        if unseen and left > 0:
            await self._settled(unseen, timeout=left)
        return self.catalog

    def starting_servers(self) -> list[str]:
        """Servers still making their first connection, whose tools search cannot show yet."""
        return [name for name, u in self.upstreams.items()
                if u.state is UpstreamState.CONNECTING and not u.tools and not u.first_attempt_done.is_set()]

    async def _index_ready(self, server: str | None = None) -> None:
        """Searching also needs the index to include every change so far."""
        await self.ready_catalog(server)
        await self.indexer.up_to_date()

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None
        await asyncio.gather(*(u.stop() for u in self.upstreams.values()))
        await self.indexer.stop()
        self._started = False

    async def __aenter__(self) -> Router:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def connection(self, server: str) -> Client[Any]:
        """``server``'s live client, for passthrough requests (waits for its first connection attempt)."""
        upstream = self.upstreams[server]
        await self._settled([upstream])
        return await upstream.live_client()

    def redact(self, text: str) -> str:
        """Mask this config's secrets in ``text``."""
        return self._redactor(text)

    def status(self) -> list[UpstreamStatus]:
        return [u.status for u in self.upstreams.values()]

    def server_descriptions(self) -> dict[str, str]:
        """What search knows each server by: the config's ``description``, else what the server said
        about itself when it connected (``instructions``, serverInfo title/description)."""
        return {name: self._descriptions.get(name) or upstream.self_description
                for name, upstream in self.upstreams.items()
                if self._descriptions.get(name) or upstream.self_description}

    def _entries(self) -> list[ToolEntry]:
        """Every tool the policy exposes: a denied tool is never indexed, shown or callable."""
        return [
            ToolEntry(name, tool, available=upstream.state is not UpstreamState.FAILED,
                      policy=self.governance.decide(name, tool))
            for name, upstream in self.upstreams.items()
            for tool in upstream.tools
            if self.governance.exposes(name, tool.name)
        ]

    def _tools_changed(self, upstream: Upstream) -> None:
        if self.cache is not None and upstream.state is UpstreamState.CONNECTED:
            cleaned = [clean_tool(t) for t in upstream.tools]
            try:
                if cleaned != self._saved_tools.get(upstream.name):
                    self.cache.save_tools(self._cache_keys[upstream.name], cleaned)
                    self._saved_tools[upstream.name] = cleaned
            except OSError as exc:
                logger.warning("cannot write the tool cache for %s: %s", upstream.name, exc)
        self.indexer.request_rebuild()

    def _components_changed(self, _upstream: Upstream) -> None:
        for listener in self.component_listeners:
            listener()

    def _resource_updated(self, upstream: Upstream, uri: str) -> None:
        for listener in self.resource_listeners:
            listener(upstream.name, uri)

    async def client_roots_changed(self) -> None:
        """The stdio client arrived with roots, or changed them: servers that use roots ask again."""
        await asyncio.gather(*(upstream.roots_changed() for upstream in self.upstreams.values()))

    # -- the three operations --------------------------------------------

    async def search(
        self, query: str, limit: int | None = None, server: str | None = None, steps: Sequence[str] | None = None
    ) -> Matches:
        """The best-matching tools for a plain-language query, or for each step of a plan.

        With ``steps`` (the agent's plan for ``query``) each step is searched
        with the whole task as context, and ``limit`` caps the tools per step
        (at most ``settings.step_limit``); the answer lists every step's best
        tool first (round-robin), each tool once, and ``Matches.groups`` says
        which step each tool serves. Answers from the servers ready (see :meth:`ready_catalog`).
        """
        await self._index_ready(server)
        if limit is not None and limit < 1:
            raise RouterError(f"limit must be at least 1 (got {limit}).")
        if server is not None and server not in self.upstreams:
            known = ", ".join(self.upstreams) or "none configured"
            raise UnknownServerError(f"Unknown server {server!r}. Servers: {known}.")
        catalog, index = self.indexer.served
        plan = [s.strip() for s in steps or () if s and s.strip()]
        if plan:
            per_step = self.settings.step_limit if limit is None else min(limit, self.settings.step_limit)
            groups = index.search_steps(query, plan, max(1, per_step), server)
            entries = [[catalog.resolve(h.doc.id) for h in group] for group in groups]
            flat = SearchIndex.merged(entries)
            weak = tuple(bool(group) and group[0].weak for group in groups)
            return Matches(flat, steps=tuple(plan), groups=tuple(entries), weak_steps=weak,
                           weak=bool(weak) and all(weak))
        limit = self.settings.search_limit if limit is None else limit
        limit = min(limit, self.settings.max_search_limit)
        hits = index.search(query, limit, server)
        return Matches([catalog.resolve(hit.doc.id) for hit in hits], weak=bool(hits) and hits[0].weak)

    def failed_servers_named(self, query: str, server: str | None = None) -> list[tuple[str, str]]:
        """(name, reason) of failed servers the query names as a word, or the filter names: a search
        for "jira" should say Jira is configured but down, not just find nothing."""
        return [(name, upstream.error or upstream.state.value) for name, upstream in self.upstreams.items()
                if upstream.state is UpstreamState.FAILED and (name == server or _names(query, name))]

    async def wait_hybrid(self, timeout: float = 60.0) -> bool:
        """Wait until search uses embeddings too (the MCP server never waits; the CLI does)."""
        await self._index_ready()
        return await self.indexer.wait_hybrid(timeout)

    async def describe(self, name: str) -> ToolEntry:
        """One tool by id (or unambiguous bare name)."""
        await self.ready_catalog(_server_named(name))
        return self.resolve(name)

    def resolve(self, name: str) -> ToolEntry:
        """Catalog lookup that explains a miss caused by a server being down."""
        try:
            return self.catalog.resolve(name)
        except UnknownToolError as exc:
            name = clean_id(name)
            server = name.split("/", 1)[0] if "/" in name else None
            upstream = self.upstreams.get(server) if server else None
            if upstream is not None and upstream.state is not UpstreamState.CONNECTED:
                raise upstream.unavailable_error() from None
            down = [n for n, u in self.upstreams.items() if u.state is UpstreamState.FAILED]
            if down:
                raise UnknownToolError(f"{exc} (unreachable now: {', '.join(down)})") from None
            raise

    async def call(
        self, name: str, arguments: Mapping[str, Any] | str | None = None, *, front: FrontContext = NOBODY,
    ) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        """Validate and forward one call; the upstream's result comes back as it was.

        The call travels down once: governance's guard (policy, confirmation,
        the audit line) prepares it through :meth:`_prepare`, then forwards it
        through :meth:`_forward`. ``front`` is the calling client: its relay
        lets the upstream log to and ask it, and an ``InputRequiredResult``
        comes back only when that client can answer it (its retry then carries
        ``input_responses``/``request_state`` in its own ``front``).
        """
        return await self.governance.on_call_tool(ToolCall(name, arguments, front, self._prepare), self._forward)

    async def _prepare(self, call: ToolCall) -> None:
        """Resolve the id and repair/validate the arguments against the tool's schema (nothing is sent on failure)."""
        await self.ready_catalog(_server_named(call.name))
        entry = call.entry = self.resolve(call.name)
        call.arguments = prepare_arguments(entry.id, call.raw_arguments, entry.tool.input_schema)

    async def _forward(self, call: ToolCall, leg: Leg) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        """Send this leg on the live connection of the tool's server; the answer comes back unchanged."""
        assert call.entry is not None and call.arguments is not None
        upstream = self.upstreams[call.entry.server]
        await self._settled([upstream])
        return await upstream.call(call.entry.name, call.arguments, progress_handler=call.front.progress,
                                   relay=call.front.relay, input_responses=leg.input_responses,
                                   request_state=leg.request_state)
