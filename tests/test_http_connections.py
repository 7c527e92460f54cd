"""The connection guard of ``serve --transport http`` on both of uvicorn's HTTP/1.1 parsers (httptools and h11).

A real uvicorn server in this process, on 127.0.0.1, serving a one-line ASGI app through the guarded protocol
class; raw sockets play the clients (a full request, a head that never ends, a head dribbled byte by byte, a
kept-alive connection). The router-level test (a real ``serve`` subprocess under a flood of half-open
connections) is in test_http_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn

from discovery_router.mcp.http_connections import describe_protocol, guarded_protocol
from discovery_router.mcp.loop import loop_factory

PARSERS = ["httptools", "h11"]
HEAD_DEADLINE = 1.0
"""Seconds the guard gives a request head here."""
PATIENCE = 15.0
"""Seconds a test waits for something that must happen (a close, an answer): far beyond the deadline."""
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PARTIAL_HEAD = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b"hello"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its own signal handlers
        yield


@contextlib.asynccontextmanager
async def guarded_server(parser: str, *, max_connections: int = 0) -> AsyncIterator[int]:
    """uvicorn with the guarded ``parser`` protocol on a free port; the port."""
    protocol = guarded_protocol(HEAD_DEADLINE, max_connections, parser)  # type: ignore[arg-type]
    assert describe_protocol(protocol) == parser
    config = uvicorn.Config(_hello, host="127.0.0.1", port=0, http=protocol, lifespan="off", log_level="warning")
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, PATIENCE)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """One response to a ``_hello`` request (head and 5-byte body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE)
    return head + await asyncio.wait_for(reader.readexactly(5), PATIENCE)


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    try:
        return await asyncio.wait_for(reader.read(), PATIENCE)
    except ConnectionResetError:
        return b""


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_head_that_never_ends_is_closed_and_others_are_served(parser: str):
    async with guarded_server(parser) as port:
        stalled_reader, stalled = await _connect(port)
        stalled.write(PARTIAL_HEAD)
        reader, writer = await _connect(port)
        writer.write(REQUEST)
        assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
        assert await _closed(stalled_reader) == b""  # closed without an answer: the head never came
        writer.close()
        stalled.close()


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_head_dribbled_byte_by_byte_is_closed_at_its_deadline(parser: str):
    async with guarded_server(parser) as port:
        reader, writer = await _connect(port)
        with contextlib.suppress(ConnectionError):
            for byte in PARTIAL_HEAD * 10:  # each byte well inside the deadline; the head as a whole is not
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(HEAD_DEADLINE / 5)
                if reader.at_eof():
                    break
        assert await _closed(reader) == b""
        assert reader.at_eof()


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_kept_alive_connection_gets_a_new_deadline_from_the_next_requests_first_byte(parser: str):
    async with guarded_server(parser) as port:
        reader, writer = await _connect(port)
        writer.write(REQUEST)
        assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(HEAD_DEADLINE * 2)  # idle between requests: uvicorn's keep-alive timeout (5 s) rules
        writer.write(REQUEST)
        assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
        writer.write(PARTIAL_HEAD)  # the third request's head never ends: closed at its own deadline
        assert await _closed(reader) == b""


@pytest.mark.parametrize("parser", PARSERS)
async def test_at_the_cap_the_oldest_half_open_connection_makes_room(parser: str):
    async with guarded_server(parser, max_connections=3) as port:
        half_open = []  # (reader, writer): a dropped StreamWriter closes its socket
        for _ in range(3):
            stalled_reader, stalled = await _connect(port)
            stalled.write(PARTIAL_HEAD)
            await stalled.drain()
            half_open.append((stalled_reader, stalled))
        await asyncio.sleep(0.2)  # let the server see all three before the fourth
        reader, writer = await _connect(port)
        writer.write(REQUEST)
        assert (await _answer(reader)).startswith(b"HTTP/1.1 200")  # served although the cap was reached
        refused = await _closed(half_open[0][0])
        assert refused.startswith(b"HTTP/1.1 503") and b"router.http_max_connections" in refused
        assert not half_open[1][0].at_eof()  # only the oldest made room
        writer.close()


@pytest.mark.parametrize("parser", PARSERS)
async def test_beyond_the_cap_with_every_head_in_a_new_connection_is_refused(parser: str):
    async with guarded_server(parser, max_connections=2) as port:
        kept = []
        for _ in range(2):
            reader, writer = await _connect(port)
            writer.write(REQUEST)
            assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
            kept.append(writer)
        extra_reader, _extra = await _connect(port)
        refused = await _closed(extra_reader)
        assert refused.startswith(b"HTTP/1.1 503") and b"router.http_max_connections" in refused
        for writer in kept:
            writer.close()


def test_serving_picks_httptools_and_uvloop_where_they_are_dependencies():
    """Both are dependencies (uvloop not on Windows): a serve without them is the slower fallback."""
    assert describe_protocol(guarded_protocol(10, 0)) == "httptools"
    if sys.platform != "win32":
        import uvloop

        assert loop_factory() is uvloop.new_event_loop
    assert describe_protocol(guarded_protocol(10, 0, "h11")) == "h11"
