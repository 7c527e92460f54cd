"""The stdio front's pipe transport (discovery_router.mcp.stdio): real OS pipes, a real MCP SDK server and client.

``serve`` itself over stdio is covered in test_serve.py, test_shutdown.py and test_reliability_upstreams.py
(a lone surrogate answered); here the transport is driven directly, over ``os.pipe()`` pairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import anyio
import mcp_types
import pytest
from mcp.shared.message import SessionMessage

from benchmarks.suites.lean_echo import build_lean_echo
from discovery_router.mcp.stdio import pipe_streams


@pytest.fixture
async def wire():
    """(streams, client_write_fd, client_read_fd): the server reads one pipe and writes the other."""
    fds = [*os.pipe(), *os.pipe()]  # to the server (read, write), to the client (read, write)
    streams = await pipe_streams(fds[0], fds[3])
    try:
        yield streams, fds[1], fds[2]
    finally:
        await streams.close()
        for fd in fds:
            with contextlib.suppress(OSError):  # a test may have closed its end already
                os.close(fd)


def _read_line(fd: int) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        data += os.read(fd, 65536)
    return json.loads(data)


async def test_requests_are_read_one_per_line_and_blank_lines_skipped(wire):
    streams, to_server, _ = wire
    os.write(to_server, b'\n{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n\n{"jsonrpc": "2.0", "method": "x/y"}\n')
    first, second = await streams.reader.receive(), await streams.reader.receive()
    assert isinstance(first.message, mcp_types.JSONRPCRequest) and first.message.id == 1
    assert isinstance(second.message, mcp_types.JSONRPCNotification) and second.message.method == "x/y"


async def test_a_request_with_a_lone_surrogate_is_answered_and_reading_goes_on(wire):
    streams, to_server, from_server = wire
    os.write(to_server, b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "\\ud800"}}\n')
    os.write(to_server, b'{"jsonrpc": "2.0", "id": 8, "method": "ping"}\n')
    after = await streams.reader.receive()  # the refused request never reaches the dispatcher
    assert after.message.id == 8
    answer = await anyio.to_thread.run_sync(_read_line, from_server)
    assert answer["id"] == 7 and answer["error"]["code"] == mcp_types.INVALID_REQUEST
    assert "lone surrogate" in answer["error"]["message"] and "nothing was run" in answer["error"]["message"]


async def test_an_unreadable_line_that_is_no_request_goes_to_the_dispatcher_as_an_error(wire):
    streams, to_server, _ = wire
    os.write(to_server, b"not json at all\n")
    item = await streams.reader.receive()
    assert isinstance(item, Exception)


async def test_end_of_input_ends_the_stream(wire):
    streams, to_server, _ = wire
    os.write(to_server, b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n')
    os.close(to_server)  # the client is gone: end of input after its last line
    received = [item async for item in streams.reader]
    assert [item.message.id for item in received] == [1]


async def test_a_writer_waits_while_the_client_is_not_reading_and_goes_on_when_it_reads(wire):
    streams, _, from_server = wire
    big = SessionMessage(
        mcp_types.JSONRPCResponse(jsonrpc="2.0", id=1, result={"content": [{"type": "text", "text": "x" * 2_000_000}]})
    )
    sending = asyncio.create_task(streams.writer.send(big))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not sending.done(), "the pipe holds far less than 2 MB: the sender must be held until the client reads"
    answer = await anyio.to_thread.run_sync(_read_line, from_server)
    await sending
    assert len(answer["result"]["content"][0]["text"]) == 2_000_000


async def test_an_sdk_server_answers_a_tool_call_over_the_pipes(wire):
    streams, to_server, from_server = wire
    server = build_lean_echo()
    serving = asyncio.create_task(server.run(streams.reader, streams.writer, server.create_initialization_options()))
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    os.write(to_server, (json.dumps(init) + "\n").encode())
    assert (await anyio.to_thread.run_sync(_read_line, from_server))["id"] == 1
    os.write(to_server, b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hé"}}}
    os.write(to_server, (json.dumps(call) + "\n").encode())
    answer = await anyio.to_thread.run_sync(_read_line, from_server)
    assert answer == {
        "jsonrpc": "2.0",
        "id": 2,
        "result": {"content": [{"type": "text", "text": "hé"}], "isError": False},
    }
    serving.cancel()
