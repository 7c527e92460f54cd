"""Every private fastmcp / MCP SDK attribute the router relies on, in one place.

Each helper names what it reaches into and why no public API serves; a test
(``tests/test_compat.py``) drives each against the installed releases, so an
upgrade that renames one fails there, loudly, instead of deep inside a call.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, TypeVar

T = TypeVar("T")


async def await_with_session_monitoring(client: Any, work: Awaitable[T]) -> T:
    """Await ``work`` on ``client``'s session, failing fast if the session dies meanwhile.

    fastmcp's ``Client._await_with_session_monitoring`` (its ProxyTool does the same) is the only way to
    call ``session.call_tool`` with ``allow_input_required`` and still notice a dead transport.
    """
    return await client._await_with_session_monitoring(work)


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
