"""The MCP reference server `@modelcontextprotocol/server-everything` as a real stdio upstream.

It is a Node.js server (installed once from npm by tests/npm_packages.py; skipped without node/npm),
so these tests see what a client of the router sees of a server written with another SDK: its tool
names with dashes, its content types (image, embedded resource, resource links, annotations,
structured content) and its progress notifications. See tests/fixtures/server_everything_notes.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import pytest
from fastmcp import Client

from discovery_router.router import Router
from discovery_router.mcp.server import build_server
from tests.conftest import config_router
from tests.npm_packages import server_everything


def everything_entry() -> dict:
    node, entry = server_everything()
    return {"command": node, "args": [str(entry), "stdio"], "description": "MCP reference test server"}


def dump(result) -> dict:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.fixture
async def everything_router() -> AsyncIterator[Router]:
    async with config_router({"everything": everything_entry()}) as router:
        assert await router.wait_ready(), router.status()
        yield router


# server-everything sends its client `roots/list` ~350 ms after `initialized`, outside any request; the
# client fixture waits past it, so no call of these tests is in flight then (the last two tests cover it).
SETTLE = 1.0


@pytest.fixture
async def everything_client() -> AsyncIterator[Client]:
    """A real MCP client talking, in memory, to the router, which runs server-everything over stdio."""
    router = config_router({"everything": everything_entry()})
    async with Client(build_server(router)) as client:
        assert await router.wait_ready(), router.status()
        await asyncio.sleep(SETTLE)
        yield client


async def test_everything_is_found_and_called_through_the_router(everything_router: Router):
    [status] = everything_router.status()
    assert status.state.value == "connected" and status.tool_count >= 12
    hits = await everything_router.search("echo a message back", limit=3, server="everything")
    assert "everything/echo" in [hit.id for hit in hits]

    echoed = await everything_router.call("everything/echo", {"message": "hello router"})
    assert echoed.is_error is False
    assert [block.text for block in echoed.content] == ["Echo: hello router"]

    hits = await everything_router.search("add two numbers", limit=3, server="everything")
    assert "everything/get-sum" in [hit.id for hit in hits]
    summed = await everything_router.call("everything/get-sum", {"a": 2, "b": 3.5})
    assert summed.content[0].text == "The sum of 2 and 3.5 is 5.5."


async def test_invalid_arguments_are_rejected_before_reaching_node(everything_router: Router):
    from discovery_router.errors import RouterError

    with pytest.raises(RouterError, match="message"):
        await everything_router.call("everything/echo", {"text": "wrong field"})


async def test_call_tool_through_a_real_mcp_client(everything_client: Client):
    result = await everything_client.call_tool_mcp(
        "call_tool", {"name": "everything/echo", "arguments": {"message": "via MCP"}}
    )
    assert result.is_error is False
    assert result.content[0].text == "Echo: via MCP"

    described = await everything_client.call_tool_mcp("describe_tool", {"name": "everything/get-sum"})
    lines = described.content[0].text.splitlines()
    assert lines[0] == "everything/get-sum"
    schema = json.loads(next(line for line in lines if line.startswith("inputSchema: ")).partition(": ")[2])
    assert schema["required"] == ["a", "b"] and schema["properties"]["a"]["type"] == "number"


async def test_content_types_pass_through_unchanged(everything_client: Client):
    image = await everything_client.call_tool_mcp("call_tool", {"name": "everything/get-tiny-image"})
    assert [block.type for block in image.content] == ["text", "image", "text"]
    assert image.content[1].mime_type == "image/png"
    assert base64.b64decode(image.content[1].data).startswith(b"\x89PNG")

    annotated = await everything_client.call_tool_mcp(
        "call_tool",
        {"name": "everything/get-annotated-message", "arguments": {"messageType": "error", "includeImage": True}},
    )
    assert dump(annotated)["content"][0]["annotations"] == {"audience": ["user", "assistant"], "priority": 1.0}
    assert annotated.content[-1].type == "image"

    links = await everything_client.call_tool_mcp(
        "call_tool", {"name": "everything/get-resource-links", "arguments": {"count": 2}}
    )
    assert [block.type for block in links.content] == ["text", "resource_link", "resource_link"]
    assert str(links.content[1].uri) == "demo://resource/dynamic/blob/1"

    embedded = await everything_client.call_tool_mcp(
        "call_tool",
        {"name": "everything/get-resource-reference", "arguments": {"resourceType": "Text", "resourceId": 3}},
    )
    resource = next(block for block in embedded.content if block.type == "resource")
    assert str(resource.resource.uri) == "demo://resource/dynamic/text/3"
    assert resource.resource.text

    structured = await everything_client.call_tool_mcp(
        "call_tool", {"name": "everything/get-structured-content", "arguments": {"location": "Chicago"}}
    )
    assert set(structured.structured_content) == {"temperature", "conditions", "humidity"}


async def long_operation(client: Client) -> tuple[object, list[tuple[float, float | None]]]:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    result = await client.call_tool_mcp(
        "call_tool",
        {"name": "everything/trigger-long-running-operation", "arguments": {"duration": 1, "steps": 3}},
        progress_handler=on_progress,
    )
    return result, seen


async def test_upstream_progress_reaches_the_client(everything_client: Client):
    result, seen = await long_operation(everything_client)
    assert result.is_error is False
    assert "Long running operation completed" in result.content[0].text
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_a_call_in_flight_survives_the_upstreams_own_roots_ask():
    """The upstream's unprompted roots/list lands during this call; a client without roots must not fail."""
    router = config_router({"everything": everything_entry()})
    async with Client(build_server(router)) as client:
        assert await router.wait_ready(), router.status()
        result, seen = await long_operation(client)  # at once: the roots/list lands during this call
    assert result.is_error is False and seen == [(1, 3), (2, 3), (3, 3)]


async def test_progress_survives_a_relayed_roots_ask():
    """The roots/list is bridged as an input-required round; later progress must reach the new round."""
    router = config_router({"everything": everything_entry()})
    async with Client(build_server(router), roots=["file:///tmp/discovery-router-tests"]) as client:
        assert await router.wait_ready(), router.status()
        result, seen = await long_operation(client)
    assert result.is_error is False
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_its_resources_templates_and_prompts_pass_through(everything_client):
    uris = {str(r.uri) for r in await everything_client.list_resources()}
    assert "demo://resource/static/document/architecture.md" in uris
    document = await everything_client.read_resource("demo://resource/static/document/architecture.md")
    assert document[0].mime_type == "text/markdown" and document[0].text.strip()
    templates = {t.uri_template for t in await everything_client.list_resource_templates()}
    assert "demo://resource/dynamic/text/{resourceId}" in templates
    dynamic = await everything_client.read_resource("demo://resource/dynamic/text/2")
    assert "2" in dynamic[0].text
    prompts = {p.name for p in await everything_client.list_prompts()}
    assert {"everything/simple-prompt", "everything/args-prompt"} <= prompts
    rendered = await everything_client.get_prompt("everything/args-prompt", {"city": "Lisbon"})
    assert "Lisbon" in json.dumps([m.model_dump(mode="json") for m in rendered.messages])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_its_sampling_and_elicitation_reach_the_client(mode):
    """Its mid-call requests: pushed to a handshake-era client, bridged to a 2026-era one."""
    import mcp_types as t

    asked: list[str] = []

    async def sample(messages, params, context):
        asked.append("sample")
        return t.CreateMessageResult(
            role="assistant", model="test-model", content=t.TextContent(type="text", text="a reply from the client")
        )

    async def elicit(message, response_type, params, context):
        asked.append("elicit")
        return t.ElicitResult(action="accept", content={"name": "Ada Lovelace"})

    router = config_router({"everything": everything_entry()})
    async with Client(build_server(router), mode=mode, sampling_handler=sample, elicitation_handler=elicit) as client:
        assert await router.wait_ready(), router.status()
        await asyncio.sleep(SETTLE)
        sampled = await client.call_tool(
            "call_tool",
            {"name": "everything/trigger-sampling-request", "arguments": {"prompt": "hello"}},
            raise_on_error=False,
        )
        assert not sampled.is_error and "a reply from the client" in sampled.content[0].text
        elicited = await client.call_tool(
            "call_tool", {"name": "everything/trigger-elicitation-request"}, raise_on_error=False
        )
        assert not elicited.is_error and "Ada Lovelace" in json.dumps([c.model_dump() for c in elicited.content])
    assert asked == ["sample", "elicit"]


async def test_its_completions_are_forwarded(everything_client):
    import mcp_types as t

    completion = await everything_client.complete(
        t.PromptReference(type="ref/prompt", name="everything/completable-prompt"), {"name": "department", "value": "E"}
    )
    assert completion.values and all(v.lower().startswith("e") for v in completion.values)
