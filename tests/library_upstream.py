"""A FastMCP upstream with everything that is not a plain tool: resources, templates, prompts,
subscriptions, and tools that log, report progress, ask the client (sampling, elicitation,
roots) and return every content type.

Asks work in both protocol eras: imperatively (``ctx.elicit``/``ctx.sample``) on a
handshake-era connection, and by the 2026-07-28 guard pattern (return an
``InputRequiredResult``, read ``ctx.input_responses`` on the retry) otherwise.
Run as a script (``python library_upstream.py``) to serve it on stdio.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import mcp_types as t
from fastmcp import Context, FastMCP
from fastmcp.tools.base import ToolResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

AUDIO = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
LOGO = bytes(range(256))  # every byte value, to prove blobs pass unchanged


def _modern(ctx: Context) -> bool:
    return ctx.request_context is not None and ctx.request_context.protocol_version in MODERN_PROTOCOL_VERSIONS


async def _ask(ctx: Context, key: str, request: t.ServerRequest, result_type: type) -> Any:
    """One client answer in either era: None means "return the InputRequiredResult first"."""
    if _modern(ctx):
        responses = ctx.input_responses or {}
        return responses.get(key)
    session = ctx.session
    return await session.send_request(request=request, result_type=result_type)


def _input_required(key: str, request: t.ServerRequest) -> ToolResult:
    return t.InputRequiredResult(input_requests={key: request}, request_state=f"asked:{key}")  # type: ignore[return-value]


def build_library(name: str = "library") -> FastMCP:
    mcp = FastMCP(name)

    @mcp.resource("docs://readme", mime_type="text/markdown")
    def readme() -> str:
        """The library's read-me."""
        return f"# {name}\nWelcome."

    @mcp.resource("docs://logo", mime_type="application/octet-stream")
    def logo() -> bytes:
        """A binary logo."""
        return LOGO

    @mcp.resource("docs://pages/{page}")
    def page(page: str) -> str:
        """One page of the docs."""
        return f"{name} page {page}"

    @mcp.prompt
    def summarize(topic: str) -> str:
        """Ask for a summary of a topic."""
        return f"Summarize {topic} in one line ({name})."

    @mcp.tool
    async def chatty(steps: int, ctx: Context) -> str:
        """Log and report progress while working."""
        for step in range(steps):
            await ctx.info(f"step {step} of {steps}")
            await ctx.report_progress(step + 1, steps, f"step {step + 1}")
        return f"done {steps}"

    @mcp.tool
    async def nap(seconds: float) -> str:
        """Sleep, to keep a call in flight."""
        await asyncio.sleep(seconds)
        return f"slept {seconds:g}"

    @mcp.tool
    async def confirm_order(item: str, ctx: Context) -> str:
        """Ask the user to confirm an order (elicitation)."""
        request = t.ElicitRequest(
            params=t.ElicitRequestFormParams(
                message=f"Order {item}?",
                requested_schema={
                    "type": "object",
                    "properties": {"quantity": {"type": "integer"}},
                    "required": ["quantity"],
                },
            )
        )
        answer = await _ask(ctx, "confirm", request, t.ElicitResult)
        if answer is None:
            return _input_required("confirm", request)
        if answer.action != "accept":
            return f"order {answer.action}"
        return f"ordered {answer.content['quantity']} x {item}"

    @mcp.tool
    async def write_poem(topic: str, ctx: Context) -> str:
        """Ask the client's model for a poem (sampling)."""
        request = t.CreateMessageRequest(
            params=t.CreateMessageRequestParams(
                messages=[
                    t.SamplingMessage(role="user", content=t.TextContent(type="text", text=f"poem about {topic}"))
                ],
                max_tokens=50,
                system_prompt="be brief",
            )
        )
        answer = await _ask(ctx, "poem", request, t.CreateMessageResult)
        if answer is None:
            return _input_required("poem", request)
        return f"poem ({answer.model}): {answer.content.text}"

    @mcp.tool
    async def client_roots(ctx: Context) -> str:
        """List the client's roots."""
        request = t.ListRootsRequest()
        answer = await _ask(ctx, "roots", request, t.ListRootsResult)
        if answer is None:
            return _input_required("roots", request)
        return ", ".join(str(root.uri) for root in answer.roots)

    @mcp.tool
    async def touch_readme(ctx: Context) -> str:
        """Tell subscribers the read-me changed (handshake-era connections)."""
        await ctx.session.send_resource_updated("docs://readme")
        return "touched"

    later: set[asyncio.Task[None]] = set()

    @mcp.tool
    async def answer_then_log(text: str, ctx: Context) -> str:
        """Answer at once, then log a line about this call (as servers that log on completion do)."""
        session = ctx.session

        async def log_later() -> None:
            await asyncio.sleep(0.3)
            await session.send_log_message(level="info", data=f"finished {text}", logger="library")

        task = asyncio.get_running_loop().create_task(log_later())
        later.add(task)
        task.add_done_callback(later.discard)
        return f"answered {text}"

    @mcp.tool
    def every_content() -> ToolResult:
        """Return one of each content type."""
        return ToolResult(
            content=[
                t.TextContent(type="text", text="text ✓"),
                t.ImageContent(type="image", data=base64.b64encode(LOGO).decode(), mime_type="image/png"),
                t.AudioContent(type="audio", data=AUDIO, mime_type="audio/wav"),
                t.EmbeddedResource(
                    type="resource",
                    resource=t.TextResourceContents(uri="docs://readme", mime_type="text/markdown", text="embedded"),
                ),
                t.ResourceLink(type="resource_link", uri="docs://pages/1", name="page 1", mime_type="text/plain"),
            ],
            structured_content={"kinds": 5},
        )

    return mcp


if __name__ == "__main__":
    import os

    build_library(os.environ.get("LIBRARY_NAME", "library")).run(transport="stdio", show_banner=False)
