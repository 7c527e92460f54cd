"""The router's facade towards its shells: one event stream, per-server settling, components and tools by name."""

from __future__ import annotations

from discovery_router.events import ComponentsChanged, RouterEvent
from discovery_router.router import Router
from tests.conftest import FAST
from tests.upstreams import build_notes


def notes_with_a_prompt():
    server = build_notes()

    @server.prompt
    def summarise(topic: str) -> str:
        """Summarise my notes on a topic."""
        return f"Summarise my notes on {topic}."

    return server


async def test_listeners_hear_components_changed_and_stop_when_they_unlisten():
    router = Router({"notes": notes_with_a_prompt(), "other": notes_with_a_prompt()}, FAST)
    heard: list[RouterEvent] = []
    stop = router.listen(heard.append)
    settled: list[str] = []
    async with router:
        assert await router.wait_ready(on_settled=settled.append)
        assert sorted(settled) == ["notes", "other"]
        assert {event.server for event in heard if isinstance(event, ComponentsChanged)} == {"notes", "other"}
        assert set(router.components()) == {"notes", "other"}
        assert "echo" in {tool.name for tool in router.listed_tools("notes")}
        stop()
        count = len(heard)
        router.upstreams["notes"].restart()  # reconnects: its components are listed again
        await router.wait_ready()
    assert len(heard) == count
