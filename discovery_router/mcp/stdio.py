"""The MCP face on stdio, answering a request the SDK cannot parse instead of dropping it.

The SDK's stdio transport hands a line it cannot parse to the session as an exception, which is
logged and dropped: the client then waits forever for that request's reply. A lone surrogate escape
(``"\\ud800"``) is valid JSON but not Unicode, and pydantic refuses the whole line. Here such a
request gets a JSON-RPC error for its id (Python's ``json`` reads the line again to find the id;
nothing is run) and serving goes on.
"""

from __future__ import annotations

import json
import re
from types import TracebackType
from typing import Any

import anyio
import mcp_types
from fastmcp import FastMCP
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from discovery_router._compat import lifespan_of, low_level_server

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


async def run_stdio(app: FastMCP) -> None:
    """fastmcp's ``run_stdio_async`` (no banner), with the read side answering unparsable requests."""
    from fastmcp.server.context import reset_transport, set_transport

    token = set_transport("stdio")
    try:
        async with lifespan_of(app), stdio_server() as (read_stream, write_stream):
            low_level = low_level_server(app)
            await low_level.run(
                _AnswerUnparsable(read_stream, write_stream), write_stream, low_level.create_initialization_options()
            )
    finally:
        reset_transport(token)


class _AnswerUnparsable:
    """The transport's read stream, minus the unparsable requests it answers with an error itself."""

    def __init__(self, read: Any, write: Any) -> None:
        self._read, self._write = read, write

    @property
    def last_context(self) -> Any:
        return getattr(self._read, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item = await self._read.receive()
            reply = error_reply(item) if isinstance(item, Exception) else None
            if reply is None:
                return item  # type: ignore[no-any-return]
            await self._write.send(SessionMessage(reply))

    async def aclose(self) -> None:
        await self._read.aclose()

    def __aiter__(self) -> _AnswerUnparsable:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AnswerUnparsable:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def error_reply(exc: Exception) -> mcp_types.JSONRPCError | None:
    """The error for a request line the SDK refused, or None when the line is no request (nothing to answer)."""
    try:
        line = exc.errors()[0]["input"]  # type: ignore[attr-defined]  # pydantic's ValidationError
        message = json.loads(line) if isinstance(line, (str, bytes)) else None
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("method"), str) or "id" not in message:
        return None
    request_id = message["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        request_id = None
    elif isinstance(request_id, str) and any(0xD800 <= ord(char) <= 0xDFFF for char in request_id):
        request_id = None  # could not be written back
    if _SURROGATE_ESCAPE.search(line if isinstance(line, str) else line.decode("utf-8", "replace")):
        reason = (
            "the request contains a lone surrogate escape (such as \\ud800), which is not valid Unicode; "
            "nothing was run"
        )
    else:
        reason = "the request could not be read as an MCP message; nothing was run"
    return mcp_types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message=reason)
    )
