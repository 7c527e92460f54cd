"""The client side of one forwarded request, as the upstream sees it.

While a call runs, an upstream may log, or ask the client something
(``sampling/createMessage``, ``elicitation/create``, ``roots/list``). A
:class:`FrontRelay` carries those to the client that made the call and brings
the answer back. The MCP server builds one per request from its fastmcp
``Context``; the CLI passes none, and upstream asks are then refused with a
reason.

Which call an upstream's ask belongs to is known directly when the upstream
speaks the 2026-07-28 protocol (the ask is driven inside the call's own task,
where :data:`current_relay` is set). A handshake-era upstream sends the ask on
its connection with nothing linking it to a request, so :class:`Upstream`
keeps the relays of its in-flight calls and picks one only when that choice
cannot reach the wrong client (:class:`CallRelays`).
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mcp_types
from discovery_router.front import FrontRelay

current_relay: contextvars.ContextVar[FrontRelay | None] = contextvars.ContextVar("current_relay", default=None)
"""The relay of the call running in this task (set by :meth:`Router.call`)."""


class RelayUnavailableError(RuntimeError):
    """The upstream asked for something the calling client cannot be asked; the message says why."""


CAPABILITY_OF = {
    "sampling/createMessage": ("sampling", mcp_types.ClientCapabilities(sampling=mcp_types.SamplingCapability())),
    "elicitation/create": ("elicitation", mcp_types.ClientCapabilities(elicitation=mcp_types.ElicitationCapability())),
    "roots/list": ("roots", mcp_types.ClientCapabilities(roots=mcp_types.RootsCapability())),
}


class LoneClient:
    """The one client of a stdio router, asked for its roots when an upstream asks outside any call.

    Servers such as ``@modelcontextprotocol/server-filesystem`` take their directories from
    the client's roots, and ask for them right after their handshake, when no call is in
    flight to say whose roots they want. A stdio router has exactly one client, so the answer
    is certain; over HTTP several clients may share one upstream, and none is picked
    (the config's per-server ``roots`` serve there). Only clients that declared the roots
    capability are kept.
    """

    def __init__(self) -> None:
        self._connections: list[Any] = []

    def connected(self, connection: Any) -> bool:
        """Keep ``connection`` (it finished its handshake) if it declared roots; True when kept."""
        if not connection.check_capability(CAPABILITY_OF["roots/list"][1]) or connection in self._connections:
            return False
        self._connections.append(connection)
        connection.exit_stack.callback(self._forget, connection)
        return True

    def _forget(self, connection: Any) -> None:
        if connection in self._connections:
            self._connections.remove(connection)

    def relay(self) -> FrontRelay | None:
        """A relay to the one client that declared roots, or None when there is not exactly one."""
        return _ConnectionRelay(self._connections[0]) if len(self._connections) == 1 else None


class _ConnectionRelay:
    """A :class:`FrontRelay` over a whole client connection (no request of its own): roots only."""

    passes_input_requests = False

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.session_key = connection

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        return None  # log lines outside a call go to the router's own log only

    def refusal(self, method: str) -> str | None:
        return None if method == "roots/list" else f"{method} is relayed only during a call"

    async def ask(self, request: mcp_types.ServerRequest, result_type: type[Any]) -> Any:
        reason = self.refusal(request.method)
        if reason:
            raise RelayUnavailableError(reason)
        return await self._connection.send_request(request, result_type=result_type)


LOG_TAIL = 5.0
"""Seconds after a call ends during which a log line its server sends may still be about it (see
:meth:`CallRelays.for_log`)."""


class CallRelays:
    """The clients of one upstream's calls: which one a log line or an ask from that server belongs to."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._running: list[FrontRelay] = []
        """Relays of the calls now running on the server, oldest first."""
        self._ended: deque[tuple[float, object]] = deque()
        """(when, client) of calls ended in the last :data:`LOG_TAIL` seconds."""

    @contextmanager
    def running(self, relay: FrontRelay | None) -> Iterator[None]:
        """While one call runs: its relay is the one asks and log lines from inside its task reach."""
        token = current_relay.set(relay)
        if relay is not None:
            self._running.append(relay)
        try:
            yield
        finally:
            current_relay.reset(token)
            if relay is not None:
                self._running.remove(relay)
                self._ended.append((time.monotonic(), relay.session_key))

    def for_log(self) -> FrontRelay | None:
        """The client a log line from the server belongs to, or None when that is not certain.

        Inside a call's task (2026-era servers, and HTTP responses streamed to the call) the line is
        that call's. A handshake-era server's line on its connection names no call, and servers log
        after answering too: it goes to a client only when that client's calls are the only ones the
        server is running and the only ones that ended in the last :data:`LOG_TAIL` seconds.
        """
        relay = current_relay.get()
        if relay is not None:
            return relay
        now = time.monotonic()
        while self._ended and now - self._ended[0][0] > LOG_TAIL:
            self._ended.popleft()
        if not self._running:
            return None
        client = self._running[-1].session_key
        others = [r for r in self._running if r.session_key is not client]
        if others or any(key is not client for _, key in self._ended):
            return None
        return self._running[-1]

    def for_ask(self) -> FrontRelay:
        """The client a server-to-client request made now belongs to.

        Known for certain inside a call's task (2026-era asks are driven there).
        Otherwise (a handshake-era server asking on its connection) it is the
        client of the calls in flight, but only when they all come from one
        client connection: guessing could show one user's data to another.
        """
        relay = current_relay.get()
        if relay is not None:
            return relay
        if not self._running:
            raise RelayUnavailableError(f"no call to {self._server!r} is in progress, so there is no client to ask")
        if len({id(r.session_key) for r in self._running}) > 1:
            raise RelayUnavailableError(
                f"calls from several clients are running on {self._server!r}; the router cannot tell which one asked"
            )
        return self._running[-1]
