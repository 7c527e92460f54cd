"""One backend MCP server: its connection, its tool list and its health.

Each :class:`Upstream` runs a supervisor task that connects, lists tools,
watches the connection (pings, lost-connection signals from failed calls,
``tools/list_changed``) and reconnects with exponential backoff. The protocol
work is fastmcp's :class:`~fastmcp.Client`; this module only decides when to
connect and what a failure means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import mcp_types
from fastmcp import Client
from fastmcp.client.logging import LogMessage
from fastmcp.client.messages import MessageHandler
from fastmcp.client.progress import ProgressHandler
from mcp import MCPError
from mcp.client.subscriptions import ResourceUpdated, listen
from pydantic import ValidationError

from discovery_router._compat import connection_ended
from discovery_router.upstreams.bridge import AskBridge
from discovery_router.config.model import RouterSettings
from discovery_router.errors import LoginRequiredError, UpstreamCallError, UpstreamUnavailableError
from discovery_router.governance.redact import Redactor
from discovery_router.front import FrontRelay
from discovery_router.upstreams.relay import CallRelays, LoneClient, RelayUnavailableError
from discovery_router.eras import is_2026_era
from discovery_router.ids import valid_tool_name
from discovery_router.upstreams.output import LogBudget, StderrTail
from discovery_router.upstreams.status import Components, UpstreamState, UpstreamStatus
from discovery_router.upstreams.tool_call import call_tool

logger = logging.getLogger(__name__)

ClientFactory = Callable[[], Client[Any]]


STABLE_AFTER = 5.0
"""A connection that lived this long before it was lost is reconnected at once; one that died sooner
waits out the growing backoff (a server that crashes right after starting is not restarted in a loop)."""


STDERR_TURNS = 10
"""At most this many turns of the event loop before a call, for a stdio child's unread stderr to be read (its
exit takes three: the poll, the pipe's callback, the reader task); a child that never stops writing gets no more."""


class _Lost(Exception):
    """Raised inside the supervisor when a live connection ended (its process exited, a call saw it close)."""


class _Restart(Exception):
    """Raised inside the supervisor to reconnect without counting a failure."""


class _Notifications(MessageHandler):
    """Routes an upstream's notifications back to its :class:`Upstream`."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def on_tool_list_changed(self, message: mcp_types.ToolListChangedNotification) -> None:
        self._upstream.request_refresh()

    async def on_resource_list_changed(self, message: mcp_types.ResourceListChangedNotification) -> None:
        self._upstream.request_refresh()

    async def on_prompt_list_changed(self, message: mcp_types.PromptListChangedNotification) -> None:
        self._upstream.request_refresh()

    async def on_resource_updated(self, message: mcp_types.ResourceUpdatedNotification) -> None:
        self._upstream.on_resource_updated(self._upstream, str(message.params.uri))


class Upstream:
    """A supervised connection to one backend server."""

    def __init__(
        self,
        name: str,
        make_client: Callable[..., Client[Any]],
        *,
        settings: RouterSettings,
        call_timeout: float | None = None,
        redact: Redactor | None = None,
        on_tools_changed: Callable[[Upstream], None] = lambda _u: None,
        on_components_changed: Callable[[Upstream], None] = lambda _u: None,
        on_resource_updated: Callable[[Upstream, str], None] = lambda _u, _uri: None,
        transport: str = "",
        enabled: bool = True,
        config_error: str | None = None,
        roots: Sequence[str] | None = None,
        lone_client: LoneClient | None = None,
        login_stamp: Callable[[], object] | None = None,
    ) -> None:
        """``config_error``: the entry could not be used; the upstream stays failed with that reason, never started.

        ``roots``: the config's roots for this server (URIs), its answer to ``roots/list`` whoever is
        connected; without them the calling client is asked, or outside a call ``lone_client``.

        ``login_stamp``: an OAuth server's login marker; while it needs a login the upstream waits for
        the marker to change (``discovery-router login``) instead of retrying on a timer.
        """
        self.name = name
        self._roots = None if roots is None else [mcp_types.Root(uri=uri) for uri in roots]  # type: ignore[arg-type]
        self._lone_client = lone_client
        self._config_error = config_error
        self._login_stamp = login_stamp
        self._auth_refused = False
        """This connection's OAuth provider gave up: only a login can help. Set from inside the auth flow
        (``RouterOAuth``), because the HTTP transport turns the flow's exception into "connection closed"."""
        self.login_required = False
        """The server needs ``discovery-router login NAME``: its calls say so, and it waits for a login."""
        self.transport = transport
        self._make_client = make_client
        self._settings = settings
        self.call_timeout = call_timeout or settings.call_timeout
        self._redact = redact or Redactor()
        self._on_tools_changed = on_tools_changed
        self._on_components_changed = on_components_changed
        self.on_resource_updated = on_resource_updated
        self.components = Components()
        self.subscriptions: set[str] = set()
        """Resource URIs (this server's own) some client subscribed to; renewed on every reconnect."""
        self._bridge = AskBridge()
        self._relays = CallRelays(name)
        """The clients of the calls running here: whom a log line or an ask belongs to."""
        self._tail: StderrTail | None = None
        self._stderr_closed_alive = False
        """This connection's child closed its stderr but answered a ping: not a sign of exit."""
        self._log_budget = LogBudget(name, note="; those about a call still reached its client")
        self._connected_at = 0.0
        self.duplicate_tools: tuple[str, ...] = ()
        self.refused_tools: tuple[str, ...] = ()
        self._new_events()
        self.state = UpstreamState.CONNECTING if enabled else UpstreamState.DISABLED
        self.error: str | None = None
        if config_error is not None and enabled:
            self.state, self.error = UpstreamState.FAILED, config_error
        self.tools: list[mcp_types.Tool] = []
        self.self_description = ""
        """What the server said about itself at the handshake (title, description, instructions): see
        :func:`self_description`; search uses it when the config gives no ``description``."""
        if not enabled or config_error is not None:
            self.first_attempt_done.set()
        self._client: Client[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._listed_at = 0.0
        self._stopping = False

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        if self.state is not UpstreamState.DISABLED and self._config_error is None and self._task is None:
            self._stopping = False
            self._new_events()  # a router may be started again in another event loop
            self._task = asyncio.create_task(self._supervise(), name=f"upstream:{self.name}")

    async def stop(self) -> None:
        """Disconnect and forget the connection state, so a later :meth:`start` connects afresh."""
        self._stopping = True
        if self._task is not None:
            # A cancel can land inside fastmcp's connect and come back as an
            # ordinary error; the flag (and waking the backoff) ends the loop anyway.
            self._task.cancel()
            self._retry_now.set()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                await asyncio.wait_for(self._task, timeout=10)
            self._task = None
        await self._disconnect()
        self._log_budget.flush()
        self._listed_at = 0.0
        if self.state is not UpstreamState.DISABLED:
            self.state = UpstreamState.CONNECTING
            self.first_attempt_done.clear()

    @property
    def state(self) -> UpstreamState:
        return self._state

    @state.setter
    def state(self, state: UpstreamState) -> None:
        """Calls waiting for a (re)connection wake when the state leaves ``connecting``."""
        self._state = state
        if state is UpstreamState.CONNECTING:
            self._decided.clear()
        else:
            self._decided.set()

    def _new_events(self) -> None:
        self._decided = asyncio.Event()
        if getattr(self, "_state", UpstreamState.CONNECTING) is not UpstreamState.CONNECTING:
            self._decided.set()
        self._exited = asyncio.Event()
        self.first_attempt_done = asyncio.Event()
        self._lost = asyncio.Event()
        self._refresh = asyncio.Event()
        self._restart = asyncio.Event()
        self._retry_now = asyncio.Event()

    def request_refresh(self) -> None:
        """Re-list tools soon (the upstream said its list changed, or reindex asked)."""
        self._refresh.set()

    def restart(self) -> None:
        """Reconnect (a new process for stdio servers): its tool list on disk changed under us."""
        self._restart.set()

    def retry_now(self) -> None:
        """Skip the rest of the backoff wait (used by reindex and by calls to a failed server)."""
        self._retry_now.set()

    @property
    def status(self) -> UpstreamStatus:
        return UpstreamStatus(
            self.name, self.state, len(self.tools), self.error, self.transport, self.duplicate_tools, self.refused_tools
        )

    async def _supervise(self) -> None:
        delay = self._settings.retry_initial
        while not self._stopping:
            try:
                await self._connect()
                self.first_attempt_done.set()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except _Restart:
                logger.info("restarting %s to pick up its new tool list", self.name)
                await self._disconnect()
            except _Lost as lost:
                # Reconnect, keeping the tools searchable: calls wait for the new connection meanwhile.
                stable = time.monotonic() - self._connected_at >= STABLE_AFTER
                await self._disconnect()
                self.error = self._redact(self._explain(str(lost)))
                self.state = UpstreamState.CONNECTING
                logger.warning(
                    "server %s: %s; %s",
                    self.name,
                    self.error,
                    "reconnecting" if stable else f"reconnecting in {delay:g} s",
                )
                if stable:
                    delay = self._settings.retry_initial
                else:
                    await self._backoff(delay)
                    delay = min(delay * 2, self._settings.retry_max)
            except BaseException as exc:  # noqa: BLE001 - any failure is reported, then retried
                if self._stopping:
                    return
                await self._mark_failed(exc)
                self.first_attempt_done.set()
                await self._backoff(delay)
                delay = min(delay * 2, self._settings.retry_max)
            else:
                continue
            if self._stopping:
                return

    async def _backoff(self, delay: float) -> None:
        self._retry_now.clear()
        if self.login_required and self._login_stamp is not None:
            await self._wait_for_login(self._login_stamp)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._retry_now.wait(), timeout=delay)

    async def _wait_for_login(self, stamp: Callable[[], object]) -> None:
        """Retrying cannot help until someone logs in: wait for the login marker to change (or a call)."""
        seen = stamp()
        while not self._retry_now.is_set() and stamp() == seen:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._retry_now.wait(), timeout=LOGIN_POLL)

    async def _connect(self) -> None:
        was = self.state
        if self.state is not UpstreamState.FAILED:  # a failed server stays "failed" while it is retried
            self.state = UpstreamState.CONNECTING
        self._lost.clear()
        self._exited.clear()
        self._stderr_closed_alive = False
        self._auth_refused = False
        extra: dict[str, Any] = {}
        if self._login_stamp is not None:
            extra["on_login_required"] = self._note_auth_refused
        if self.transport == "stdio":
            self._tail = StderrTail(self.name, self._redact, self._exited.set)
            extra["errlog"] = self._tail.writer
        client = self._make_client(
            message_handler=_Notifications(self),
            log_handler=self._log_upstream,
            sampling_handler=self._relay_sampling,
            elicitation_handler=self._relay_elicitation,
            roots=self._relay_roots,
            init_timeout=self._settings.connect_timeout,
            **extra,
        )
        self._client = client
        await asyncio.wait_for(client.__aenter__(), timeout=self._settings.connect_timeout)
        if self._tail is not None:
            self._tail.spawned()
        tools = self._usable(await asyncio.wait_for(client.list_tools(), timeout=self._settings.connect_timeout))
        components = await asyncio.wait_for(self._list_components(client), timeout=self._settings.connect_timeout)
        described = self_description(client)
        changed = (
            tools != self.tools
            or was is not UpstreamState.CONNECTING
            or not self._listed_at
            or described != self.self_description
        )
        self.tools, self.state, self.error = tools, UpstreamState.CONNECTED, None
        self.login_required = False
        self.self_description = described
        self._listed_at = self._connected_at = time.monotonic()
        logger.info("connected to %s: %d tools", self.name, len(tools))
        if changed:  # a reconnect with the same tools leaves the index (and other servers) alone
            self._on_tools_changed(self)
        self._set_components(components)
        for uri in sorted(self.subscriptions):
            await self._send_subscription(client, uri, subscribe=True)
        self._start_listening(client)

    def _start_listening(self, client: Client[Any]) -> None:
        """2026-era servers announce changes only on a ``subscriptions/listen`` stream: keep one open."""
        if self._listen_task is not None:
            self._listen_task.cancel()
            self._listen_task = None
        capabilities = client.server_capabilities
        if not is_2026_era(client.protocol_version) or capabilities is None:
            return
        announces = [
            capabilities.tools and capabilities.tools.list_changed,
            capabilities.prompts and capabilities.prompts.list_changed,
            capabilities.resources and (capabilities.resources.list_changed or capabilities.resources.subscribe),
        ]
        if any(announces):
            self._listen_task = asyncio.create_task(self._listen(client), name=f"listen:{self.name}")

    async def _listen(self, client: Client[Any]) -> None:
        try:
            async with listen(
                client.session,
                tools_list_changed=True,
                prompts_list_changed=True,
                resources_list_changed=True,
                resource_subscriptions=sorted(self.subscriptions),
            ) as events:
                async for event in events:
                    if isinstance(event, ResourceUpdated):
                        self.on_resource_updated(self, event.uri)
                    else:
                        self.request_refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the periodic re-list still catches changes
            logger.info("%s ended its change stream: %s", self.name, describe_exception(exc))

    async def subscribe(self, uri: str) -> None:
        """Ask for ``notifications/resources/updated`` about ``uri``, if the server offers subscriptions."""
        if uri not in self.subscriptions:
            self.subscriptions.add(uri)
            if self.state is UpstreamState.CONNECTED and self._client is not None:
                await self._send_subscription(self._client, uri, subscribe=True)

    async def unsubscribe(self, uri: str) -> None:
        if uri in self.subscriptions:
            self.subscriptions.discard(uri)
            if self.state is UpstreamState.CONNECTED and self._client is not None:
                await self._send_subscription(self._client, uri, subscribe=False)

    async def _send_subscription(self, client: Client[Any], uri: str, *, subscribe: bool) -> None:
        if is_2026_era(client.protocol_version):
            self._start_listening(client)  # 2026-era: the listen stream carries the subscriptions
            return
        if not self.components.subscribe:
            return
        send = client.session.subscribe_resource if subscribe else client.session.unsubscribe_resource
        try:
            await asyncio.wait_for(send(uri), timeout=self._settings.connect_timeout)
        except Exception as exc:  # noqa: BLE001 - a refused subscription must not break the connection
            logger.warning("%s refused a subscription change for a resource: %s", self.name, describe_exception(exc))

    async def _list_components(self, client: Client[Any]) -> Components:
        """Resources, templates and prompts, for the capabilities the server declared."""
        capabilities = client.server_capabilities or mcp_types.ServerCapabilities()
        resources: list[mcp_types.Resource] = []
        templates: list[mcp_types.ResourceTemplate] = []
        prompts: list[mcp_types.Prompt] = []
        if capabilities.resources is not None:
            resources = await client.list_resources()
            templates = await client.list_resource_templates()
        if capabilities.prompts is not None:
            prompts = await client.list_prompts()
        subscribe = bool(capabilities.resources and capabilities.resources.subscribe)
        return Components(tuple(resources), tuple(templates), tuple(prompts), subscribe)

    def _set_components(self, components: Components) -> None:
        if components != self.components:
            self.components = components
            self._on_components_changed(self)

    @property
    def client(self) -> Client[Any]:
        """The live connection, for passthrough requests; raises when the server is down."""
        if self.state is not UpstreamState.CONNECTED or self._client is None:
            self.retry_now()
            raise self.unavailable_error()
        return self._client

    async def live_client(self) -> Client[Any]:
        """The connection to send on, waiting while the server is (re)connecting, at most ``connect_timeout``.

        A connection found already closed (its process exited a moment ago) is handed to the supervisor
        and waited for the same way: nothing was sent on it, so nothing is lost.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.connect_timeout
        for _ in range(STDERR_TURNS):
            # A child that just died has left EOF on its stderr pipe: let the reader take what is there (a few
            # turns of the loop) before anything is sent. Nothing unread, nothing to wait for.
            if self._tail is None or not self._tail.unread():
                break
            await asyncio.sleep(0)
        while True:
            client = self._client
            if self.state is UpstreamState.CONNECTED and client is not None:
                if await self._stderr_ended_and_dead(client):
                    self._note_lost("the server process exited")
                elif not connection_ended(client):
                    return client
                else:
                    self._note_lost("Connection closed")
            elif self.state is not UpstreamState.CONNECTING:
                self.retry_now()
                raise self.unavailable_error()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self.unavailable_error()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._decided.wait(), timeout=remaining)

    async def _stderr_ended_and_dead(self, client: Client[Any]) -> bool:
        """The child's stderr ended and it does not answer a ping: it exited (a call would go nowhere).

        A ping is safe to send into a dead pipe, a call is not. A child that closed stderr but answers
        is remembered as alive for this connection, so its calls are not pinged first again.
        """
        if self._tail is None or not self._tail.ended.is_set() or self._stderr_closed_alive:
            return False
        try:
            await asyncio.wait_for(self._check_alive(client), timeout=min(self._settings.connect_timeout, 5.0))
        except (TimeoutError, _Lost, MCPError):
            return True
        self._stderr_closed_alive = True
        return False

    def _note_auth_refused(self) -> None:
        self._auth_refused = True

    def _note_lost(self, reason: str) -> None:
        """Hand a lost connection to the supervisor (which reconnects); calls wait for the new one."""
        if self.state is UpstreamState.CONNECTED:
            self.error = self._redact(self._explain(reason))
            self.state = UpstreamState.CONNECTING
        self._lost.set()

    async def _watch(self) -> None:
        """Return (by raising) when the connection is lost; refresh tools on request."""
        ticks = [t for t in (self._settings.health_interval, self._settings.refresh_interval) if t]
        interval = min(ticks) if ticks else None
        while True:
            events = (self._lost, self._refresh, self._restart, self._exited)
            waiters = [asyncio.ensure_future(e.wait()) for e in events]
            try:
                done, _ = await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the supervisor is cancelled: no waiter outlives this loop
                for waiter in waiters:
                    waiter.cancel()
            if self._lost.is_set():
                raise _Lost(self.error or "connection lost")
            if self._restart.is_set():
                self._restart.clear()
                raise _Restart
            assert self._client is not None
            if self._exited.is_set():
                # The child's stderr ended: it exited (or closed stderr, and then it answers this ping).
                self._exited.clear()
                await self._check_alive(self._client)
                continue
            stale = time.monotonic() - self._listed_at > (self._settings.refresh_interval or float("inf"))
            if self._refresh.is_set() or stale:
                self._refresh.clear()
                await self._relist(self._client)
            elif not done:
                await self._check_alive(self._client)

    async def _check_alive(self, client: Client[Any]) -> None:
        """Ping; any JSON-RPC answer, even an error (the 2026 protocol has no ``ping``), proves it is alive."""
        if connection_ended(client):
            raise _Lost("Connection closed")
        try:
            await asyncio.wait_for(client.ping(), timeout=self._settings.connect_timeout)
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                raise _Lost(exc.message) from None
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise

    async def _relist(self, client: Client[Any]) -> None:
        """Fetch the tool list again; rebuild the index only if it really changed."""
        tools = self._usable(await asyncio.wait_for(client.list_tools(), timeout=self._settings.connect_timeout))
        self._listed_at = time.monotonic()
        if tools != self.tools:
            self.tools = tools
            logger.info("%s changed its tools: now %d", self.name, len(tools))
            self._on_tools_changed(self)
        self._set_components(await asyncio.wait_for(self._list_components(client), self._settings.connect_timeout))

    def _usable(self, tools: list[mcp_types.Tool]) -> list[mcp_types.Tool]:
        """The tools whose names are valid MCP tool names, first of each name only.

        A hostile server's name with a newline would inject lines into search results, and an
        empty or ``../..`` name makes an id that means something else; both are refused, logged,
        and kept in :attr:`refused_tools` / :attr:`duplicate_tools` for ``status``.
        """
        usable: list[mcp_types.Tool] = []
        seen: set[str] = set()
        refused: list[str] = []
        duplicates: list[str] = []
        for tool in tools:
            if not valid_tool_name(tool.name):
                refused.append(ascii(tool.name[:80]))
                logger.warning(
                    "%s: refusing tool with an invalid name %s (MCP tool names are 1-128 of "
                    "printable, no ./.. segments)",
                    self.name,
                    refused[-1],
                )
            elif tool.name in seen:
                if tool.name not in duplicates:
                    duplicates.append(tool.name)
                logger.warning("%s: tool %r listed twice; keeping the first", self.name, tool.name)
            else:
                seen.add(tool.name)
                usable.append(tool)
        self.refused_tools, self.duplicate_tools = tuple(refused), tuple(duplicates)
        return usable

    def _explain(self, reason: str) -> str:
        """A stdio child's failure said in its terms: a closed connection means the process ended,
        and its last stderr line usually says why (``AttributeError: ...``)."""
        if self.transport != "stdio" or "; last stderr line: " in reason:  # not stdio, or explained already
            return reason
        if "Connection closed" in reason:
            reason = "the server process exited"
        last = self._tail.last_line if self._tail is not None else None
        return f"{reason}; last stderr line: {last}" if last else reason

    async def _mark_failed(self, exc: BaseException) -> None:
        reason = describe_exception(exc)
        await self._disconnect()  # first: it collects the child's last stderr lines
        self.login_required = self._auth_refused
        if self.login_required:
            reason = str(LoginRequiredError(self.name))
        self.error = self._redact(self._explain(reason))
        self.state = UpstreamState.FAILED
        logger.warning("server %s is unreachable: %s (retrying)", self.name, self.error)
        self._on_tools_changed(self)
        self._set_components(Components())

    async def _disconnect(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            self._listen_task = None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(client.close(), timeout=5)
        if self._tail is not None:
            await self._tail.close()  # keeps last_line for the failure reason

    async def _log_upstream(self, message: LogMessage) -> None:
        """Pass the message on to the client whose call it belongs to, if that is certain; else log it
        here only, masked, at debug (it may be about another client's call)."""
        relay = self._relays.for_log()
        if relay is None:
            if logger.isEnabledFor(logging.DEBUG) and self._log_budget.admit():
                logger.debug("[%s] log line for no certain client: %s", self.name, self._redact(str(message.data)))
            return
        level = logging.getLevelNamesMapping().get(str(message.level).upper(), logging.INFO)
        if logger.isEnabledFor(level) and self._log_budget.admit():
            logger.log(level, "[%s] %s", self.name, self._redact(str(message.data)))
        with contextlib.suppress(Exception):
            await relay.log(str(message.level), message.data, message.logger)

    # -- requests from the upstream to the client --------------------------

    async def _relay_sampling(
        self, messages: Any, params: mcp_types.CreateMessageRequestParams, context: Any
    ) -> mcp_types.CreateMessageResult | mcp_types.CreateMessageResultWithTools:
        result_type = mcp_types.CreateMessageResultWithTools if params.tools else mcp_types.CreateMessageResult
        return await self._ask(mcp_types.CreateMessageRequest(params=params), result_type)

    async def _relay_elicitation(
        self, message: str, response_type: Any, params: mcp_types.ElicitRequestParams, context: Any
    ) -> mcp_types.ElicitResult:
        return await self._ask(mcp_types.ElicitRequest(params=params), mcp_types.ElicitResult)

    async def _relay_roots(self, context: Any) -> list[mcp_types.Root]:
        if self._roots is not None:  # the config's roots win
            return list(self._roots)
        result = await self._ask(mcp_types.ListRootsRequest(), mcp_types.ListRootsResult, lone_client=True)
        return list(result.roots)

    async def roots_changed(self) -> None:
        """Tell the server the roots it would get changed (the lone client arrived or changed them)."""
        client = self._client
        if self._roots is None and client is not None and self.state is UpstreamState.CONNECTED:
            with contextlib.suppress(Exception):
                await client.send_roots_list_changed()

    async def _ask(self, request: Any, result_type: type[Any], *, lone_client: bool = False) -> Any:
        """``lone_client``: outside a call, ask the stdio router's one client (roots only, see LoneClient)."""
        try:
            try:
                relay = self._relays.for_ask()
            except RelayUnavailableError as exc:
                lone = self._lone_client.relay() if lone_client and self._lone_client is not None else None
                if lone is None:
                    hint = "; give the server `roots` in its config entry" if lone_client else ""
                    raise RelayUnavailableError(f"{exc}{hint}") from None
                relay = lone
            return await relay.ask(request, result_type)
        except RelayUnavailableError as exc:
            logger.info("refused %s from %s: %s", request.method, self.name, exc)
            raise RelayUnavailableError(f"{request.method} cannot be relayed by discovery-router: {exc}") from None

    # -- calls -----------------------------------------------------------

    def unavailable_error(self) -> UpstreamUnavailableError | LoginRequiredError:
        if self.login_required:
            return LoginRequiredError(self.name)
        reason = self.error or self.state.value
        return UpstreamUnavailableError(f"Server {self.name!r} is unreachable: {reason}")

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        progress_handler: ProgressHandler | None = None,
        relay: FrontRelay | None = None,
        input_responses: mcp_types.InputResponses | None = None,
        request_state: str | None = None,
    ) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        """Forward one call; protocol errors and lost connections become router errors.

        When the client answers asks itself (``relay.passes_input_requests``, a
        2026-era client): a 2026-era upstream's ``InputRequiredResult`` goes
        back unresolved, and a handshake-era upstream's mid-call asks are turned
        into ``InputRequiredResult``s by the :class:`AskBridge`; either way the
        client's retry brings ``input_responses`` and ``request_state`` down
        again. Otherwise asks are put to the client through the relay.
        """
        client = await self.live_client()
        if relay is not None and relay.passes_input_requests and not is_2026_era(client.protocol_version):
            return await self._bridge.run(
                relay,
                lambda bridged: self._forward(client, tool, arguments, bridged.progress, bridged, None, None),
                input_responses,
                request_state,
                progress_handler,
            )
        return await self._forward(client, tool, arguments, progress_handler, relay, input_responses, request_state)

    async def _forward(
        self,
        client: Client[Any],
        tool: str,
        arguments: dict[str, Any],
        progress_handler: ProgressHandler | None,
        relay: FrontRelay | None,
        input_responses: mcp_types.InputResponses | None,
        request_state: str | None,
    ) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        try:
            with self._relays.running(relay):
                result = await call_tool(
                    client,
                    tool,
                    arguments,
                    timeout=self.call_timeout,
                    progress=progress_handler,
                    input_responses=input_responses,
                    request_state=request_state,
                    pass_input_requests=relay is not None and relay.passes_input_requests,
                )
                if not isinstance(result, (mcp_types.CallToolResult, mcp_types.InputRequiredResult)):
                    raise UpstreamCallError(
                        f"{self.name}/{tool} answered with an extension result ({type(result).__name__}) "
                        "the router cannot forward"
                    )
                return result
        except ValidationError as exc:
            raise UpstreamCallError(f"{self.name}/{tool} answered with {malformed_result(exc)}") from None
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise UpstreamCallError(f"{self.name}/{tool} did not answer within {self.call_timeout:g} s") from None
            if exc.code != mcp_types.CONNECTION_CLOSED:
                raise UpstreamCallError(f"{self.name}/{tool} failed upstream: {self._redact(exc.message)}") from None
            raise self._connection_lost(exc) from None
        except (asyncio.CancelledError, KeyboardInterrupt, UpstreamCallError):
            raise
        except BaseException as exc:  # noqa: BLE001 - transport failure: mark lost and reconnect
            raise self._connection_lost(exc) from None

    def _connection_lost(self, exc: BaseException) -> UpstreamUnavailableError | LoginRequiredError:
        """The connection closed under a call that may have reached the server: never replayed, the
        caller gets the error; the supervisor reconnects for the next call."""
        reason = describe_exception(exc)
        if self._auth_refused:  # its tokens were refused and could not be refreshed
            self._note_lost(str(LoginRequiredError(self.name)))
            return LoginRequiredError(self.name)
        self._note_lost(reason)
        return UpstreamUnavailableError(
            f"Server {self.name!r} is unreachable: {self._redact(self._explain(reason))} (the call was not "
            "repeated: it may have reached the server)"
        )


LOGIN_POLL = 1.0
"""Seconds between looks at an OAuth server's login marker while it waits for ``login``."""


SELF_DESCRIPTION_CHARS = 600
"""At most this much of a server's self-description goes into its search documents (instructions can run
to pages of usage rules; the opening says what the server is for)."""


def self_description(client: Client[Any]) -> str:
    """The server's own account of itself from the handshake: serverInfo title and description, then its
    ``instructions`` (either era), cut at a sentence end near :data:`SELF_DESCRIPTION_CHARS`."""
    try:
        info, instructions = client.server_info, client.instructions
    except Exception:  # noqa: BLE001 - a client without a session: nothing said
        return ""
    parts: list[str] = []
    for text in (getattr(info, "title", None), getattr(info, "description", None), instructions):
        text = " ".join(text.split()) if isinstance(text, str) else ""
        if text and text not in parts:
            parts.append(text)
    described = " ".join(parts)
    if len(described) > SELF_DESCRIPTION_CHARS:
        cut = described[:SELF_DESCRIPTION_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        described = cut[: end + 1] if end > SELF_DESCRIPTION_CHARS // 3 else cut.rsplit(" ", 1)[0]
    return described


def malformed_result(exc: ValidationError) -> str:
    """What was wrong with a result that is not a tool result, without the values (they may be anything)."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the result"
    return f"a malformed result ({exc.error_count()} problem(s); {where}: {first['msg']})"


def describe_exception(exc: BaseException) -> str:
    """A one-line reason, looking through exception groups and empty messages."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
