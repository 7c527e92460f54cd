"""One ``tools/call`` on a live upstream connection, sent the short way.

fastmcp's ``Client.call_tool_mcp`` and the SDK's ``ClientSession.call_tool`` cost the router about
0.3 ms a call that it gets nothing for: a request model built only to be dumped, a tracing span, a
second task to watch the session, and a re-check of structured content against the tool's output
schema (which re-lists the server's tools when it has not seen the tool). The router forwards the
result unchanged and its client validates it, so the call is sent on the session's dispatcher and the
answer validated once into the SDK's result type (:mod:`discovery_router._compat` holds the private
SDK names this takes). What stays: the era's ``_meta`` and headers, the timeout (and its courtesy
cancel), progress, cancellation, trace propagation (the dispatcher does it), watching the session for
a dead transport, and 2026-era asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import mcp_types
from fastmcp import Client
from fastmcp.client.progress import ProgressHandler

from discovery_router._compat import drive_input_required, parse_tool_call_result, send_tool_call, session_task

T = TypeVar("T")


def tool_call_params(
    name: str,
    arguments: dict[str, Any],
    input_responses: mcp_types.InputResponses | None = None,
    request_state: str | None = None,
) -> dict[str, Any]:
    """``tools/call`` params as the SDK puts them on the wire (``CallToolRequestParams``, by alias, no nulls).

    A first leg (no answers to earlier asks) is built by hand: it is every call, and its dump is just
    these two keys. A retry carrying answers goes through the SDK model, which knows their wire form.
    """
    if input_responses is None and request_state is None:
        return {"name": name, "arguments": arguments}
    params = mcp_types.CallToolRequestParams(
        name=name, arguments=arguments, input_responses=input_responses, request_state=request_state
    )
    return params.model_dump(by_alias=True, mode="json", exclude_none=True)


async def call_tool(
    client: Client[Any],
    name: str,
    arguments: dict[str, Any],
    *,
    timeout: float,
    progress: ProgressHandler | None = None,
    input_responses: mcp_types.InputResponses | None = None,
    request_state: str | None = None,
    pass_input_requests: bool = False,
) -> Any:
    """Send one call and return the upstream's answer, validated once, otherwise as it came.

    ``pass_input_requests``: a 2026-era upstream's ``InputRequiredResult`` is returned as it is (the
    calling client answers the asks and retries); otherwise it is resolved here through the client's
    ask handlers, as fastmcp's ``call_tool_mcp`` does. The result is a ``CallToolResult``, an
    ``InputRequiredResult``, or (only for a client with extension result claims) a claimed model.

    Raises what the SDK raises: ``MCPError`` (an error answer, ``REQUEST_TIMEOUT``,
    ``CONNECTION_CLOSED``), ``pydantic.ValidationError`` for a result that is not one, or the
    transport's own failure.
    """
    session = client.session

    async def send(responses: mcp_types.InputResponses | None, state: str | None) -> Any:
        params = tool_call_params(name, arguments, responses, state)
        raw = await send_tool_call(session, params, timeout=timeout, progress=progress)
        return parse_tool_call_result(session, raw)

    result = await watch_session(client, send(input_responses, request_state))
    if isinstance(result, mcp_types.InputRequiredResult) and not pass_input_requests:
        result = await watch_session(client, drive_input_required(client, result, send))
    return result


async def watch_session(client: Client[Any], work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` in this task, but end it with the connection's failure if its session ends first.

    What fastmcp's ``Client._await_with_session_monitoring`` does (a transport may fail in the session's
    task, not in the request waiting for an answer), without a task and an ``asyncio.wait`` per call: a
    done-callback on the session task cancels this one, and the cancel becomes the session's failure.
    A cancel from outside stays a cancel.
    """
    session = session_task(client)
    if session is None:
        return await work
    if session.done():
        work.close()
        raise session_failure(session)
    caller = asyncio.current_task()
    assert caller is not None
    watching, ended = True, False

    def on_session_end(_: asyncio.Task[Any]) -> None:
        nonlocal ended
        if watching:  # a callback already scheduled when the call finished must not cancel what comes next
            ended = True
            caller.cancel()

    session.add_done_callback(on_session_end)
    try:
        result = await work
    except asyncio.CancelledError:
        if ended and caller.uncancel() == 0:
            raise session_failure(session) from None
        raise
    finally:
        watching = False
        session.remove_done_callback(on_session_end)
    if ended:
        caller.uncancel()  # the work finished anyway: the cancel was never delivered
    return result


def session_failure(session: asyncio.Task[Any]) -> BaseException:
    """What ended a connection's session task: its exception, or a plain "it ended"."""
    if not session.cancelled() and (exc := session.exception()) is not None:
        return exc
    return RuntimeError("the connection's session ended")
