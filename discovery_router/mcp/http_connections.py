"""The HTTP connection layer of ``serve --transport http|sse``: a request-head deadline, a connection cap, and
the fastest parser and event loop installed.

uvicorn never times out a connection whose request head is incomplete, and it caps nothing but requests. The
protocol classes built here close a connection whose head is not complete within ``router.http_header_timeout``
seconds, and turn away connections beyond ``router.http_max_connections`` before they cost more than a
descriptor. Both of uvicorn's HTTP/1.1 protocols get the same guard:

- httptools (llhttp, in C), used when it is installed (a dependency): in a profile of the router forwarding
  over HTTP, uvicorn's h11 side took 3.4% of its CPU, the httptools side 1.5%;
- h11, the fallback (and what uvicorn always has).

:func:`discovery_router.mcp.loop.loop_factory` picks uvloop's event loop where it is installed (not on Windows): a cheaper loop for
every socket read, write and task switch on both legs of a call. Together (with per-request log lines off, see
``serve_http``) they cut the router's CPU per forwarded call over HTTP by 12-30% in paired runs on a loaded
2-core VM (noisy figures; `python -m benchmarks.run latency` measures throughput).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

Parser = Literal["auto", "httptools", "h11"]

DESCRIPTOR_RESERVE = 64
"""Descriptors kept free of HTTP connections (upstream pipes, the cache, the audit log, the listener)."""

REFUSED_TEXT = b"Too many open connections to the router (router.http_max_connections).\n"
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(REFUSED_TEXT), REFUSED_TEXT)
)


class ConnectionGuard:
    """What the protocol instances of one server share: the connections still owing a request head, oldest
    first, each with its deadline.

    At the cap, the oldest connection still waiting for its request head is closed to make room; only when
    every connection has sent its head is the new one turned away (503). So a flood of half-open connections
    cannot keep out a client that sends its request at once.

    The deadline runs from the connection's opening, or from the first byte of each later request on a
    kept-alive connection (uvicorn's own keep-alive timeout covers the silence in between); it is not pushed
    back by each byte, so a client dribbling its headers is closed as well.
    """

    def __init__(self, header_timeout: float, max_connections: int) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._waiting: dict[Any, asyncio.TimerHandle | None] = {}

    def admit(self, protocol: Any) -> bool:
        """A new connection: make room for it at the cap (False: it was turned away), then await its head."""
        if self.max_connections and len(protocol.connections) > self.max_connections:
            oldest = next(iter(self._waiting), None)
            if oldest is None:
                logger.warning(
                    "refusing a connection: %d are open (router.http_max_connections)", len(protocol.connections) - 1
                )
                _refuse(protocol.transport)
                return False
            logger.debug("closing the oldest connection still without a request head, to make room")
            self.head_in(oldest)
            _refuse(oldest.transport)
        self.await_head(protocol)
        return True

    def awaiting(self, protocol: Any) -> bool:
        return protocol in self._waiting

    def await_head(self, protocol: Any) -> None:
        """Start the head deadline of ``protocol``'s next request."""
        self.head_in(protocol)
        timer = (
            protocol.loop.call_later(self.header_timeout, self._timed_out, protocol) if self.header_timeout else None
        )
        self._waiting[protocol] = timer

    def head_in(self, protocol: Any) -> None:
        """The request head is complete (or the connection is gone): no deadline any more."""
        timer = self._waiting.pop(protocol, None)
        if timer is not None:
            timer.cancel()

    def _timed_out(self, protocol: Any) -> None:
        self._waiting.pop(protocol, None)
        if not protocol.transport.is_closing():
            logger.debug(
                "closing a connection whose request head took over %gs (router.http_header_timeout)",
                self.header_timeout,
            )
            protocol.transport.close()


def _refuse(transport: asyncio.BaseTransport) -> None:
    transport.write(REFUSED)  # type: ignore[attr-defined]
    transport.close()


def guarded_h11(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a request-head deadline and a cap on open connections (0 disables either)."""
    guard = ConnectionGuard(header_timeout, max_connections)

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            guard.admit(self)

        def data_received(self, data: bytes) -> None:
            if not guard.awaiting(self) and self.conn.their_state is h11.IDLE and self.cycle_finished:
                guard.await_head(self)  # the first byte of the next request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                guard.head_in(self)

        def connection_lost(self, exc: Exception | None) -> None:
            guard.head_in(self)
            super().connection_lost(exc)

        @property
        def cycle_finished(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

    return GuardedH11Protocol


def guarded_httptools(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the same guard as :func:`guarded_h11`; ImportError without httptools.

    llhttp reports a request's first byte (``on_message_begin``) and its complete head (``on_headers_complete``)
    itself, so the guard hangs on those two callbacks.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    guard = ConnectionGuard(header_timeout, max_connections)

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            guard.admit(self)

        def on_message_begin(self) -> None:
            if not guard.awaiting(self):  # a later request on a kept-alive connection (the first one's runs)
                guard.await_head(self)
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            guard.head_in(self)
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            guard.head_in(self)
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol


def guarded_protocol(header_timeout: float, max_connections: int, parser: Parser = "auto") -> type[asyncio.Protocol]:
    """The guarded protocol class for ``parser``; ``auto``: httptools when installed, else h11."""
    if parser != "h11":
        try:
            return guarded_httptools(header_timeout, max_connections)
        except ImportError:
            if parser == "httptools":
                raise
            logger.debug("httptools is not installed: parsing HTTP with h11")
    return guarded_h11(header_timeout, max_connections)


def describe_protocol(protocol: type[asyncio.Protocol]) -> str:
    """Which parser a protocol class from :func:`guarded_protocol` uses, for the serving log line."""
    return "h11" if issubclass(protocol, H11Protocol) else "httptools"


def connection_limit(configured: int) -> int:
    """``configured``, lowered to fit under this process's descriptor limit (0: as many as fit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= DESCRIPTOR_RESERVE:
        return configured
    fits = soft - DESCRIPTOR_RESERVE
    if configured > fits:
        logger.warning("router.http_max_connections lowered to %d to stay under the descriptor limit (%d)", fits, soft)
    return fits if configured == 0 or configured > fits else configured
