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
cannot reach the wrong client (see ``Upstream.relay_for_ask``).
"""

from __future__ import annotations

import contextvars
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
