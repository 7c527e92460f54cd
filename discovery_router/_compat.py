"""Every private fastmcp / MCP SDK attribute the router relies on, in one place.

Each helper names what it reaches into and why no public API serves; a test
(``tests/test_compat.py``) drives each against the installed releases, so an
upgrade that renames one fails there, loudly, instead of deep inside a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, TypeVar

from mcp.client.session import _later_revision_fields

T = TypeVar("T")

TOOLS_CALL = "tools/call"


def session_task(client: Any) -> asyncio.Task[Any] | None:
    """The task that holds a fastmcp client's connection open (``Client._session_state.session_task``).

    fastmcp watches it in ``_await_with_session_monitoring`` with a task and ``asyncio.wait`` per request
    (about 40 µs); the router watches it with a done-callback instead (``tool_call.watch_session``).
    """
    return client._session_state.session_task  # type: ignore[no-any-return]


async def send_tool_call(
    session: Any, params: dict[str, Any], *, timeout: float, progress: Callable[..., Awaitable[None]] | None
) -> dict[str, Any]:
    """Send ``tools/call`` with ready wire ``params`` on the session's dispatcher; the raw result dict.

    ``ClientSession.call_tool`` builds a request model only to dump it again, and re-validates
    structured content (re-listing tools when it has not seen one): a router forwards the result
    unchanged, so it sends what ``send_request`` would send (``ClientSession._stamp``: the era's
    ``_meta`` and headers) straight on ``ClientSession._dispatcher``.
    """
    data = {"method": TOOLS_CALL, "params": params}
    opts: dict[str, Any] = {"timeout": timeout}
    if progress is not None:
        opts["on_progress"] = progress
    session._stamp(data, opts)
    return await session._dispatcher.send_raw_request(TOOLS_CALL, data["params"], opts)  # type: ignore[no-any-return]


def parse_tool_call_result(session: Any, raw: dict[str, Any]) -> Any:
    """Validate a raw ``tools/call`` result once, by the session's own rules for its protocol version.

    As ``ClientSession.send_request`` does: a later revision's fields are dropped (a handshake-era
    server's ``resultType``/``inputRequests`` mean nothing in its era; ``_later_revision_fields``),
    then the session's ``_call_tool_adapter`` (``CallToolResult | InputRequiredResult``, plus any
    extension claims) parses it. Skipped: the SDK's second, per-era surface validation and dump
    (``validate_server_result``): the client validates what the router forwards.
    """
    version = session.protocol_version or "2025-11-25"  # send_request's fallback before a handshake
    foreign = _later_revision_fields(TOOLS_CALL, version)
    if not foreign.isdisjoint(raw):
        raw = {key: value for key, value in raw.items() if key not in foreign}
    return session._call_tool_adapter.validate_python(raw, by_name=False)


async def drive_input_required(client: Any, first: Any, retry: Callable[[Any, str | None], Awaitable[Any]]) -> Any:
    """Resolve a 2026-era ``InputRequiredResult`` through the client's own ask handlers, as fastmcp does.

    fastmcp's ``Client._drive_input_required`` (used by its ``call_tool_mcp``) runs each embedded ask
    through the session's sampling / elicitation / roots callbacks and retries with the answers, up to
    the client's ``input_required_max_rounds``; no public API drives a call the router sends itself.
    """
    return await client._drive_input_required(first, retry)


def connection_ended(client: Any) -> bool:
    """The client's connection has seen its end: a request sent on it now would never be written.

    The SDK has no public flag for this; fastmcp's ``StdioTransport._is_session_dead`` reads the same
    one (``session._dispatcher._closed``).
    """
    if not client.is_connected():
        return True
    return bool(getattr(getattr(client.session, "_dispatcher", None), "_closed", False))


def low_level_server(mcp: Any) -> Any:
    """The MCP SDK server under a FastMCP server (``FastMCP._mcp_server``).

    fastmcp serves neither ``completion/complete`` for proxied prompts nor
    ``resources/subscribe`` and ``subscriptions/listen``; the router registers those handlers there.
    """
    return mcp._mcp_server


async def run_tool_call_middleware(mcp: Any, context: Any, call_next: Any) -> Any:
    """Run a ``tools/call`` through a FastMCP server's middleware chain (``FastMCP._dispatch_component_middleware``).

    The router answers ``call_tool`` at the low-level server (:mod:`discovery_router.mcp.calls`), past
    fastmcp's tool machinery; its middleware (the stop drain, the client notifier) must still see the call,
    exactly as fastmcp runs it for a tool: once, marked as dispatched, with every hook.
    """
    return await mcp._dispatch_component_middleware(context=context, call_next=call_next)


def lifespan_of(app: Any) -> AbstractAsyncContextManager[Any]:
    """A FastMCP server's lifespan (``FastMCP._lifespan_manager``), entered by the router's own stdio runner.

    The router runs stdio itself (to answer requests the SDK cannot parse), so it
    must enter the lifespan fastmcp's ``run_stdio_async`` would.
    """
    return app._lifespan_manager()  # type: ignore[no-any-return]


def connection_of(session: Any) -> Any:
    """The client connection behind a per-request SDK session object (``ServerSession._connection``).

    The SDK makes a session object per request; only the connection identifies
    one client across its requests (for notifications, subscriptions and asks).
    """
    return getattr(session, "_connection", session)


async def ensure_oauth_initialized(provider: Any) -> None:
    """Load an OAuth provider's stored tokens now (``OAuthClientProvider._initialized`` / ``_initialize``).

    The SDK loads them lazily inside its flow; the router must see them before the flow starts, to say
    "login required" without any network traffic and to refresh a token that is about to expire.
    """
    if not provider._initialized:
        await provider._initialize()


def reset_oauth_state(provider: Any) -> None:
    """Make an OAuth provider load its stored tokens again before its next request (``_initialized``).

    A ``login`` or ``logout`` in another process changed the store under a live connection.
    """
    provider._initialized = False


# -- the stdio wire lane (discovery_router.mcp.wire_calls) -----------------------------------------
# The lane answers ``tools/call`` of ``call_tool`` without the SDK's dispatcher and runner; what the
# runner does around the handler it borrows here, so the answer is the one the SDK would have sent.


def has_modern_envelope(params: Any) -> bool:
    """Whether a request opens (or belongs to) a 2026-07-28 connection (the SDK runner's ``_has_modern_envelope``).

    The SDK decides a stdio connection's era by its first request with this test; the lane must agree.
    """
    from mcp.server.runner import _has_modern_envelope

    return _has_modern_envelope(params)


class WireResults:
    """A ``tools/call`` handler's result in the SDK's wire form (``ServerRunner._serialize``, then
    ``_dump_result``): cache hints, the per-version sieve, ``resultType`` and the 2026-era ``serverInfo`` stamp.

    The SDK deep-copies the server's ``serverInfo`` stamp for every response, so that no caller can change it
    through a response it keeps; the lane writes each answer out at once and keeps nothing, so the stamp is
    copied once, here, and shared.
    """

    def __init__(self, low: Any) -> None:
        from types import SimpleNamespace

        from mcp.server.runner import ServerRunner, _dump_result

        server = SimpleNamespace(cache_hints=low.cache_hints, server_info_stamp=low.server_info_stamp)
        self._runner = ServerRunner(server, None, None)  # type: ignore[arg-type]  # _serialize reads these two
        self._dump = _dump_result

    def __call__(self, protocol_version: str, result: Any) -> dict[str, Any]:
        return self._dump(self._runner._serialize("tools/call", protocol_version, result))  # type: ignore[no-any-return]


def request_state_boundary(low: Any) -> Any:
    """The server's ``RequestStateBoundary`` middleware (the SDK's ``requestState`` seal), or None."""
    from mcp.server.request_state import RequestStateBoundary

    return next((m for m in low.middleware if isinstance(m, RequestStateBoundary)), None)


def has_teardown(connection: Any) -> bool:
    """Whether anything was pushed on a connection's exit stack (``AsyncExitStack._exit_callbacks``): the lane
    closes a 2026-era request's connection, as the SDK's ``serve_one`` does, only when there is something to
    close (the SDK's shielded close costs a cancel scope and a timeout per request)."""
    return bool(connection.exit_stack._exit_callbacks)


def seal_request_state(boundary: Any, ctx: Any, result: Any) -> Any:
    """Seal an ``InputRequiredResult``'s ``requestState`` as the SDK's boundary middleware does on the way out
    (``RequestStateBoundary._seal_result``), with the server's own key ring; other results pass unchanged."""
    return result if boundary is None else boundary._seal_result(ctx, result, None)


def shared_context(mcp: Any) -> AbstractContextManager[None]:
    """The app-scoped ``SharedContext`` variables fastmcp re-applies around every request
    (``FastMCPServerMiddleware._apply_shared_context``), for a request the lane answers."""
    from fastmcp.server.low_level import FastMCPServerMiddleware

    return FastMCPServerMiddleware._apply_shared_context(None, mcp)  # type: ignore[arg-type,no-any-return]
