"""The private fastmcp / MCP SDK attributes the router uses (discovery_router._compat), on the installed releases.

If a fastmcp or SDK upgrade renames one of them, these fail here with the
attribute's name instead of a call failing somewhere deep in the router.
"""

from __future__ import annotations

from fastmcp import Client, Context, FastMCP
from mcp.server.lowlevel.server import Server

from discovery_router._compat import connection_of, low_level_server, session_task


def _server_reporting_connections() -> FastMCP:
    server = FastMCP("compat")

    @server.tool
    def who(ctx: Context) -> str:
        """Identifies the calling connection."""
        connection = connection_of(ctx.session)
        assert connection is not ctx.session, "ServerSession._connection is gone: connection_of fell back"
        return str(id(connection))

    return server


async def test_session_task_is_the_task_holding_the_connection_until_it_closes():
    """``Client._session_state.session_task``: running while connected, done once closed."""
    import asyncio

    client = Client(_server_reporting_connections())
    async with client:
        task = session_task(client)
        assert isinstance(task, asyncio.Task) and not task.done()
    await asyncio.sleep(0)
    assert task.done()


def test_low_level_server_is_the_sdk_server_with_request_handlers():
    low = low_level_server(FastMCP("compat"))
    assert isinstance(low, Server)
    assert callable(low.add_request_handler)


async def test_connection_of_is_stable_per_client_and_differs_between_clients():
    # Handshake-era clients keep one connection for all their requests (a 2026-era request stands alone).
    server = _server_reporting_connections()
    async with Client(server, mode="legacy") as first, Client(server, mode="legacy") as second:
        a1 = (await first.call_tool("who", {})).content[0].text
        a2 = (await first.call_tool("who", {})).content[0].text
        b = (await second.call_tool("who", {})).content[0].text
    assert a1 == a2 != b


async def test_lifespan_of_enters_the_servers_lifespan():
    from contextlib import asynccontextmanager

    from discovery_router._compat import lifespan_of

    entered: list[str] = []

    @asynccontextmanager
    async def lifespan(_app: FastMCP):
        entered.append("in")
        yield
        entered.append("out")

    async with lifespan_of(FastMCP("compat", lifespan=lifespan)):
        assert entered == ["in"]
    assert entered == ["in", "out"]


async def test_connection_ended_reads_the_sdk_dispatcher_flag():
    from discovery_router._compat import connection_ended

    client = Client(_server_reporting_connections())
    async with client:
        dispatcher = client.session._dispatcher  # the names connection_ended reads must exist
        assert dispatcher._closed is False
        assert not connection_ended(client)
    assert connection_ended(client)


async def test_ensure_oauth_initialized_loads_stored_tokens_before_the_flow(tmp_path, monkeypatch):
    """``OAuthClientProvider._initialized`` / ``_initialize``: the stored tokens are in the context at once."""
    import keyring
    from keyring.backends import fail
    from mcp.shared.auth import OAuthToken

    from discovery_router._compat import ensure_oauth_initialized
    from discovery_router.config.model import OAuthSettings, ServerConfig
    from discovery_router.upstreams.oauth import RouterOAuth, TokenStore

    monkeypatch.setenv("DISCOVERY_ROUTER_DATA_DIR", str(tmp_path))
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        config = ServerConfig("compat", "http", url="http://127.0.0.1:9/mcp", oauth=OAuthSettings())
        first = RouterOAuth(config, TokenStore("compat"))
        await first.token_storage_adapter.set_tokens(OAuthToken(access_token="compat-access-token", expires_in=3600))
        provider = RouterOAuth(config, TokenStore("compat"))
        assert provider.context.current_tokens is None
        await ensure_oauth_initialized(provider)
        assert provider.context.current_tokens is not None
        assert provider.context.current_tokens.access_token == "compat-access-token"
        assert provider.context.token_expiry_time is not None
        await ensure_oauth_initialized(provider)  # a second time is a no-op
    finally:
        keyring.set_keyring(previous)


async def test_reset_oauth_state_makes_the_provider_load_the_store_again(tmp_path, monkeypatch):
    """``OAuthClientProvider._initialized``: cleared, the next flow (or ensure_oauth_initialized) reloads."""
    import keyring
    from keyring.backends import fail
    from mcp.shared.auth import OAuthToken

    from discovery_router._compat import ensure_oauth_initialized, reset_oauth_state
    from discovery_router.config.model import OAuthSettings, ServerConfig
    from discovery_router.upstreams.oauth import RouterOAuth, TokenStore

    monkeypatch.setenv("DISCOVERY_ROUTER_DATA_DIR", str(tmp_path))
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        config = ServerConfig("compat", "http", url="http://127.0.0.1:9/mcp", oauth=OAuthSettings())
        store = TokenStore("compat")
        provider = RouterOAuth(config, store)
        await ensure_oauth_initialized(provider)
        assert provider.context.current_tokens is None
        other = RouterOAuth(config, TokenStore("compat"))
        await other.token_storage_adapter.set_tokens(OAuthToken(access_token="later-access-token", expires_in=60))
        store.reload()
        reset_oauth_state(provider)
        await ensure_oauth_initialized(provider)
        assert provider.context.current_tokens is not None
        assert provider.context.current_tokens.access_token == "later-access-token"
    finally:
        keyring.set_keyring(previous)


async def test_run_tool_call_middleware_runs_the_chain_once_with_every_hook():
    """``FastMCP._dispatch_component_middleware``: the router's call_tool path runs fastmcp middleware through it."""
    from fastmcp.server.middleware import Middleware, MiddlewareContext
    import mcp_types

    from discovery_router._compat import run_tool_call_middleware

    seen: list[str] = []

    class Hooks(Middleware):
        async def on_message(self, context, call_next):
            seen.append("message")
            return await call_next(context)

        async def on_request(self, context, call_next):
            seen.append("request")
            return await call_next(context)

        async def on_call_tool(self, context, call_next):
            seen.append("call_tool")
            return await call_next(context)

    server = FastMCP("compat", middleware=[Hooks()])
    message = mcp_types.CallToolRequestParams(name="x", arguments={})
    context = MiddlewareContext(message=message, source="client", type="request", method="tools/call")

    async def inner(ctx):
        return ctx.message.name

    assert await run_tool_call_middleware(server, context, inner) == "x"
    assert seen == ["message", "request", "call_tool"]


# -- what the stdio wire lane borrows from the SDK's runner ----------------------------------------

_ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def test_has_modern_envelope_reads_params_as_the_runner_does():
    from discovery_router._compat import has_modern_envelope

    assert has_modern_envelope({"_meta": _ENVELOPE}) and not has_modern_envelope({"_meta": {"progressToken": 1}})
    assert not has_modern_envelope(None)


def test_wire_results_shape_a_result_per_era_with_the_server_info_stamp():
    import mcp_types

    from discovery_router._compat import WireResults

    shape = WireResults(low_level_server(FastMCP("compat")))
    result = mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text="hi")])
    modern = shape("2026-07-28", result)
    assert (
        modern["resultType"] == "complete" and modern["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "compat"
    )
    legacy = shape("2025-11-25", result)
    assert (
        "resultType" not in legacy and "_meta" not in legacy and legacy["content"] == [{"type": "text", "text": "hi"}]
    )


def test_has_teardown_reads_the_connections_exit_stack():
    from mcp.server.connection import Connection

    from discovery_router._compat import has_teardown

    connection = Connection.from_envelope("2026-07-28", None, {})
    assert not has_teardown(connection)
    connection.exit_stack.callback(lambda: None)
    assert has_teardown(connection)


def test_seal_request_state_seals_with_the_servers_boundary():
    import mcp_types
    from mcp.server.context import ServerRequestContext
    from mcp.server.request_state import RequestStateSecurity

    from discovery_router._compat import request_state_boundary, seal_request_state

    low = low_level_server(FastMCP("compat", request_state_security=RequestStateSecurity.ephemeral(audience="compat")))
    boundary = request_state_boundary(low)
    ctx = ServerRequestContext(
        session=None,  # type: ignore[arg-type]
        lifespan_context=None,
        protocol_version="2026-07-28",
        method="tools/call",
        params={"name": "t", "arguments": {}},
    )
    asking = mcp_types.InputRequiredResult(input_requests={}, request_state="plain")
    sealed = seal_request_state(boundary, ctx, asking)
    assert sealed.request_state not in (None, "plain")
    plain = mcp_types.CallToolResult(content=[])
    assert seal_request_state(boundary, ctx, plain) is plain


def test_shared_context_is_a_context_manager_over_the_apps_snapshot():
    from discovery_router._compat import shared_context

    with shared_context(FastMCP("compat")):
        pass


async def test_send_tool_call_sends_on_the_session_dispatcher_with_the_eras_stamp():
    """``ClientSession._stamp`` / ``_dispatcher``: the raw result of a tools/call, in both eras."""
    from discovery_router._compat import send_tool_call

    for mode in ("auto", "legacy"):
        async with Client(_server_reporting_connections(), mode=mode) as client:
            raw = await send_tool_call(client.session, {"name": "who", "arguments": {}}, timeout=10, progress=None)
        assert isinstance(raw, dict) and raw["content"][0]["type"] == "text", mode


async def test_parse_tool_call_result_applies_the_sessions_era_rules():
    """``_later_revision_fields`` and ``ClientSession._call_tool_adapter``: a 2026-era ``InputRequiredResult``
    parses as one on a 2026 session; on a handshake-era session those fields are not of its era."""
    import mcp_types

    from discovery_router._compat import parse_tool_call_result

    asking = {
        "resultType": "input_required",
        "inputRequests": {"q": {"method": "roots/list"}},
        "requestState": "s",
    }
    async with Client(_server_reporting_connections()) as modern:
        parsed = parse_tool_call_result(modern.session, dict(asking))
        assert isinstance(parsed, mcp_types.InputRequiredResult) and parsed.request_state == "s"
    async with Client(_server_reporting_connections(), mode="legacy") as handshake:
        parsed = parse_tool_call_result(handshake.session, {**asking, "content": []})
        assert isinstance(parsed, mcp_types.CallToolResult) and parsed.content == []


async def test_drive_input_required_answers_through_the_clients_handlers_and_retries():
    """``Client._drive_input_required``: a 2026-era server's ask is answered by the client's handler."""
    import mcp_types

    from discovery_router._compat import drive_input_required, parse_tool_call_result, send_tool_call
    from discovery_router.upstreams.tool_call import tool_call_params
    from tests.library_upstream import build_library

    async def elicit(message, response_type, params, context):
        return mcp_types.ElicitResult(action="accept", content={"quantity": 2})

    async with Client(build_library(), elicitation_handler=elicit) as client:
        session = client.session

        async def send(responses, state):
            params = tool_call_params("confirm_order", {"item": "tea"}, responses, state)
            return parse_tool_call_result(session, await send_tool_call(session, params, timeout=10, progress=None))

        first = await send(None, None)
        assert isinstance(first, mcp_types.InputRequiredResult)
        result = await drive_input_required(client, first, send)
    assert isinstance(result, mcp_types.CallToolResult) and result.content[0].text == "ordered 2 x tea"
