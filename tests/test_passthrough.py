"""Everything besides tools passes through: resources, templates, prompts, subscriptions, list changes,
and what rides on a call (logs, progress, sampling / elicitation / roots asks, every content type).

The upstream is tests/library_upstream.py, in memory (it then negotiates the 2026-07-28 protocol)
or as a stdio subprocess pinned to the handshake era (``"protocol": "legacy"``). The client is a
real fastmcp Client of either era talking to the router's MCP server.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as t
import pytest
from fastmcp import Client
from fastmcp.client.messages import MessageHandler
from mcp import MCPError
from mcp.client.subscriptions import listen
from mcp.shared.subscriptions import ResourcesListChanged

from discovery_router.router import Router
from discovery_router.mcp.server import build_server
from tests.conftest import FAST, TESTS, config_router
from tests.library_upstream import LOGO, build_library

ERAS = ["auto", "legacy"]
"""Client modes: "auto" negotiates 2026-07-28 with our server, "legacy" the initialize handshake."""


def library_stdio(name: str = "library") -> dict:
    return {
        "command": sys.executable,
        "args": [str(TESTS / "library_upstream.py")],
        "protocol": "legacy",
        "env": {"PYTHONPATH": str(TESTS.parent), "LIBRARY_NAME": name},
    }


class Recorder(MessageHandler):
    """Keeps every notification the router sends the client."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def on_notification(self, message: Any) -> None:
        self.seen.append(message)

    def methods(self) -> list[str]:
        return [m.method for m in self.seen]

    async def wait_for(self, method: str, timeout: float = 10) -> None:
        async def arrived() -> None:
            while method not in self.methods():
                await asyncio.sleep(0.02)

        await asyncio.wait_for(arrived(), timeout)


class Answers:
    """The client's side of upstream asks; records what it was asked."""

    def __init__(self, elicit_action: str = "accept") -> None:
        self.asked: list[str] = []
        self.elicit_action = elicit_action

    async def elicit(self, message: str, response_type: Any, params: Any, context: Any) -> Any:
        self.asked.append(f"elicit:{message}")
        return t.ElicitResult(
            action=self.elicit_action, content={"quantity": 3} if self.elicit_action == "accept" else None
        )

    async def sample(self, messages: Any, params: t.CreateMessageRequestParams, context: Any) -> Any:
        self.asked.append(f"sample:{params.system_prompt}:{params.max_tokens}")
        return t.CreateMessageResult(
            role="assistant", model="test-model", content=t.TextContent(type="text", text="roses are red")
        )


@asynccontextmanager
async def front(router: Router, mode: str, answers: Answers | None = None, **kwargs: Any) -> AsyncIterator[Client]:
    handlers: dict[str, Any] = {}
    if answers is not None:
        handlers = {
            "elicitation_handler": answers.elicit,
            "sampling_handler": answers.sample,
            "roots": ["file:///work/project"],
        }
    async with Client(build_server(router), mode=mode, **handlers, **kwargs) as client:
        yield client


async def call(client: Client, tool: str, arguments: dict | None = None) -> Any:
    return await client.call_tool("call_tool", {"name": tool, "arguments": arguments or {}}, raise_on_error=False)


def text_of(result: Any) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, t.TextContent))


# -- resources, templates, prompts ---------------------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_unique_uris_pass_unchanged_and_prompts_get_a_server_prefix(mode):
    async with front(Router({"library": build_library()}, FAST), mode) as client:
        assert {str(r.uri) for r in await client.list_resources()} == {"docs://readme", "docs://logo"}
        assert [x.uri_template for x in await client.list_resource_templates()] == ["docs://pages/{page}"]
        assert [p.name for p in await client.list_prompts()] == ["library/summarize"]
        readme = await client.read_resource("docs://readme")
        assert readme[0].text == "# library\nWelcome." and readme[0].mime_type == "text/markdown"
        assert (await client.read_resource("docs://pages/42"))[0].text == "library page 42"
        prompt = await client.get_prompt("library/summarize", {"topic": "tides"})
        assert prompt.messages[0].content.text == "Summarize tides in one line (library)."
        # tools stay behind search: only the meta-tools are listed
        assert {tool.name for tool in await client.list_tools()} == {"search_tools", "describe_tool", "call_tool"}


@pytest.mark.parametrize("mode", ERAS)
async def test_colliding_uris_are_rewritten_reversibly_per_server(mode):
    router = Router({"library": build_library(), "other": build_library("other")}, FAST)
    async with front(router, mode) as client:
        uris = {str(r.uri) for r in await client.list_resources()}
        assert uris == {f"mcp-router://{s}/docs://{n}" for s in ("library", "other") for n in ("readme", "logo")}
        templates = {x.uri_template for x in await client.list_resource_templates()}
        assert templates == {"mcp-router://library/docs://pages/{page}", "mcp-router://other/docs://pages/{page}"}
        for server in ("library", "other"):
            readme = await client.read_resource(f"mcp-router://{server}/docs://readme")
            assert readme[0].text == f"# {server}\nWelcome."
            page = await client.read_resource(f"mcp-router://{server}/docs://pages/7")
            assert page[0].text == f"{server} page 7"
        assert {p.name for p in await client.list_prompts()} == {"library/summarize", "other/summarize"}


async def test_binary_resources_arrive_byte_for_byte():
    async with front(Router({"library": build_library()}, FAST), "auto") as client:
        logo = await client.read_resource("docs://logo")
        assert base64.b64decode(logo[0].blob) == LOGO


async def test_unknown_resource_and_prompt_get_clear_errors():
    async with front(Router({"library": build_library(), "other": build_library("other")}, FAST), "auto") as client:
        with pytest.raises(MCPError, match="Resource not found: 'docs://nowhere'"):
            await client.read_resource("docs://nowhere")
        with pytest.raises(MCPError, match="Unknown prompt: 'library/nope'"):
            await client.get_prompt("library/nope", {})


# -- along a call ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "mode"), [("2026", "auto"), ("2026", "legacy"), ("handshake", "legacy"), ("handshake", "auto")]
)
async def test_upstream_asks_are_relayed_to_the_client_and_answered(upstream, mode):
    """Every era pairing. 2026-era upstream: its InputRequiredResult goes to a 2026 client unresolved, or is
    driven here and pushed to a handshake client. Handshake-era upstream: its request is pushed to a handshake
    client, or bridged to a 2026 client (the upstream waits mid-call while the client retries with the answer)."""
    answers = Answers()
    router = (
        Router({"library": build_library()}, FAST)
        if upstream == "2026"
        else config_router({"library": library_stdio()})
    )
    async with front(router, mode, answers) as client:
        assert text_of(await call(client, "library/confirm_order", {"item": "tea"})) == "ordered 3 x tea"
        assert text_of(await call(client, "library/write_poem", {"topic": "sea"})) == "poem (test-model): roses are red"
        assert text_of(await call(client, "library/client_roots")) == "file:///work/project"
    assert answers.asked == ["elicit:Order tea?", "sample:be brief:50"]


async def test_a_declined_elicitation_comes_back_as_declined():
    async with front(Router({"library": build_library()}, FAST), "auto", Answers("decline")) as client:
        assert text_of(await call(client, "library/confirm_order", {"item": "tea"})) == "order decline"


async def test_concurrent_asks_from_a_handshake_era_upstream_are_refused_not_guessed():
    """Two calls in flight from different connections: an ask could belong to either, so it is refused."""
    async with front(config_router({"library": library_stdio()}), "auto", Answers()) as client:
        await call(client, "library/chatty", {"steps": 0})  # connected
        slow = asyncio.create_task(call(client, "library/nap", {"seconds": 3}))
        await asyncio.sleep(0.5)
        asked = await call(client, "library/confirm_order", {"item": "tea"})
        assert text_of(await slow) == "slept 3"
    assert asked.is_error and "cannot tell which one asked" in text_of(asked)


async def test_asks_the_client_cannot_answer_are_refused_with_the_reason():
    # a handshake-era client without an elicitation handler did not declare the capability
    async with front(config_router({"library": library_stdio()}), "legacy") as client:
        result = await call(client, "library/confirm_order", {"item": "tea"})
        assert result.is_error and "elicitation" in text_of(result)


@pytest.mark.parametrize("mode", ERAS)
async def test_upstream_logs_and_progress_reach_the_calling_client(mode):
    logs: list[str] = []
    progress: list[tuple[float, float | None]] = []

    async def on_log(message: Any) -> None:
        logs.append(message.data.get("msg") if isinstance(message.data, dict) else str(message.data))

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    router = config_router({"library": library_stdio()})
    async with front(router, mode, log_handler=on_log) as client:
        result = await client.call_tool(
            "call_tool", {"name": "library/chatty", "arguments": {"steps": 3}}, progress_handler=on_progress
        )
        assert text_of(result) == "done 3"
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert [line for line in logs if line.startswith("step")] == ["step 0 of 3", "step 1 of 3", "step 2 of 3"]


async def test_every_content_type_passes_unchanged():
    upstream = build_library()
    async with Client(upstream) as direct:
        expected = await direct.call_tool_mcp("every_content", {})
    async with front(Router({"library": upstream}, FAST), "auto") as client:
        routed = await client.call_tool_mcp("call_tool", {"name": "library/every_content"})
    assert [c.model_dump() for c in routed.content] == [c.model_dump() for c in expected.content]
    assert {c.type for c in routed.content} == {"text", "image", "audio", "resource", "resource_link"}
    assert routed.structured_content == expected.structured_content


# -- change notifications and subscriptions -------------------------------------


async def test_resource_list_changes_reach_handshake_era_clients():
    upstream = build_library()
    router = Router({"library": upstream}, FAST)
    recorder = Recorder()
    async with front(router, "legacy", message_handler=recorder) as client:
        await client.list_resources()
        recorder.seen.clear()
        upstream.resource("docs://changelog")(lambda: "v2")
        router.upstreams["library"].request_refresh()  # what the upstream's list_changed triggers
        await recorder.wait_for("notifications/resources/list_changed")
        assert "docs://changelog" in {str(r.uri) for r in await client.list_resources()}


async def test_resource_list_changes_reach_2026_clients_on_a_listen_stream():
    upstream = build_library()
    router = Router({"library": upstream}, FAST)
    async with front(router, "auto") as client:
        await client.list_resources()
        async with listen(client.session, resources_list_changed=True) as subscription:
            upstream.resource("docs://changelog")(lambda: "v2")
            router.upstreams["library"].request_refresh()
            event = await asyncio.wait_for(anext(aiter(subscription)), 10)
        assert isinstance(event, ResourcesListChanged)
        assert "docs://changelog" in {str(r.uri) for r in await client.list_resources()}


async def test_resource_updates_reach_subscribed_clients():
    recorder = Recorder()
    async with front(config_router({"library": library_stdio()}), "legacy", message_handler=recorder) as client:
        await client.session.subscribe_resource("docs://readme")
        recorder.seen.clear()
        await call(client, "library/touch_readme")
        await recorder.wait_for("notifications/resources/updated")
        updated = [m for m in recorder.seen if m.method == "notifications/resources/updated"]
        assert [str(m.params.uri) for m in updated] == ["docs://readme"]


async def test_changes_of_a_2026_era_upstream_arrive_on_its_listen_stream():
    """A router behind a router: the inner one announces changes only on subscriptions/listen."""
    library = build_library()
    inner = Router({"library": library}, FAST)
    outer = Router({"inner": build_server(inner)}, FAST)
    async with outer:
        await outer.wait_ready()
        upstream = outer.upstreams["inner"]
        assert {str(r.uri) for r in upstream.components.resources} == {"docs://readme", "docs://logo"}
        library.resource("docs://changelog")(lambda: "v2")
        inner.upstreams["library"].request_refresh()  # the inner router notices; the outer must hear of it
        for _ in range(100):
            if "docs://changelog" in {str(r.uri) for r in upstream.components.resources}:
                break
            await asyncio.sleep(0.1)
        assert "docs://changelog" in {str(r.uri) for r in upstream.components.resources}


async def test_bare_prompt_names_resolve_only_when_unique_and_completions_are_forwarded():
    async with front(Router({"library": build_library(), "other": build_library("other")}, FAST), "auto") as client:
        with pytest.raises(
            MCPError,
            match=r"Prompt name 'summarize' is ambiguous: use one of library/summarize, "
            r"other/summarize\.",
        ):
            await client.get_prompt("summarize", {"topic": "x"})  # two servers have it (issue 13: was "Unknown prompt")
        with pytest.raises(MCPError, match="Unknown prompt: 'library/nope'"):
            await client.get_prompt("library/nope", {})  # a name nobody has is still unknown
    upstream = build_library()

    @upstream.prompt
    def greet(name: str) -> str:
        """Greet someone."""
        return f"Hello {name}"

    @upstream.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str] | None:
        return [n for n in ("Ada", "Alan", "Grace") if n.startswith(argument.value)]

    async with front(Router({"library": upstream}, FAST), "auto") as client:
        assert (await client.get_prompt("greet", {"name": "Ada"})).messages[0].content.text == "Hello Ada"
        completion = await client.complete(
            t.PromptReference(type="ref/prompt", name="library/greet"), {"name": "name", "value": "A"}
        )
        assert completion.values == ["Ada", "Alan"]
