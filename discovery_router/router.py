"""The router's Python API: the one place search, describe and call are implemented.

The MCP server (:mod:`discovery_router.server`), the CLI and the benchmarks
are all thin shells over :class:`Router`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import mcp_types
from fastmcp import Client
from fastmcp.client.progress import ProgressHandler

from discovery_router.arguments import prepare_arguments
from discovery_router.catalog import Catalog, ToolEntry
from discovery_router.config import RouterConfig, RouterSettings, ServerConfig
from discovery_router.errors import UnknownServerError, UnknownToolError
from discovery_router.redact import Redactor
from discovery_router.search import SearchIndex
from discovery_router.upstream import Upstream, UpstreamState, UpstreamStatus

logger = logging.getLogger("discovery_router")

ServerTarget = ServerConfig | Any
"""A config entry, or anything ``fastmcp.Client`` accepts (a FastMCP server, a transport, a URL)."""


def _client_factory(target: ServerTarget):
    def make(**kwargs: Any) -> Client[Any]:
        transport = target.to_transport() if isinstance(target, ServerConfig) else target
        return Client(transport, **kwargs)

    return make


class Router:
    """Connects to every upstream and serves search / describe / call over their tools."""

    def __init__(
        self,
        servers: Mapping[str, ServerTarget],
        settings: RouterSettings | None = None,
        *,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings or RouterSettings()
        self._redactor = redactor or Redactor()
        self._descriptions = {
            name: target.description or "" for name, target in servers.items() if isinstance(target, ServerConfig)
        }
        self.upstreams: dict[str, Upstream] = {
            name: Upstream(
                name,
                _client_factory(target),
                settings=self.settings,
                call_timeout=target.timeout if isinstance(target, ServerConfig) else None,
                redact=self._redactor,
                on_tools_changed=self._tools_changed,
                transport=target.transport if isinstance(target, ServerConfig) else "in-memory",
                enabled=target.enabled if isinstance(target, ServerConfig) else True,
            )
            for name, target in servers.items()
        }
        self.catalog = Catalog()
        self.index = SearchIndex([])
        self._started = False

    @classmethod
    def from_config(cls, config: RouterConfig) -> Router:
        return cls(config.servers, config.settings, redactor=config.redactor)

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting to every enabled upstream concurrently; returns at once."""
        if not self._started:
            self._started = True
            for upstream in self.upstreams.values():
                upstream.start()

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
        except asyncio.TimeoutError:
            return False

    async def _catalog_ready(self) -> None:
        """Searching needs every server's tool list, from a live connection or the cache."""
        await self._settled(u for u in self.upstreams.values() if not u.tools)

    async def stop(self) -> None:
        await asyncio.gather(*(u.stop() for u in self.upstreams.values()))
        self._started = False

    async def __aenter__(self) -> Router:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def status(self) -> list[UpstreamStatus]:
        return [u.status for u in self.upstreams.values()]

    def _tools_changed(self, _upstream: Upstream) -> None:
        entries = [
            ToolEntry(name, tool, available=upstream.state is not UpstreamState.FAILED)
            for name, upstream in self.upstreams.items()
            for tool in upstream.tools
        ]
        catalog = Catalog(entries)
        index = SearchIndex([e.to_doc(self._descriptions.get(e.server, "")) for e in entries])
        self.catalog, self.index = catalog, index

    # -- the three operations --------------------------------------------

    async def search(self, query: str, limit: int | None = None, server: str | None = None) -> list[ToolEntry]:
        """The best-matching tools for a plain-language query."""
        await self._catalog_ready()
        if server is not None and server not in self.upstreams:
            known = ", ".join(self.upstreams) or "none configured"
            raise UnknownServerError(f"Unknown server {server!r}. Servers: {known}.")
        limit = self.settings.search_limit if limit is None else limit
        limit = max(1, min(limit, self.settings.max_search_limit))
        catalog, index = self.catalog, self.index
        return [catalog.resolve(hit.doc.id) for hit in index.search(query, limit, server)]

    async def describe(self, name: str) -> ToolEntry:
        """One tool by id (or unambiguous bare name)."""
        await self._catalog_ready()
        return self.resolve(name)

    def resolve(self, name: str) -> ToolEntry:
        """Catalog lookup that explains a miss caused by a server being down."""
        try:
            return self.catalog.resolve(name)
        except UnknownToolError as exc:
            server = name.split("/", 1)[0] if "/" in name else None
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
        progress_handler: ProgressHandler | None = None,
    ) -> mcp_types.CallToolResult:
        """Validate and forward one call; the upstream's result comes back as it was."""
        await self._catalog_ready()
        entry = self.resolve(name)
        prepared = prepare_arguments(entry.id, arguments, entry.tool.input_schema)
        upstream = self.upstreams[entry.server]
        await self._settled([upstream])
        return await upstream.call(entry.name, prepared, progress_handler=progress_handler)
