"""The MCP face of the router: three tools over :class:`Router`, plus the upstreams' resources and prompts.

Tools stay behind search; resources, resource templates and prompts pass
through (:mod:`discovery_router.mcp.passthrough`), and clients hear when they
change (:mod:`discovery_router.mcp.notify`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as FastMCPValidationError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import InputRequiredToolResult, ToolResult
from mcp.server.request_state import RequestStateSecurity
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from discovery_router import __version__
from discovery_router._compat import low_level_server

from discovery_router.mcp import render
from discovery_router.paths import APP_NAME
from discovery_router.mcp.context import front_context
from discovery_router.errors import RouterError
from discovery_router.events import CatalogChanged, ComponentsChanged, ResourceUpdated, RouterEvent
from discovery_router._compat import connection_of
from discovery_router.mcp.notify import ClientNotifier
from discovery_router.mcp.passthrough import AmbiguousPromptNames, UpstreamComponents
from discovery_router.config.watch import ConfigWatcher
from discovery_router.mcp.manage import add_management_tools
from discovery_router.mcp.pinned import META_TOOLS, PinnedTools, pinned_entries, pinned_names
from discovery_router.router import Router

INSTRUCTIONS = (
    "This server routes to many tools on other MCP servers. Find one with search_tools, "
    "read its input schema with describe_tool, then run it with call_tool using the id from the search results."
)

SEARCH_DESCRIPTION = (
    "Search the available tools by describing the task in plain words. Returns the best matches, one per "
    "line, as `<server>/<tool>: summary`. Use the id with describe_tool (for its parameters) and call_tool. "
    "For a multi-step task, also pass your plan as `steps`."
)
STEPS_DESCRIPTION = "Multi-step task: your plan, one short step each; returns tools per step."
DESCRIBE_DESCRIPTION = (
    "Get one tool's full description and JSON input schema (plus output schema and annotations when it has "
    "them). Pass an id from search_tools, e.g. `time/get_current_time`. Call this before call_tool."
)
CALL_DESCRIPTION = (
    "Run a tool found with search_tools. `name` is its id from the search results; `arguments` is an object "
    "matching the schema from describe_tool. Invalid arguments are rejected with the reason, and nothing is run."
)

_READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}


def build_server(
    router: Router,
    *,
    name: str = APP_NAME,
    config_path: Path | None = None,
    state_security: RequestStateSecurity | None = None,
) -> FastMCP:
    """A FastMCP server that starts the router's upstreams with its lifespan.

    With ``config_path`` (``serve``), the file is watched and applied live, and ``router.manage_servers``
    lets the agent edit it. ``state_security`` seals ``requestState`` with a key ring shared by every replica
    (:mod:`discovery_router.mcp.state_key`); None keeps the framework's random per-process key.
    """
    watcher = ConfigWatcher(router, config_path) if config_path is not None else None

    @asynccontextmanager
    async def lifespan(_app: FastMCP) -> AsyncIterator[None]:
        await router.start()
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                await watcher.stop()
            await router.stop()

    components = UpstreamComponents(router)

    async def subscribe(uri: str) -> None:
        located = components.locate(uri)
        if located is not None:
            await router.subscribe(*located)

    async def unsubscribe(uri: str) -> None:
        located = components.locate(uri)
        if located is not None:
            await router.unsubscribe(*located)

    notifier = ClientNotifier(subscribe, unsubscribe)
    pinned_changed = _pinned_watch(router, notifier)

    def tell_clients(event: RouterEvent) -> None:
        if isinstance(event, ComponentsChanged):
            notifier.components_changed()
        elif isinstance(event, ResourceUpdated):
            notifier.resource_updated(components.front_uri(event.server, event.uri))
        elif isinstance(event, CatalogChanged):
            pinned_changed()

    router.listen(tell_clients)
    mcp = FastMCP(
        name,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        providers=[components],
        middleware=[notifier, AmbiguousPromptNames(components), MetaToolArguments()],
        version=__version__,
        request_state_security=state_security,
    )
    low = low_level_server(mcp)
    notifier.install(low)
    _drop_empty_fastmcp_meta(low)
    _answer_roots_from_the_stdio_client(mcp, router)
    low.add_request_handler("completion/complete", mcp_types.CompleteRequestParams, components.complete)
    mcp.add_provider(PinnedTools(router, mcp))  # router.pinned: a few upstream tools listed directly

    # One source for the limit: the router settings (router.search_limit / max_search_limit in the config).
    default_limit, max_limit = router.settings.search_limit, router.settings.max_search_limit

    async def search_tools(
        query: Annotated[str, Field(description="What you want to do, in plain words.")],
        limit: int = default_limit,  # its bounds are set below, from the settings
        server: Annotated[str | None, Field(description="Only search this server's tools.")] = None,
        steps: Annotated[list[str] | None, Field(description=STEPS_DESCRIPTION)] = None,
    ) -> str:
        try:
            hits = await router.search(query, limit, server, steps=steps)
        except RouterError as exc:
            raise answer_error(exc) from None
        down = router.failed_servers_named(query, server)
        return render.search_results(
            hits,
            router.settings.summary_chars,
            filtered=server is not None,
            down=down,
            starting=router.starting_servers(),
        )

    # Annotations are strings here (PEP 563), evaluated without this closure: give the bounds as a real type.
    search_tools.__annotations__["limit"] = Annotated[
        int, Field(description="How many tools to return.", ge=1, le=max_limit)
    ]
    mcp.tool(name="search_tools", description=SEARCH_DESCRIPTION, output_schema=None, annotations=_READ_ONLY)(
        search_tools
    )

    @mcp.tool(name="describe_tool", description=DESCRIBE_DESCRIPTION, output_schema=None, annotations=_READ_ONLY)
    async def describe_tool(
        name: Annotated[str, Field(description="Tool id from search_tools, `<server>/<tool>`.")],
    ) -> str:
        try:
            entry = await router.describe(name)
        except RouterError as exc:
            raise answer_error(exc) from None
        return render.describe_text(entry)

    @mcp.tool(name="call_tool", description=CALL_DESCRIPTION, output_schema=None)
    async def call_tool(
        name: Annotated[str, Field(description="Tool id from search_tools, `<server>/<tool>`.")],
        arguments: Annotated[
            dict[str, Any] | str | None, Field(description="The tool's arguments, as an object.")
        ] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> ToolResult:
        try:
            result = await router.call(name, arguments, front=front_context(ctx))
        except RouterError as exc:
            raise answer_error(exc) from None
        if isinstance(result, mcp_types.InputRequiredResult):
            return InputRequiredToolResult(result)  # the client answers, then retries this call
        return ToolResult.from_mcp_result(result)

    if watcher is not None and router.settings.manage_servers != "off":  # listed after the meta-tools
        add_management_tools(mcp, router, watcher)
    return mcp


def answer_error(error: RouterError | str) -> ToolError:
    """A meta-tool's refusal, for the model to read and act on.

    Logged by fastmcp at debug only: a model's mistake or an unreachable server is the call's answer (and
    its audit line), not an error line on the operator's terminal at every call.
    """
    return ToolError(str(error), log_level=logging.DEBUG)


class MetaToolArguments(Middleware):
    """A meta-tool called with wrong arguments says what it takes, not pydantic's report and URL.

    Models mostly get these right; when they do not (``args`` for ``arguments``, a
    ``limit`` of 0) one short sentence lets them retry at once.
    """

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        try:
            return await call_next(context)
        except FastMCPValidationError as exc:
            name, cause = context.message.name, exc.__cause__
            if (
                name not in META_TOOLS
                or context.fastmcp_context is None
                or not isinstance(cause, PydanticValidationError)
            ):
                raise
            tool = await context.fastmcp_context.fastmcp.get_tool(name)
            if tool is None:
                raise
            raise answer_error(
                render.argument_mistakes(name, list(tool.parameters.get("properties", {})), cause.errors())
            ) from None


def _pinned_watch(router: Router, notifier: ClientNotifier) -> Callable[[], None]:
    """Tell clients ``tools/list_changed`` when the set of pinned tools changes (a server came, went, re-listed)."""
    last: list[frozenset[tuple[str, str]]] = [frozenset()]

    def check() -> None:
        if not router.settings.pinned:
            return
        named = pinned_names(pinned_entries(router.catalog.entries, router.settings.pinned))
        now = frozenset((front, entry.id) for front, entry in named.items())
        if now != last[0]:
            last[0] = now
            notifier.tools_changed()

    return check


def _answer_roots_from_the_stdio_client(mcp: FastMCP, router: Router) -> None:
    """Upstreams asking ``roots/list`` outside a call get the stdio client's roots (see LoneClient).

    Learned when the client finishes its handshake; each time it arrives or says its roots
    changed, the upstreams hear ``notifications/roots/list_changed`` and ask again (servers
    ask at their own start, often before the client is there).
    """
    tasks: set[asyncio.Task[None]] = set()

    def tell_upstreams() -> None:
        task = asyncio.create_task(router.client_roots_changed())  # not on the client's reader: it may be asked
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def initialized(ctx: Any, _params: Any) -> None:
        if Context(fastmcp=mcp).transport == "stdio" and router.lone_client.connected(connection_of(ctx.session)):
            tell_upstreams()

    async def roots_list_changed(ctx: Any, _params: Any) -> None:
        if Context(fastmcp=mcp).transport == "stdio":
            tell_upstreams()

    low_level = low_level_server(mcp)
    low_level.add_notification_handler("notifications/initialized", mcp_types.NotificationParams, initialized)
    low_level.add_notification_handler(
        "notifications/roots/list_changed", mcp_types.NotificationParams, roots_list_changed
    )


def _drop_empty_fastmcp_meta(low: Any) -> None:
    """Leave fastmcp's ``"_meta": {"fastmcp": {"tags": []}}`` out of ``tools/list``.

    fastmcp adds it to every tool and has no switch for it; the router uses no tags,
    and the bytes would be paid in every session's tools/list.
    """
    entry = low.get_request_handler("tools/list")

    async def list_tools(ctx: Any, params: Any) -> Any:
        result = await entry.handler(ctx, params)
        for tool in getattr(result, "tools", ()):
            meta = tool.meta
            if meta and meta.get("fastmcp") == {"tags": []}:
                tool.meta = {key: value for key, value in meta.items() if key != "fastmcp"} or None
        return result

    low.add_request_handler("tools/list", entry.params_type, list_tools)
