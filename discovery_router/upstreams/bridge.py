"""Asks from a handshake-era server, answered by a 2026-era client.

A handshake-era server asks (sampling, elicitation, roots) in the middle of a
call and waits for the answer. A 2026-era client cannot be sent a request;
it answers ``InputRequiredResult``s and retries the call. The bridge keeps the
upstream call running, hands the ask to the client as an
``InputRequiredResult`` whose ``requestState`` names the waiting call, and
when the client retries with the answer, delivers it and goes on waiting.

The waiting call lives in this process's memory: behind a load balancer the
retry must reach the replica that started the call (README "Team
deployment": route a client's requests to one replica). A retry naming a call
this process does not hold (another replica's, one cancelled after waiting
too long, or one from before a restart) is refused with
:class:`~discovery_router.errors.WaitingCallNotHereError` rather than started
afresh: starting it again would run the upstream's tool a second time.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_types

from fastmcp.client.progress import ProgressHandler

from discovery_router.errors import WaitingCallNotHereError
from discovery_router.front import FrontRelay
from discovery_router.upstreams.relay import RelayUnavailableError

STATE_PREFIX = "discovery-router-bridge:"
NOT_HERE = (
    "This answer continues a call that is not waiting in this router process: a handshake-era server's question "
    "waits in the memory of the router replica that started the call, so the answer must reach that replica (or "
    "the call was cancelled after {minutes} minutes without an answer, or the router restarted). Nothing was run "
    "again. Call the tool again from the start; behind a load balancer, route each client to one replica "
    "(client-IP affinity) for servers that ask questions mid-call."
)
_ANSWER_KEY = "upstream-ask"


@dataclass
class _Waiting:
    """One upstream call that is waiting for the client's answer to an ask."""

    task: asyncio.Future[Any]
    front: FrontRelay
    """The client request of the current round: logs go there."""
    progress: ProgressHandler | None = None
    """The current round's progress handler: progress of a later round must not go to a finished request."""
    held: list[tuple[float, float | None, str | None]] = field(default_factory=list)
    """Progress that came between rounds (a round ended with an ask): the next round's request gets it first."""
    asks: asyncio.Queue[tuple[mcp_types.ServerRequest, asyncio.Future[Any]]] = field(default_factory=asyncio.Queue)
    answer: asyncio.Future[Any] | None = None
    created: float = field(default_factory=time.monotonic)


class BridgedRelay:
    """A relay whose asks are queued for the client's next round instead of being sent."""

    def __init__(self, waiting: _Waiting) -> None:
        self._waiting = waiting
        self.session_key = waiting.front.session_key

    @property
    def passes_input_requests(self) -> bool:
        return False  # the upstream speaks the handshake era; asks come through ask()

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        await self._waiting.front.log(level, data, logger_name)

    def refusal(self, method: str) -> str | None:
        return self._waiting.front.refusal(method)

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        if self._waiting.progress is not None:
            await self._waiting.progress(progress, total, message)
        else:
            self._waiting.held.append((progress, total, message))

    async def ask(self, request: mcp_types.ServerRequest, result_type: type[Any]) -> Any:
        reason = self.refusal(request.method)
        if reason:  # an ask the client would fail on must not end the client's call
            raise RelayUnavailableError(reason)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._waiting.asks.put((request, answer))
        raw = await answer
        return result_type.model_validate(raw.model_dump(by_alias=True, exclude_none=True))


class AskBridge:
    """Upstream calls waiting on a 2026-era client's answers, keyed by the ``requestState`` it echoes."""

    def __init__(self, expiry: float = 600.0) -> None:
        self._waiting: dict[str, _Waiting] = {}
        self._expiry = expiry

    async def run(
        self,
        front: FrontRelay,
        start: Callable[[BridgedRelay], Awaitable[Any]],
        input_responses: mcp_types.InputResponses | None,
        request_state: str | None,
        progress_handler: ProgressHandler | None = None,
    ) -> Any:
        """Start (or resume, from ``request_state``) a call; return its result or the client's next ask."""
        self._forget_expired()
        key = request_state[len(STATE_PREFIX) :] if request_state and request_state.startswith(STATE_PREFIX) else None
        waiting = self._waiting.pop(key, None) if key else None
        if key and waiting is None:
            raise WaitingCallNotHereError(NOT_HERE.format(minutes=round(self._expiry / 60)))
        if waiting is None:
            waiting = _Waiting(task=asyncio.get_running_loop().create_future(), front=front)  # task set below
            waiting.task = asyncio.ensure_future(start(BridgedRelay(waiting)))
        waiting.front, waiting.progress = front, progress_handler
        held, waiting.held = waiting.held, []
        if progress_handler is not None:
            for progress in held:
                await progress_handler(*progress)
        if waiting.answer is not None and not waiting.answer.done():
            answer = (input_responses or {}).get(_ANSWER_KEY)
            if answer is None:
                waiting.answer.set_exception(RuntimeError("the client retried without answering"))
            else:
                waiting.answer.set_result(answer)
        next_ask = asyncio.ensure_future(waiting.asks.get())
        try:
            await asyncio.wait([waiting.task, next_ask], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            waiting.task.cancel()
            raise
        finally:
            if not next_ask.done():
                next_ask.cancel()
        if waiting.task.done():
            return waiting.task.result()
        request, waiting.answer = next_ask.result()
        waiting.progress = None  # this round's request ends here: progress now waits for the next round
        key = secrets.token_urlsafe(16)
        self._waiting[key] = waiting
        return mcp_types.InputRequiredResult(
            input_requests={_ANSWER_KEY: request},  # type: ignore[dict-item]
            request_state=STATE_PREFIX + key,
        )

    def _forget_expired(self) -> None:
        """A client that never retries must not keep an upstream call waiting forever."""
        now = time.monotonic()
        for key, waiting in list(self._waiting.items()):
            if now - waiting.created > self._expiry:
                del self._waiting[key]
                waiting.task.cancel()
