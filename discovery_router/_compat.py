"""Every private fastmcp / MCP SDK attribute the router relies on, in one place.

Each helper names what it reaches into and why no public API serves; a test
(``tests/test_compat.py``) drives each against the installed releases, so an
upgrade that renames one fails there, loudly, instead of deep inside a call.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def await_with_session_monitoring(client: Any, work: Awaitable[T]) -> T:
    """Await ``work`` on ``client``'s session, failing fast if the session dies meanwhile.

    fastmcp's ``Client._await_with_session_monitoring`` (its ProxyTool does the same) is the only way to
    call ``session.call_tool`` with ``allow_input_required`` and still notice a dead transport.
    """
    return await client._await_with_session_monitoring(work)


def low_level_server(mcp: Any) -> Any:
    """The MCP SDK server under a FastMCP server (``FastMCP._mcp_server``).

    fastmcp serves neither ``completion/complete`` for proxied prompts nor
    ``resources/subscribe`` and ``subscriptions/listen``; the router registers those handlers there.
    """
    return mcp._mcp_server


def connection_of(session: Any) -> Any:
    """The client connection behind a per-request SDK session object (``ServerSession._connection``).

    The SDK makes a session object per request; only the connection identifies
    one client across its requests (for notifications, subscriptions and asks).
    """
    return getattr(session, "_connection", session)
