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
from typing import Any, Protocol

import mcp_types
from mcp.shared.message import ServerMessageMetadata
from discovery_router._compat import connection_of
from discovery_router.eras import is_2026_era

current_relay: contextvars.ContextVar[FrontRelay | None] = contextvars.ContextVar("current_relay", default=None)
"""The relay of the call running in this task (set by :meth:`Router.call`)."""


class RelayUnavailableError(RuntimeError):
    """The upstream asked for something the calling client cannot be asked; the message says why."""


class FrontRelay(Protocol):
    """What an upstream can reach of the client while one of its requests runs."""

    session_key: object
    """Identifies the client connection, so asks are never relayed across clients."""

    @property
    def passes_input_requests(self) -> bool:
        """True when the client answers 2026-era ``InputRequiredResult``s itself (so they go to it unresolved)."""
        ...

    async def log(self, level: str, data: Any, logger_name: str | None) -> None: ...

    def refusal(self, method: str) -> str | None:
        """Why the client cannot be asked ``method`` (it did not declare the capability), or None."""
        ...

    async def ask(self, request: mcp_types.ServerRequest, result_type: type[Any]) -> Any:
        """Send one server-to-client request (sampling, elicitation, roots) and return the client's answer."""
        ...


_CAPABILITY_OF = {
    "sampling/createMessage": ("sampling", mcp_types.ClientCapabilities(sampling=mcp_types.SamplingCapability())),
    "elicitation/create": ("elicitation", mcp_types.ClientCapabilities(elicitation=mcp_types.ElicitationCapability())),
    "roots/list": ("roots", mcp_types.ClientCapabilities(roots=mcp_types.RootsCapability())),
}


class ContextRelay:
    """A :class:`FrontRelay` over the fastmcp ``Context`` of the client's request."""

    def __init__(self, ctx: Any, run_in_request: Any) -> None:
        """``run_in_request`` schedules a coroutine in the request's own contextvars context.

        Upstream asks arrive on the upstream client's reader task, whose
        context is not this request's; fastmcp's ``Context`` reads the request
        from contextvars, so its methods must run in a copy of ours.
        """
        self._ctx = ctx
        self._run = run_in_request
        request_context = ctx.request_context
        self._protocol = getattr(request_context, "protocol_version", None)
        self._request_id = getattr(request_context, "request_id", None)
        self._session = _session_of(ctx)  # read now: the ask arrives outside this request's context
        self.session_key = connection_of(self._session) or ctx

    @property
    def passes_input_requests(self) -> bool:
        return is_2026_era(self._protocol)

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        if isinstance(data, dict) and isinstance(data.get("msg"), str):
            message, extra = data["msg"], data.get("extra")
        else:
            message, extra = (data if isinstance(data, str) else _json(data)), None
        await self._run(self._ctx.log(message, level=level, logger_name=logger_name, extra=extra))

    def refusal(self, method: str) -> str | None:
        feature, capability = _CAPABILITY_OF[method]
        if self._session is None or not self._session.check_client_capability(capability):
            return f"the client did not declare the {feature} capability"
        return None

    async def ask(self, request: mcp_types.ServerRequest, result_type: type[Any]) -> Any:
        if self.passes_input_requests:
            raise RelayUnavailableError(
                "the client connected with the 2026-07-28 protocol, which cannot be sent requests in the "
                "middle of a call (the router bridges this for handshake-era servers)"
            )
        reason = self.refusal(request.method)
        if reason:
            raise RelayUnavailableError(reason)
        session = self._session
        metadata = ServerMessageMetadata(related_request_id=self._request_id)
        return await self._run(session.send_request(request=request, result_type=result_type, metadata=metadata))


def _session_of(ctx: Any) -> Any:
    try:
        return ctx.session
    except RuntimeError:
        return None


def _json(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, default=str)


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
        if not connection.check_capability(_CAPABILITY_OF["roots/list"][1]) or connection in self._connections:
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
