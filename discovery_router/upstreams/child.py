"""A stdio upstream as a child process whose pipes the event loop reads and writes itself.

Why not fastmcp's ``StdioTransport`` (the MCP SDK's ``stdio_client``) on POSIX: it relays every message
through a memory stream and a task of its own in each direction, two task switches per message, about
0.1 ms of a forwarded call on a busy 2-core machine. Here the dispatcher's write goes straight onto the
child's stdin pipe and its read parses the next line of the child's stdout, as the stdio front does with
the router's own pipes (:mod:`discovery_router.pipes`, shared). A request the child sends that cannot be
parsed is answered with an error instead of being dropped.

Kept from the SDK's transport: the environment (the SDK's safe inherited variables, then the entry's
``env``), the working directory, stderr wherever the caller sends it (the upstream reads it for
diagnostics), a session of its own per child (its process group), and the MCP shutdown order with the
SDK's timings and its process-group kill: stdin closed, :data:`EXIT_GRACE` seconds to exit, then SIGTERM
and SIGKILL to the whole group. Shutdown runs to the end even when the caller is cancelled. Each
connection starts a fresh child and ends it (the router never keeps a stdio child alive between
connections). On Windows the SDK's transport is used (:func:`stdio_transport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastmcp.client.transports import ClientTransport, StdioTransport
from fastmcp.client.transports.base import SessionKwargs, TransportOptions
from mcp import ClientSession
from mcp.client.stdio import FORCE_KILL_TIMEOUT, PROCESS_TERMINATION_TIMEOUT, get_default_environment
from typing_extensions import Unpack

from discovery_router.pipes import LINE_LIMIT, PipeMessageReader, PipeMessageWriter, PipeWriteProtocol

logger = logging.getLogger(__name__)

PIPES = sys.platform != "win32"
"""Whether children run on the event loop's pipes here (POSIX); elsewhere the SDK's transport is used."""

FLUSH_GRACE = 0.5
"""Seconds the messages already written get to reach a child at shutdown (the SDK's writer gets as long)."""

EXIT_GRACE = PROCESS_TERMINATION_TIMEOUT
"""Seconds a child gets to exit by itself once its stdin is closed, before its group is killed (the SDK's)."""

REAP_GRACE = 2.0
"""Seconds to see a killed child gone; only a process that cannot be killed runs this out."""


def stdio_transport(
    command: str, args: list[str], *, env: dict[str, str] | None, cwd: str | None, log_file: Any
) -> ClientTransport:
    """The client transport for a stdio upstream: :class:`ChildStdioTransport`, or the SDK's on Windows."""
    if PIPES:
        return ChildStdioTransport(command, args, env=env, cwd=cwd, log_file=log_file)
    return StdioTransport(command=command, args=args, env=env, cwd=cwd, keep_alive=False, log_file=log_file)


class ChildStdioTransport(ClientTransport):
    """A fastmcp client transport that starts ``command`` per connection and speaks MCP on its pipes."""

    def __init__(
        self,
        command: str,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        log_file: Any = None,
    ) -> None:
        """``log_file``: what the child's stderr is (a file object or descriptor); None: the router's own."""
        self.command, self.args, self.env, self.cwd, self.log_file = command, args, env, cwd, log_file

    @contextlib.asynccontextmanager
    async def connect_session(
        self, *, transport_options: TransportOptions | None = None, **session_kwargs: Unpack[SessionKwargs]
    ) -> AsyncIterator[ClientSession]:
        session_class = (transport_options or TransportOptions()).session_class
        async with child_streams(self.command, self.args, env=self.env, cwd=self.cwd, stderr=self.log_file) as (
            read_stream,
            write_stream,
        ):
            async with session_class(read_stream, write_stream, **session_kwargs) as session:  # type: ignore[arg-type]
                yield session

    def __repr__(self) -> str:
        return f"<ChildStdioTransport(command={self.command!r})>"  # args and env may hold secrets


@contextlib.asynccontextmanager
async def child_streams(
    command: str, args: list[str], *, env: dict[str, str] | None, cwd: str | None, stderr: Any
) -> AsyncIterator[tuple[PipeMessageReader, PipeMessageWriter]]:
    """Start ``command`` and yield the SDK's (read, write) message streams over its stdout and stdin.

    Leaving the block ends the child (see :func:`stop_child`), also when the block fails or is cancelled.
    Raises ``OSError`` when the command cannot be started, as the SDK's transport does.
    """
    to_child_read, to_child_write = os.pipe()  # non-inheritable: no other child gets a copy
    from_child_read, from_child_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            command,
            *args,
            stdin=to_child_read,
            stdout=from_child_write,
            stderr=stderr,
            env=get_default_environment() | (env or {}),
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        os.close(to_child_write)
        os.close(from_child_read)
        raise
    finally:  # the child holds its own copies of its ends
        os.close(to_child_read)
        os.close(from_child_write)
    stdin_pipe = os.fdopen(to_child_write, "wb", buffering=0)
    stdout_pipe = os.fdopen(from_child_read, "rb", buffering=0)
    loop = asyncio.get_running_loop()
    read_transport: asyncio.ReadTransport | None = None
    write_transport: asyncio.WriteTransport | None = None
    write_protocol = PipeWriteProtocol()
    try:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdout_pipe)
        write_transport, _ = await loop.connect_write_pipe(lambda: write_protocol, stdin_pipe)
        writer = PipeMessageWriter(write_transport, write_protocol)
        yield PipeMessageReader(reader, writer), writer
    finally:
        if write_transport is None:
            stdin_pipe.close()  # no writer came up: the child must still see its stdin end
        # A task of its own, shielded: a cancelled (or timed-out) close must not leave the child running.
        stopping = asyncio.ensure_future(stop_child(process, read_transport, write_transport, write_protocol))
        try:
            await asyncio.shield(stopping)
        finally:
            stdin_pipe.close()  # a no-op when its transport closed it
            stdout_pipe.close()


async def stop_child(
    process: asyncio.subprocess.Process,
    read_transport: asyncio.ReadTransport | None,
    write_transport: asyncio.WriteTransport | None,
    write_protocol: PipeWriteProtocol,
) -> None:
    """End a child the MCP way: flush and close its stdin, let it exit, then kill its whole process group.

    Its stdout is still read meanwhile (a child blocked writing it could not exit); the pipes are closed last.
    """
    from mcp.os.posix.utilities import terminate_posix_process_tree

    if write_transport is not None:
        write_transport.close()  # writes what it holds first, then closes the child's stdin
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(write_protocol.closed.wait(), FLUSH_GRACE)
        if not write_protocol.closed.is_set():
            write_transport.abort()  # the child stopped reading: drop what it never took
    try:
        await asyncio.wait_for(process.wait(), EXIT_GRACE)
    except TimeoutError:
        await terminate_posix_process_tree(process, FORCE_KILL_TIMEOUT)  # type: ignore[arg-type]  # needs .pid, .returncode
        try:
            await asyncio.wait_for(process.wait(), REAP_GRACE)
        except TimeoutError:
            logger.warning("stdio server process %d is still alive after SIGKILL; abandoning it", process.pid)
    if read_transport is not None:
        read_transport.close()
