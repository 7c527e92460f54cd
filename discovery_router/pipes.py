"""MCP messages over asyncio pipe transports: one JSON line per message, read and written where the
SDK's dispatcher asks, with no task or memory stream in between.

Shared by the stdio front (:mod:`discovery_router.mcp.stdio`, over the router's own stdin and stdout)
and stdio upstreams (:mod:`discovery_router.upstreams.child`, over a child's pipes). A request line
that cannot be parsed is answered with a JSON-RPC error for its id (the SDK's transports log and drop
it, and its sender then waits forever); other unparsable lines go to the dispatcher as exceptions, as
with the SDK.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from contextlib import suppress
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
import mcp_types
from mcp.shared.message import SessionMessage

logger = logging.getLogger(__name__)

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

LINE_LIMIT = 1 << 30
"""Longest line read (1 GiB): the SDK's transports have no limit; this only bounds a runaway line."""


class PipeWriteProtocol(asyncio.Protocol):
    """Flow control for the pipe the peer reads: writers wait while the peer is not reading."""

    def __init__(self) -> None:
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.lost: BaseException | None = None
        self.closed = asyncio.Event()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or BrokenPipeError("pipe closed")
        self.can_write.set()
        self.closed.set()


class PipeMessageWriter:
    """The SDK's write stream over a pipe: each message is one JSON line, written when sent."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: PipeWriteProtocol) -> None:
        self._transport, self.protocol = transport, protocol
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self.protocol.lost is not None or self._transport.is_closing():
            raise anyio.BrokenResourceError
        line = item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
        self._transport.write(line.encode("utf-8"))
        if not self.protocol.can_write.is_set():
            await self.protocol.can_write.wait()  # the peer is behind: hold this sender, as a full pipe would

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> PipeMessageWriter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class MessageReadStream:
    """The async-iterator and context-manager face the SDK's dispatcher expects of a read stream,
    over a subclass's ``receive`` and ``aclose``."""

    async def receive(self) -> SessionMessage | Exception:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class PipeMessageReader(MessageReadStream):
    """The SDK's read stream over a pipe: one parsed message per line; unparsable requests are answered."""

    last_context = None  # no sender context to carry: the dispatcher uses its own

    def __init__(self, reader: asyncio.StreamReader, writer: PipeMessageWriter) -> None:
        self._reader, self._writer = reader, writer
        self._closed = False
        self.lane: WireLane | None = None
        """Offered each parsed line first; what it takes never reaches the SDK (see ``mcp/wire_calls.py``)."""

    async def receive(self) -> SessionMessage | Exception:
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            raw = await self._reader.readline()
            if not raw:
                raise anyio.EndOfStream
            if self.lane is not None and self._lane_took(self.lane, raw):
                continue
            line = raw.decode("utf-8", "replace")  # as the SDK's transport reads it
            if not line.strip():
                continue
            try:
                return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
            except ValueError as exc:  # pydantic's ValidationError
                reply = error_reply_for_line(line)
                if reply is None:
                    return exc  # no request to answer: the dispatcher logs it, as with the SDK's transport
                with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    await self._writer.send(SessionMessage(reply))

    @staticmethod
    def _lane_took(lane: WireLane, raw: bytes) -> bool:
        """Offer ``raw`` to the lane; a lane failure leaves the line to the SDK (it must never cost a request)."""
        try:
            return lane.wants(raw) and lane.take(_plain_json(raw))
        except Exception:
            logger.exception("the stdio wire lane failed on a request; the SDK answers it")
            return False

    async def aclose(self) -> None:
        self._closed = True


class WireLane(Protocol):
    """What the stdio reader offers each line before the SDK sees it (``WireCalls``)."""

    def wants(self, line: bytes) -> bool: ...

    def take(self, message: Any) -> bool: ...


_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _plain_json(raw: bytes) -> Any:
    """``raw`` parsed, or None where the SDK's parser would refuse it (answered on its path): no JSON, NaN or
    Infinity, a lone surrogate escape."""
    if _SURROGATE_ESCAPE_BYTES.search(raw):
        return None
    try:
        return _STRICT_JSON.decode(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too
        return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant)
"""Made once: ``json.loads`` with any keyword builds a decoder per line."""


def error_reply_for_line(line: str) -> mcp_types.JSONRPCError | None:
    """The error for a request line that could not be parsed, or None when the line is no request."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("method"), str) or "id" not in message:
        return None
    request_id = message["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        request_id = None
    elif isinstance(request_id, str) and any(0xD800 <= ord(char) <= 0xDFFF for char in request_id):
        request_id = None  # could not be written back
    if _SURROGATE_ESCAPE.search(line):
        reason = (
            "the request contains a lone surrogate escape (such as \\ud800), which is not valid Unicode; "
            "nothing was run"
        )
    else:
        reason = "the request could not be read as an MCP message; nothing was run"
    return mcp_types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message=reason)
    )
