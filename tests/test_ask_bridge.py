"""The ask bridge (discovery_router.upstreams.bridge): a handshake-era upstream's mid-call ask becomes a round
the 2026-era client answers; progress must follow the client's rounds, never land on a finished one."""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types

from discovery_router.upstreams.bridge import _ANSWER_KEY, AskBridge, BridgedRelay


class _Front:
    """A calling client that can be asked anything (the bridge only reads these)."""

    session_key = "client"
    passes_input_requests = True

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        return None

    def refusal(self, method: str) -> str | None:
        return None

    async def ask(self, request: Any, result_type: type[Any]) -> Any:
        raise AssertionError("a bridged ask is never sent directly")


async def test_progress_sent_between_rounds_reaches_the_next_round_not_the_finished_one():
    bridge = AskBridge()
    first_round: list[float] = []
    second_round: list[float] = []
    asked = asyncio.Event()

    async def upstream_call(relay: BridgedRelay) -> mcp_types.CallToolResult:
        async def progress_while_the_client_answers() -> None:
            await asyncio.wait_for(asked.wait(), 5)
            await relay.progress(1, 2, None)

        sent = asyncio.create_task(progress_while_the_client_answers())
        await relay.ask(mcp_types.ListRootsRequest(), mcp_types.ListRootsResult)
        await sent
        await relay.progress(2, 2, None)
        return mcp_types.CallToolResult(content=[])

    async def on_first(value: float, total: float | None, message: str | None) -> None:
        first_round.append(value)

    async def on_second(value: float, total: float | None, message: str | None) -> None:
        second_round.append(value)

    front = _Front()
    round_one = await bridge.run(front, upstream_call, None, None, on_first)  # type: ignore[arg-type]
    assert isinstance(round_one, mcp_types.InputRequiredResult)
    asked.set()  # the upstream reports progress while the client is answering
    await asyncio.sleep(0.05)
    answer = {_ANSWER_KEY: mcp_types.ListRootsResult(roots=[])}
    done = await bridge.run(front, upstream_call, answer, round_one.request_state, on_second)  # type: ignore[arg-type]
    assert isinstance(done, mcp_types.CallToolResult)
    assert first_round == [] and second_round == [1, 2]
