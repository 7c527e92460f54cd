"""How an MCP client's ``call_tool`` reaches :meth:`Router.call`: straight from the SDK's ``tools/call`` handler.

Why not as an ordinary fastmcp tool: a profile of ``serve`` forwarding an echo (issue 17) had fastmcp's tool
machinery (provider lookup, the function tool's dependency injection and argument model, converting the
upstream's result to a ``ToolResult`` and back) as one of the largest shares of the router's own time, for a
call whose answer is passed through unchanged. So ``tools/call`` naming ``call_tool`` is answered here, at the
low-level server, and every other tool keeps fastmcp's path.

What a call still gets, as before: fastmcp's middleware chain (the stop drain, the client notifier, any
middleware added later), the request's fastmcp ``Context`` (progress, upstream logs and asks reach the
client through it), the same argument check and message, and the same error results. What it no longer pays
for: the tool lookup, the argument model built per call, and re-building the upstream's result.

``call_tool`` stays registered as a fastmcp tool too (``tools/list`` shows it, and ``FastMCP.call_tool``
reaches it, as the pinned tools do); both paths run :meth:`CallTool.forward`. On stdio, the wire lane
(:mod:`discovery_router.mcp.wire_calls`) reads ``tools/call`` requests itself and calls this same handler.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.exceptions import FastMCPError, ToolError
from fastmcp.server.middleware import MiddlewareContext
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import MISSING_REQUIRED_CLIENT_CAPABILITY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field, ValidationError, validate_call

from discovery_router._compat import low_level_server, run_tool_call_middleware
from discovery_router.errors import RouterError
from discovery_router.front import FrontContext
from discovery_router.mcp import render
from discovery_router.mcp.context import front_context
from discovery_router.router import Router

logger = logging.getLogger(__name__)

CALL_TOOL = "call_tool"

CallResult = mcp_types.CallToolResult | mcp_types.InputRequiredResult


ToolId = Annotated[str, Field(description="Tool id from search_tools, `<server>/<tool>`.")]
ToolArguments = Annotated[dict[str, Any] | str | None, Field(description="The tool's arguments, as an object.")]
"""``call_tool``'s parameters, written once: fastmcp's tool (its schema in ``tools/list``) and the check here."""


def call_tool_parameters(name: ToolId, arguments: ToolArguments = None) -> tuple[str, dict[str, Any] | str | None]:
    return name, arguments


_check_arguments = validate_call(call_tool_parameters)
PARAMETER_NAMES = ["name", "arguments"]


def answer_error(error: RouterError | str) -> ToolError:
    """A meta-tool's refusal, for the model to read and act on.

    Logged by fastmcp at debug only: a model's mistake or an unreachable server is the call's answer (and
    its audit line), not an error line on the operator's terminal at every call.
    """
    return ToolError(str(error), log_level=logging.DEBUG)


def error_result(text: str) -> mcp_types.CallToolResult:
    """A refused or failed call as the client sees it (fastmcp answers a tool's error the same way)."""
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)], is_error=True)


class CallTool:
    """``call_tool`` for both paths: :meth:`forward` runs it; :meth:`install` answers ``tools/call`` with it."""

    def __init__(self, mcp: FastMCP, router: Router) -> None:
        self._mcp, self._router = mcp, router

    async def forward(self, name: str, arguments: dict[str, Any] | str | None, front: FrontContext) -> CallResult:
        """Run one call through the router (governance, validation, the upstream); a refusal is a ToolError.

        The answer waits for the upstream's progress and log lines relayed before it (``front.delivered``).
        """
        refusal: ToolError | None = None
        try:
            result = await self._router.call(name, arguments, front=front)
        except RouterError as exc:
            refusal = answer_error(exc)
        if front.delivered is not None:
            await front.delivered()
        if refusal is not None:
            raise refusal
        return result

    def install(self) -> None:
        """Answer ``tools/call`` of ``call_tool`` here; every other tool keeps fastmcp's handler."""
        low = low_level_server(self._mcp)
        general = low.get_request_handler("tools/call")

        async def tools_call(ctx: Any, params: mcp_types.CallToolRequestParams) -> Any:
            if params.name != CALL_TOOL:
                return await general.handler(ctx, params)
            return await self.answer(ctx, params)

        low.add_request_handler("tools/call", general.params_type, tools_call)

    async def answer(self, ctx: Any, params: mcp_types.CallToolRequestParams) -> Any:
        """One ``tools/call`` of ``call_tool`` under the SDK request context ``ctx`` (bound by the caller).

        Reached through the ``tools/call`` handler, from the SDK's runner or from the stdio wire lane
        (:mod:`discovery_router.mcp.wire_calls`), which binds the same context.
        """
        async with Context(fastmcp=self._mcp) as fastmcp_ctx:

            async def run(context: MiddlewareContext[Any]) -> CallResult:
                message = context.message  # a middleware may have rewritten it
                try:
                    name, arguments = _check_arguments(**(message.arguments or {}))
                except ValidationError as exc:
                    raise answer_error(render.argument_mistakes(CALL_TOOL, PARAMETER_NAMES, exc.errors())) from None
                front = front_context(fastmcp_ctx, message)
                try:
                    return await self.forward(name, arguments, front)
                except FastMCPError:
                    raise
                except MCPError as exc:
                    if exc.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY:
                        raise  # the request cannot be served at all: a wire error, as fastmcp answers it
                    logger.error("Error calling tool %r", CALL_TOOL, exc_info=True)
                    raise ToolError(f"Error calling tool {CALL_TOOL!r}: {exc}") from exc
                except Exception as exc:  # what fastmcp makes of a tool's crash: an error result saying why
                    logger.error("Error calling tool %r", CALL_TOOL, exc_info=True)
                    raise ToolError(f"Error calling tool {CALL_TOOL!r}: {exc}") from exc

            context = MiddlewareContext(
                message=params, source="client", type="request", method="tools/call", fastmcp_context=fastmcp_ctx
            )
            try:
                result = await run_tool_call_middleware(self._mcp, context, run)
            except FastMCPError as exc:  # a refusal (ours or a middleware's) is the call's answer, not a wire error
                logger.log(getattr(exc, "log_level", None) or logging.ERROR, "Error calling tool %r", CALL_TOOL)
                return error_result(str(exc))
        if isinstance(result, mcp_types.InputRequiredResult) and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            raise MCPError(
                code=mcp_types.INVALID_PARAMS,
                message="an InputRequiredResult cannot be sent on a handshake-era connection",
            )
        return result
