"""The MCP conformance suite's reference server surface, as a FastMCP server.

`@modelcontextprotocol/conformance` checks a server by calling fixed names: tools `test_simple_text`,
`test_image_content`, ..., resources `test://static-text`, ..., prompts `test_simple_prompt`, ....
This server provides exactly those (as the suite's scenario descriptions specify), so the suite can
be run (a) straight against it, to prove the fixture right, and (b) against the router with this
server behind it, so every failure left is the router's.

Run: ``python devkit/conformance_upstream.py stdio`` or ``... http PORT``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.prompts import Message
from fastmcp.tools import Tool
from fastmcp.tools.base import ToolResult
from mcp_types import AudioContent, EmbeddedResource, ImageContent, PromptReference, TextContent, TextResourceContents

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
# 44-byte WAV header + 2 silent 16-bit mono samples at 8 kHz.
WAV_SILENCE = base64.b64encode(
    b"RIFF"
    + (40).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little")
    + (2).to_bytes(2, "little")
    + (16).to_bytes(2, "little")
    + b"data"
    + (4).to_bytes(4, "little")
    + b"\x00\x00\x00\x00"
).decode()

JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


def _text(text: str, *, is_error: bool = False) -> ToolResult:
    return ToolResult(content=[TextContent(type="text", text=text)], is_error=is_error)


async def _elicit(ctx: Context, message: str, schema: dict[str, Any]) -> mcp_types.ElicitResult:
    return await ctx.session.elicit(message=message, requested_schema=schema, related_request_id=ctx.request_id)


def build_conformance_server() -> FastMCP:
    mcp = FastMCP("conformance-fixture", dereference_schemas=False)  # keep $defs for json-schema-2020-12

    # -- tools ---------------------------------------------------------------

    @mcp.tool(description="Returns a simple text response.")
    def test_simple_text() -> ToolResult:
        return _text("This is a simple text response for testing.")

    @mcp.tool(description="Returns a 1x1 PNG image.")
    def test_image_content() -> ToolResult:
        return ToolResult(content=[ImageContent(type="image", data=PNG_1PX, mime_type="image/png")])

    @mcp.tool(description="Returns a short silent WAV clip.")
    def test_audio_content() -> ToolResult:
        return ToolResult(content=[AudioContent(type="audio", data=WAV_SILENCE, mime_type="audio/wav")])

    @mcp.tool(description="Returns an embedded text resource.")
    def test_embedded_resource() -> ToolResult:
        return ToolResult(
            content=[
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri="test://embedded-resource",
                        mime_type="text/plain",
                        text="This is an embedded resource content.",
                    ),
                )
            ]
        )

    @mcp.tool(description="Returns text, an image and an embedded resource.")
    def test_multiple_content_types() -> ToolResult:
        return ToolResult(
            content=[
                TextContent(type="text", text="Multiple content types test:"),
                ImageContent(type="image", data=PNG_1PX, mime_type="image/png"),
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri="test://mixed-content-resource",
                        mime_type="application/json",
                        text=json.dumps({"test": "data", "value": 123}),
                    ),
                ),
            ]
        )

    @mcp.tool(description="Sends three info log messages while it runs.")
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.info("Tool execution started")
        await asyncio.sleep(0.05)
        await ctx.info("Tool processing data")
        await asyncio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    @mcp.tool(description="Always fails.")
    def test_error_handling() -> ToolResult:
        return _text("This tool intentionally returns an error for testing", is_error=True)

    @mcp.tool(description="Reports progress 0, 50 and 100 of 100.")
    async def test_tool_with_progress(ctx: Context) -> str:
        for progress in (0, 50, 100):
            await ctx.report_progress(progress, 100)
            if progress < 100:
                await asyncio.sleep(0.05)
        return "Tool with progress executed successfully"

    @mcp.tool(description="Asks the client's LLM (sampling/createMessage) and returns its answer.")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        result = await ctx.session.create_message(
            messages=[mcp_types.SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        text = getattr(content, "text", None) or json.dumps(
            content.model_dump(mode="json") if hasattr(content, "model_dump") else str(content)
        )
        return f"LLM response: {text}"

    @mcp.tool(description="Asks the user (elicitation/create) for a username and email.")
    async def test_elicitation(message: str, ctx: Context) -> str:
        result = await _elicit(
            ctx,
            message,
            {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                },
                "required": ["username", "email"],
            },
        )
        return f"User response: action={result.action}, content={json.dumps(result.content)}"

    @mcp.tool(description="Elicitation whose schema has a default for every primitive type (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        result = await _elicit(
            ctx,
            "Please review and update the form fields with defaults",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {
                        "type": "string",
                        "description": "User status",
                        "enum": ["active", "inactive", "pending"],
                        "default": "active",
                    },
                    "verified": {"type": "boolean", "description": "Verification status", "default": True},
                },
                "required": [],
            },
        )
        return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"

    @mcp.tool(description="Elicitation with all five enum schema variants (SEP-1330).")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        result = await _elicit(
            ctx,
            "Please select options from the enum fields",
            {
                "type": "object",
                "properties": {
                    "untitledSingle": {
                        "type": "string",
                        "description": "Select one option",
                        "enum": ["option1", "option2", "option3"],
                    },
                    "titledSingle": {
                        "type": "string",
                        "description": "Select one option with titles",
                        "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"},
                        ],
                    },
                    "legacyEnum": {
                        "type": "string",
                        "description": "Select one option (legacy)",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"],
                    },
                    "untitledMulti": {
                        "type": "array",
                        "description": "Select multiple options",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                    },
                    "titledMulti": {
                        "type": "array",
                        "description": "Select multiple options with titles",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {
                            "anyOf": [
                                {"const": "value1", "title": "First Choice"},
                                {"const": "value2", "title": "Second Choice"},
                                {"const": "value3", "title": "Third Choice"},
                            ]
                        },
                    },
                },
                "required": [],
            },
        )
        return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"

    class _RawSchemaTool(Tool):
        async def run(self, arguments: dict[str, Any]) -> ToolResult:
            return _text(f"received: {json.dumps(arguments)}")

    mcp.add_tool(
        _RawSchemaTool(
            name="json_schema_2020_12_tool",
            description="Tool with JSON Schema 2020-12 features",
            parameters=JSON_SCHEMA_2020_12,
        )
    )

    # -- resources -----------------------------------------------------------

    @mcp.resource(
        "test://static-text",
        name="static-text",
        description="A static text resource for testing",
        mime_type="text/plain",
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource(
        "test://static-binary",
        name="static-binary",
        description="A static binary resource (PNG)",
        mime_type="image/png",
    )
    def static_binary() -> bytes:
        return base64.b64decode(PNG_1PX)

    @mcp.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource to subscribe to",
        mime_type="text/plain",
    )
    def watched() -> str:
        return "Watched resource content"

    @mcp.resource(
        "test://template/{id}/data",
        name="template-data",
        description="A resource template with an id parameter",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:  # noqa: A002 - the template's own parameter name
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    subscriptions: set[str] = set()
    mcp.subscriptions = subscriptions  # type: ignore[attr-defined]

    async def on_subscribe(_ctx: Any, params: mcp_types.SubscribeRequestParams) -> mcp_types.EmptyResult:
        subscriptions.add(str(params.uri))
        return mcp_types.EmptyResult()

    async def on_unsubscribe(_ctx: Any, params: mcp_types.UnsubscribeRequestParams) -> mcp_types.EmptyResult:
        subscriptions.discard(str(params.uri))
        return mcp_types.EmptyResult()

    mcp._mcp_server.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams, on_subscribe)
    mcp._mcp_server.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams, on_unsubscribe)

    # -- prompts -------------------------------------------------------------

    @mcp.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[Message]:
        return [Message("This is a simple prompt for testing.")]

    @mcp.prompt(description="A prompt with two required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
        return [Message(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @mcp.prompt(description="A prompt that embeds a resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # noqa: N803 - the suite's name
        return [
            Message(
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
                    ),
                )
            ),
            Message("Please process the embedded resource above."),
        ]

    @mcp.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[Message]:
        return [
            Message(ImageContent(type="image", data=PNG_1PX, mime_type="image/png")),
            Message("Please analyze the image above."),
        ]

    @mcp.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str] | None:
        if isinstance(ref, PromptReference) and ref.name == "test_prompt_with_arguments":
            return [v for v in ("paris", "park", "party", "test-value") if v.startswith(argument.value)]
        return None

    return mcp


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    server = build_conformance_server()
    if transport == "http":
        server.run(
            transport="http", host="127.0.0.1", port=int(sys.argv[2]), show_banner=False, host_origin_protection="auto"
        )
    else:
        server.run(transport="stdio", show_banner=False)
