"""Every private fastmcp / MCP SDK attribute the router relies on, in one place.

Each helper names what it reaches into and why no public API serves; a test
(``tests/test_compat.py``) drives each against the installed releases, so an
upgrade that renames one fails there, loudly, instead of deep inside a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
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
