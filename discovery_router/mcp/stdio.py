"""The MCP face on stdio: the event loop reads and writes the pipes itself, and unparsable requests are answered.

Why not the SDK's ``stdio_server``: it reads stdin and writes stdout through anyio's worker threads (one
thread round trip per line read, two per line written) and relays every message through a memory stream and
a task of its own. On a busy machine those hand-offs were a large share of a forwarded call's cost. Here the
pipes are asyncio pipe transports: a line is parsed where the dispatcher asks for it, and an answer is written
where the dispatcher sends it. When stdin or stdout is no pipe (a regular file), the SDK's transport is used.

Like the SDK, fd 0 and fd 1 are pointed at the null device and at stderr while serving (a stray ``print`` or a
child process's output cannot corrupt the wire) and restored afterwards.

The SDK's stdio transport hands a line it cannot parse to the session as an exception, which is logged and
dropped: the client then waits forever for that request's reply. A lone surrogate escape (``"\\ud800"``) is
valid JSON but not Unicode, and pydantic refuses the whole line. Here such a request gets a JSON-RPC error for
its id (Python's ``json`` reads the line again to find the id; nothing is run) and serving goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import mcp_types
from fastmcp import FastMCP
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from discovery_router._compat import lifespan_of, low_level_server
from discovery_router.pipes import (
    LINE_LIMIT,
    MessageReadStream,
    PipeMessageReader,
    PipeMessageWriter,
    PipeWriteProtocol,
    error_reply_for_line,
)

logger = logging.getLogger(__name__)

FLUSH_TIMEOUT = 5.0
"""Seconds the last answers get to reach a slow client when serving ends, before the pipe is dropped."""


async def run_stdio(app: FastMCP) -> None:
    """fastmcp's ``run_stdio_async`` (no banner), over the router's own stdio transport."""
    from fastmcp.server.context import reset_transport, set_transport

    token = set_transport("stdio")
    try:
        async with lifespan_of(app), stdio_streams() as (read_stream, write_stream):
            low_level = low_level_server(app)
            lane = None
            if isinstance(read_stream, PipeMessageReader):
                from discovery_router.mcp.wire_calls import WireCalls

                lane = read_stream.lane = WireCalls.for_app(app, write_stream)  # tools/call past the SDK
            try:
                await low_level.run(read_stream, write_stream, low_level.create_initialization_options())
            finally:
                if lane is not None:
                    await lane.close()
    finally:
        reset_transport(token)


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[tuple[Any, Any]]:
    """The (read, write) message streams over this process's stdin and stdout, for the SDK server's ``run``.

    While serving, fd 0 is the null device and fd 1 is stderr (as the MCP SDK's ``stdio_server`` does), so
    nothing else in the process, and no child it starts, reads requests or writes onto the wire; the wire
    is served on private duplicates, and fd 0 and 1 get it back at the end.
    """
    if sys.platform == "win32" or not (_is_pipe(0) and _is_pipe(1)):
        streams = None
    else:
        import fcntl

        wire_in, wire_out = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3), fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
        try:
            streams = await pipe_streams(wire_in, wire_out)
        except (OSError, ValueError) as exc:  # e.g. /dev/null, which epoll refuses
            logger.debug("stdio is not served as asyncio pipes (%s); using the MCP SDK's transport", exc)
            streams = None
        if streams is None:
            os.close(wire_in)
            os.close(wire_out)
    if streams is None:
        async with stdio_server() as (read_stream, write_stream):
            yield _AnswerUnparsable(read_stream, write_stream), write_stream
        return
    for fd, divert in ((0, os.open(os.devnull, os.O_RDONLY)), (1, os.dup(2))):
        os.dup2(divert, fd)
        os.close(divert)
    try:
        yield streams.reader, streams.writer
    finally:
        await streams.close()
        for fd, wire in ((0, wire_in), (1, wire_out)):
            with suppress(OSError):
                os.dup2(wire, fd)
            with suppress(OSError):
                os.close(wire)


class PipeStreams:
    """One MCP connection over two pipe descriptors: ``reader`` and ``writer`` for the SDK, ``close`` at the end."""

    def __init__(
        self, reader: PipeMessageReader, writer: PipeMessageWriter, transports: list[Any], flags: dict[int, int]
    ) -> None:
        self.reader, self.writer, self._transports = reader, writer, transports
        self._flags = flags  # each descriptor's file status flags before asyncio made it non-blocking

    async def close(self) -> None:
        """Stop reading, give the last answers up to :data:`FLUSH_TIMEOUT` to go out, restore blocking mode.

        The descriptors stay open (they are the caller's); their blocking mode is shared with every copy
        of them, so it is put back as it was.
        """
        import fcntl

        read_transport, write_transport = self._transports
        read_transport.close()
        write_transport.close()  # flushes what it holds first, then reports connection_lost
        protocol = self.writer.protocol
        with suppress(TimeoutError):
            await asyncio.wait_for(protocol.closed.wait(), FLUSH_TIMEOUT)
        if not protocol.closed.is_set():
            write_transport.abort()  # the client stopped reading: drop what it never took
        for fd, flags in self._flags.items():
            with suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)


async def pipe_streams(read_fd: int, write_fd: int) -> PipeStreams:
    """Serve MCP messages over two pipe descriptors with asyncio's pipe transports (the caller keeps the fds)."""
    import fcntl

    blocking = {fd: fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (read_fd, write_fd)}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0, closefd=False)
    )
    try:
        protocol = PipeWriteProtocol()
        write_transport, _ = await loop.connect_write_pipe(
            lambda: protocol, os.fdopen(write_fd, "wb", buffering=0, closefd=False)
        )
    except BaseException:
        read_transport.close()
        fcntl.fcntl(read_fd, fcntl.F_SETFL, blocking[read_fd])
        raise
    writer = PipeMessageWriter(write_transport, protocol)
    return PipeStreams(PipeMessageReader(reader, writer), writer, [read_transport, write_transport], blocking)


def _is_pipe(fd: int) -> bool:
    """True when ``fd`` is a pipe, a socket or a terminal: what asyncio's pipe transports can wait on.

    Other character devices (``/dev/null``) pass asyncio's own check but epoll refuses them later, in a
    callback, which would leave the server waiting for a first line forever.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


class _AnswerUnparsable(MessageReadStream):
    """The SDK transport's read stream (stdin no pipe), minus the unparsable requests it answers itself."""

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


def error_reply(exc: Exception) -> mcp_types.JSONRPCError | None:
    """The error for a request line the SDK refused (its pydantic error holds the line), or None."""
    try:
        line = exc.errors()[0]["input"]  # type: ignore[attr-defined]  # pydantic's ValidationError
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    return error_reply_for_line(line) if isinstance(line, str) else None
