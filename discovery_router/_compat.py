"""Every private fastmcp / MCP SDK attribute the router relies on, in one place.

Each helper names what it reaches into and why no public API serves; a test
(``tests/test_compat.py``) drives each against the installed releases, so an
upgrade that renames one fails there, loudly, instead of deep inside a call.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
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
