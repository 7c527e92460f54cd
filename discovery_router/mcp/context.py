"""The calling client as the MCP face sees it: one :class:`FrontContext` per ``call_tool`` request.

Everything request-specific is read here, once, from fastmcp's ``Context``:
the relay for upstream logs and asks, progress, the confirmer, and a 2026-era
client's retry fields. Upstream progress, logs and asks arrive on the upstream
client's reader task, whose contextvars are not this request's, so each is
run in a copy of the request's context.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import mcp_types
from mcp.shared.message import ServerMessageMetadata

from discovery_router._compat import connection_of
from discovery_router.eras import is_2026_era
from discovery_router.front import FrontContext
from discovery_router.mcp.confirmers import ElicitationConfirmer
from discovery_router.upstreams.relay import CAPABILITY_OF, RelayUnavailableError


STDIO_CLIENT = "stdio"
"""The session key of every request on a stdio front: one process, one client, whatever its era."""


def front_context(ctx: Any, params: mcp_types.CallToolRequestParams | None = None) -> FrontContext:
    """The front of one ``call_tool`` request (``ctx`` is its fastmcp ``Context``, None outside a request).

    ``params`` is the request's own ``tools/call`` params when the caller has them (the retry fields are
    then read from them, not parsed again from the raw request).
    """
    request_context = contextvars.copy_context()
    relaying: set[asyncio.Task[Any]] = set()

    async def in_request(work: Any) -> Any:
        task = asyncio.create_task(work, context=request_context)
        relaying.add(task)
        task.add_done_callback(relaying.discard)
        return await task

    async def delivered() -> None:
        while relaying:
            await asyncio.wait(list(relaying))

    async def forward_progress(progress: float, total: float | None, message: str | None) -> None:
        if ctx is not None:
            await in_request(ctx.report_progress(progress, total, message))

    relay = ContextRelay(ctx, in_request) if ctx is not None and ctx.request_context is not None else None
    return FrontContext(
        relay=relay,
        progress=forward_progress,
        confirmer=ElicitationConfirmer(ctx),  # governance asks the user before a destructive call
        input_responses=(ctx.input_responses if params is None else params.input_responses) if relay else None,
        request_state=(ctx.request_state if params is None else params.request_state) if relay else None,
        delivered=delivered,
    )


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
        # A stdio front has exactly one client; elsewhere the connection tells clients apart (a 2026-era
        # request stands alone, so each looks like a new client: ambiguous log lines then go nowhere).
        self.session_key = STDIO_CLIENT if ctx.transport == "stdio" else (connection_of(self._session) or ctx)

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
        feature, capability = CAPABILITY_OF[method]
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
