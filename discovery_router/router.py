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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mcp_types
from fastmcp import Client

from discovery_router.arguments import prepare_arguments
from discovery_router.catalog import Catalog, Matches, ToolEntry
from discovery_router.ids import server_of
from discovery_router.config.model import RouterConfig, RouterSettings, ServerConfig
from discovery_router.paths import CACHE_ENV_VAR, OFF, turned_off
from discovery_router.errors import RouterError, UnknownServerError, UnknownToolError
from discovery_router.events import CatalogChanged, ComponentsChanged, EventStream, Listener, ResourceUpdated
from discovery_router.front import NOBODY, FrontContext
from discovery_router.governance.guard import Leg, Result, ToolCall, governance_for
from discovery_router.indexer import Indexer
from discovery_router.governance.policy import ServerPolicy
from discovery_router.governance.redact import Redactor, redact_logs
from discovery_router.upstreams.relay import LoneClient
from discovery_router.search import SearchIndex
from discovery_router.upstreams.spec import ConfigChange, UpstreamSpec, spec_of
from discovery_router.upstreams.connection import Upstream
from discovery_router.upstreams.status import Components, UpstreamState, UpstreamStatus
from discovery_router.cache import IndexCache, clean_tool
from discovery_router.team import open_shared_state

logger = logging.getLogger(__name__)


ServerTarget = ServerConfig | UpstreamSpec | Any
"""A config entry, a spec, or anything ``fastmcp.Client`` accepts (a FastMCP server, a transport, a URL)."""


ROUTER_SERVER = "discovery-router"
"""The server part of the router's own tools' ids (``discovery-router/add_server``) in audit lines and policy."""


STARTING_GRACE = 10.0
"""Seconds after start during which a search waits for servers never seen before (bounded by connect_timeout)."""


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
        self._events = EventStream()
        self.lone_client = LoneClient()
        """The stdio client, when it declared roots: asked for them by upstreams outside any call."""
        self._descriptions = {name: spec.description for name, spec in specs.items() if spec.description}
        self._specs: dict[str, UpstreamSpec] = dict(specs)
        self.upstreams: dict[str, Upstream] = {name: self._new_upstream(name, spec) for name, spec in specs.items()}
        self.config_problem: str | None = None
        """Why the newest config file was not applied (the last good one keeps serving), or None."""
        self._reload_lock = asyncio.Lock()
        self._settings_seen = self.settings
        self.cache = open_cache(self.settings)
        self.team = open_shared_state(self.settings, self._redactor)
        """The team database's state when ``database_url`` is set (see :mod:`discovery_router.team`), else None."""
        if self.team is not None:
            self.governance.audit_log = self.team.audit_sink(self.governance.audit_log)
            self.governance.nonces = self.team.nonces(self.governance.nonces)
        self.database_search = self.team.database_search() if self.team is not None else None
        """Search for catalogs of ``settings.database_search_from`` tools or more, when there is a team database."""
        self._cache_keys = {name: spec.cache_key for name, spec in specs.items()}
        self._saved_tools: dict[str, list[dict[str, Any]] | None] = {}
        """What the cache holds per server, as far as this process knows (skips rewriting the same list)."""
        self.indexer = Indexer(
            self._entries,
            server_descriptions=self.server_descriptions,
            embedding_model=self.settings.embedding_model if semantic else OFF,
            cache=self.team.embeddings(self.cache) if self.team is not None else self.cache,
        )
        self._load_cached_tools()
        self._started = False
        self._started_at = 0.0
        self._watch_task: asyncio.Task[None] | None = None

    def _new_upstream(self, name: str, spec: UpstreamSpec) -> Upstream:
        return Upstream(
            name,
            spec.client_factory(self._redactor),
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
            login_stamp=spec.login_stamp,
        )

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

    def _load_cached_tools(self, names: Iterable[str] | None = None) -> None:
        """Stale but searchable: last known tools of every server (or of ``names``), before any connects."""
        if self.cache is None:
            return
        for name in list(self.upstreams) if names is None else names:
            upstream = self.upstreams[name]
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
            if self.team is not None:
                await self.team.start(self)  # first: search serves the shared catalog while servers connect
            self._started = True
            self._started_at = time.monotonic()
            self.indexer.start()
            for upstream in self.upstreams.values():
                upstream.start()
            if self.cache is not None and self.settings.cache_poll_interval:
                self._watch_task = asyncio.create_task(self._watch_cache(), name="cache-watch")

    async def wait_ready(self, timeout: float | None = None, on_settled: Callable[[str], None] | None = None) -> bool:
        """Wait until every upstream has made its first connection attempt (True if all did in time).

        ``on_settled(name)`` is called as each one settles, connected or failed (progress, start-up times).
        """
        if on_settled is None:
            return await self._settled(self.upstreams.values(), timeout)
        await self.start()

        async def settled(name: str, upstream: Upstream) -> None:
            await upstream.first_attempt_done.wait()
            on_settled(name)

        limit = self.settings.connect_timeout + 5 if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.gather(*(settled(n, u) for n, u in self.upstreams.items())), limit)
            return True
        except TimeoutError:
            return False

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
        return [
            name
            for name, u in self.upstreams.items()
            if u.state is UpstreamState.CONNECTING and not u.tools and not u.first_attempt_done.is_set()
        ]

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
        if self.team is not None:
            await self.team.stop()
        self._started = False

    async def __aenter__(self) -> Router:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- live configuration ----------------------------------------------

    async def apply_config(self, config: RouterConfig) -> ConfigChange:
        """Bring the running servers in line with a newly loaded config, server by server.

        Added servers are connected and indexed, removed ones stopped (their processes end) and dropped from
        search, changed ones restarted; every other server keeps its connection and its calls in flight.
        A bad entry arrives as a server carrying its ``error``: it alone is failed. Only server entries
        apply live; a changed ``router`` section is reported as needing a restart.
        """
        async with self._reload_lock:
            self.config_problem = None
            self._redactor.absorb(config.redactor)  # new secrets are masked before anything can log them
            new = {name: spec_of(name, entry) for name, entry in config.servers.items()}
            change = ConfigChange.between(self._specs, new)
            if config.settings != self._settings_seen:
                self._settings_seen = config.settings
                logger.warning(
                    "the router section of the config changed; restart `serve` to apply it "
                    "(server entries are applied live)"
                )
            if not change:
                return change
            stopping = [self.upstreams[n] for n in (*change.removed, *change.changed)]
            for name in (*change.removed, *change.changed):
                self._forget(name)
            fresh = (*change.added, *change.changed)
            upstreams: dict[str, Upstream] = {}
            for name, spec in new.items():
                if name in fresh:
                    self._adopt(name, spec)
                    upstreams[name] = self._new_upstream(name, spec)
                else:
                    upstreams[name] = self.upstreams[name]
            self.upstreams = upstreams  # file order; untouched upstreams are the very same objects
            self._load_cached_tools(fresh)
            if self.team is not None and self._started:
                await self._load_shared_tools()
            if self._started:
                for name in fresh:
                    self.upstreams[name].start()  # the replacement starts while the old process is stopped
            self.indexer.request_rebuild()
            self._components_changed(None)
            self._catalog_changed()
            logger.info(
                "config reloaded: %s",
                ", ".join(
                    f"{what} {', '.join(names)}"
                    for what, names in (
                        ("added", change.added),
                        ("removed", change.removed),
                        ("restarted", change.changed),
                    )
                    if names
                ),
            )
            await asyncio.gather(*(upstream.stop() for upstream in stopping))
            return change

    def reject_config(self, reason: str) -> None:
        """The config file no longer loads: say why (log and :meth:`status` callers) and keep the last good one."""
        reason = self.redact(reason)
        if reason != self.config_problem:
            logger.error("config not reloaded, still serving the last good one: %s", reason)
        self.config_problem = reason

    def _forget(self, name: str) -> None:
        """Drop a removed (or about to be replaced) server from every per-server table but ``upstreams``."""
        self._specs.pop(name, None)
        self._cache_keys.pop(name, None)
        self._saved_tools.pop(name, None)
        self._descriptions.pop(name, None)
        self.governance.policy.servers.pop(name, None)

    def _adopt(self, name: str, spec: UpstreamSpec) -> None:
        """Record a new server's spec, cache key, description and policy (its upstream is made by the caller)."""
        self._specs[name] = spec
        self._cache_keys[name] = spec.cache_key
        if spec.description:
            self._descriptions[name] = spec.description
        if spec.policy is not None:
            self.governance.policy.servers[name] = spec.policy

    async def wait_server(self, name: str, timeout: float) -> UpstreamStatus | None:
        """``name``'s status once its first connection attempt is done (or ``timeout`` passed); None if unknown."""
        upstream = self.upstreams.get(name)
        if upstream is None:
            return None
        await self._settled([upstream], timeout=timeout)
        return upstream.status

    async def call_own(
        self,
        tool: mcp_types.Tool,
        arguments: Mapping[str, Any],
        run: Callable[[], Awaitable[str]],
        *,
        check: Callable[[], None] | None = None,
        shown: Mapping[str, Any] | None = None,
        front: FrontContext = NOBODY,
    ) -> Result:
        """Run one of the router's own tools through governance, exactly like an upstream call.

        The policy decides from ``tool``'s annotations (a destructive one needs confirmation when
        ``confirm_destructive`` is on); the audit line names ``discovery-router/<tool>``. ``shown`` is what
        the user is asked about and the audit may record (secret values masked); ``check`` raises to refuse
        before anyone is asked (a RequestError or PolicyRefusedError: the audit line says which); ``run`` does
        the work.
        """

        async def prepare(call: ToolCall) -> None:
            call.entry = ToolEntry(ROUTER_SERVER, tool, policy=self.governance.decide(ROUTER_SERVER, tool))
            call.arguments = dict(shown if shown is not None else arguments)
            if check is not None:
                check()

        async def forward(_call: ToolCall, _leg: Leg) -> Result:
            text = await run()
            return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)])

        return await self.governance.on_call_tool(ToolCall(tool.name, dict(arguments), front, prepare), forward)

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
        return {
            name: self._descriptions.get(name) or upstream.self_description
            for name, upstream in self.upstreams.items()
            if self._descriptions.get(name) or upstream.self_description
        }

    def _entries(self) -> list[ToolEntry]:
        """Every tool the policy exposes: a denied tool is never indexed, shown or callable."""
        return [
            ToolEntry(
                name,
                tool,
                available=upstream.state is not UpstreamState.FAILED,
                policy=self.governance.decide(name, tool),
            )
            for name, upstream in self.upstreams.items()
            for tool in upstream.tools
            if self.governance.exposes(name, tool.name)
        ]

    def _tools_changed(self, upstream: Upstream) -> None:
        if self.upstreams.get(upstream.name) is not upstream:
            return  # a server a reload removed or replaced, saying its last words
        if self.cache is not None and upstream.state is UpstreamState.CONNECTED:
            cleaned = [clean_tool(t) for t in upstream.tools]
            try:
                if cleaned != self._saved_tools.get(upstream.name):
                    self.cache.save_tools(self._cache_keys[upstream.name], cleaned)
                    self._saved_tools[upstream.name] = cleaned
            except OSError as exc:
                logger.warning("cannot write the tool cache for %s: %s", upstream.name, exc)
        if self.team is not None and upstream.state is UpstreamState.CONNECTED:
            self.team.tools_listed(
                self._cache_keys[upstream.name],
                upstream.name,
                upstream.tools,
                self.server_descriptions().get(upstream.name, ""),
            )
        self.indexer.request_rebuild()
        self._catalog_changed()

    # -- the team database (discovery_router.team.replica.Replica) ---------

    async def _load_shared_tools(self) -> None:
        """Servers a reload added: searchable from the team's catalog while they connect."""
        assert self.team is not None
        try:
            await self.team.load_new_servers()
        except RouterError as exc:  # the database is down: the servers still connect
            logger.warning("%s", exc)

    def shared_sources(self) -> dict[str, str]:
        """Each enabled server's cache key, the name the team database knows it by, -> its name here."""
        return {
            self._cache_keys[name]: name
            for name, upstream in self.upstreams.items()
            if upstream.state is not UpstreamState.DISABLED and name in self._cache_keys
        }

    def adopt_shared_tools(self, server: str, tools: list[dict[str, Any]]) -> None:
        """Another replica listed ``server`` with ``tools``: our live connection re-lists (it is what our calls
        reach); until it is up, search serves the shared list."""
        upstream = self.upstreams.get(server)
        if upstream is None:
            return
        if upstream.state is UpstreamState.CONNECTED:
            upstream.request_refresh()
            return
        try:
            upstream.tools = [mcp_types.Tool.model_validate(tool) for tool in tools]
        except ValueError as exc:  # pydantic's ValidationError: a damaged row must not stop the change feed
            logger.warning("ignoring the team's tool list for %s: %s", server, exc)
            return
        self.indexer.request_rebuild()
        self._catalog_changed()

    def _catalog_changed(self) -> None:
        self._events.emit(CatalogChanged())

    def _components_changed(self, upstream: Upstream | None) -> None:
        self._events.emit(ComponentsChanged(upstream.name if upstream is not None else None))

    def _resource_updated(self, upstream: Upstream, uri: str) -> None:
        self._events.emit(ResourceUpdated(upstream.name, uri))

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear :mod:`discovery_router.events` as they happen (components changed, resources updated);
        returns the function that stops listening."""
        return self._events.listen(listener)

    def components(self) -> dict[str, Components]:
        """Every server's resources, resource templates and prompts as last listed (empty while down)."""
        return {name: upstream.components for name, upstream in self.upstreams.items()}

    def listed_tools(self, server: str) -> list[mcp_types.Tool]:
        """The tools ``server`` listed, as it listed them (policy not applied; cached ones while it is down)."""
        return list(self.upstreams[server].tools)

    async def subscribe(self, server: str, uri: str) -> None:
        """Ask ``server`` for updates of its resource ``uri`` (renewed after reconnects)."""
        await self.upstreams[server].subscribe(uri)

    async def unsubscribe(self, server: str, uri: str) -> None:
        await self.upstreams[server].unsubscribe(uri)

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
        database = self.database_search if len(index.docs) >= self.settings.database_search_from else None
        plan = [s.strip() for s in steps or () if s and s.strip()]
        if plan:
            per_step = self.settings.step_limit if limit is None else min(limit, self.settings.step_limit)
            groups = await database.search_steps(index, query, plan, max(1, per_step), server) if database else None
            if groups is None:
                groups = index.search_steps(query, plan, max(1, per_step), server)
            entries = [[catalog.resolve(h.doc.id) for h in group] for group in groups]
            flat = SearchIndex.merged(entries)
            weak = tuple(bool(group) and group[0].weak for group in groups)
            return Matches(
                flat, steps=tuple(plan), groups=tuple(entries), weak_steps=weak, weak=bool(weak) and all(weak)
            )
        limit = self.settings.search_limit if limit is None else limit
        limit = min(limit, self.settings.max_search_limit)
        hits = await database.search(index, query, limit, server) if database else None
        if hits is None:
            hits = index.search(query, limit, server)
        return Matches([catalog.resolve(hit.doc.id) for hit in hits], weak=bool(hits) and hits[0].weak)

    def failed_servers_named(self, query: str, server: str | None = None) -> list[tuple[str, str]]:
        """(name, reason) of failed servers the query names as a word, or the filter names: a search
        for "jira" should say Jira is configured but down, not just find nothing."""
        return [
            (name, upstream.error or upstream.state.value)
            for name, upstream in self.upstreams.items()
            if upstream.state is UpstreamState.FAILED and (name == server or _names(query, name))
        ]

    async def wait_hybrid(self, timeout: float = 60.0) -> bool:
        """Wait until search uses embeddings too (the MCP server never waits; the CLI does)."""
        await self._index_ready()
        return await self.indexer.wait_hybrid(timeout)

    async def describe(self, name: str) -> ToolEntry:
        """One tool by id (or unambiguous bare name)."""
        await self.ready_catalog(server_of(name))
        return self.resolve(name)

    def resolve(self, name: str) -> ToolEntry:
        """Catalog lookup that explains a miss caused by a server being down."""
        try:
            return self.catalog.resolve(name)
        except UnknownToolError as exc:
            server = server_of(name)
            upstream = self.upstreams.get(server) if server else None
            if upstream is not None and upstream.state is not UpstreamState.CONNECTED:
                raise upstream.unavailable_error() from None
            down = [n for n, u in self.upstreams.items() if u.state is UpstreamState.FAILED]
            if down:
                raise UnknownToolError(f"{exc} (unreachable now: {', '.join(down)})") from None
            raise

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        front: FrontContext = NOBODY,
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
        await self.ready_catalog(server_of(call.name))
        entry = call.entry = self.resolve(call.name)
        call.arguments = prepare_arguments(entry.id, call.raw_arguments, entry.tool.input_schema)

    async def _forward(self, call: ToolCall, leg: Leg) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        """Send this leg on the live connection of the tool's server; the answer comes back unchanged."""
        assert call.entry is not None and call.arguments is not None
        upstream = self.upstreams[call.entry.server]
        await self._settled([upstream])
        return await upstream.call(
            call.entry.name,
            call.arguments,
            progress_handler=call.front.progress,
            relay=call.front.relay,
            input_responses=leg.input_responses,
            request_state=leg.request_state,
        )
