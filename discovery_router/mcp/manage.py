"""Agent-managed servers (``router.manage_servers``): add_server, remove_server and list_servers.

Opt-in, because an agent that can add a stdio server can run any command.
``"remote"`` allows http(s) URLs only; ``"all"`` stdio commands too. The tools
write the config file through the same writer as ``discovery-router add`` /
``remove`` (its lock, its validation), then have the watcher apply the file at
once, so the change is persisted, and live in this session when the tool
answers. Each call goes through governance as a call of
``discovery-router/<tool>``: an audit line, and the user's confirmation for
add/remove (annotated destructive) when ``confirm_destructive`` is on.

Arguments are checked here, not by pydantic, so that a refusal is one clear
sentence and still leaves its audit line. Values given for headers and env are
written to the file but never echoed: not in answers, errors, audit lines or
the question put to the user. ``${VAR}`` and ``${keyring:...}`` references are
refused: they would let an agent send the user's secrets to a URL it chose.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp_types
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_context
from fastmcp.tools.base import InputRequiredToolResult, Tool, ToolResult
from pydantic import PrivateAttr

from discovery_router.config import edit
from discovery_router.config.loader import SERVER_NAME
from discovery_router.config.watch import ConfigWatcher
from discovery_router.errors import ConfigError, InvalidArgumentsError, PolicyRefusedError, RouterError
from discovery_router.governance.redact import MASK
from discovery_router.mcp.context import front_context
from discovery_router.router import Router
from discovery_router.upstreams.status import UpstreamState

MANAGE_TOOLS = frozenset({"add_server", "remove_server", "list_servers"})

ADD_REMOTE = (
    "Add an MCP server by its http(s) URL. It is saved in the router's config and connected now; "
    "then find its tools with search_tools."
)
ADD_ALL = (
    "Add an MCP server: a remote one by `url`, or a local one by `command` (with `args`, `env`). It is "
    "saved in the router's config and connected now; then find its tools with search_tools."
)
REMOVE = "Remove an MCP server from the router and its config; its tools go away."
LIST = "List the router's MCP servers: name, transport, state and tool count."

_NAME = {"type": "string", "description": "Short server name; its tools become `<name>/<tool>`."}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_REMOTE_PROPERTIES: dict[str, Any] = {
    "name": _NAME,
    "url": {"type": "string", "description": "http(s) URL of the server."},
    "headers": {**_STRINGS, "description": "HTTP headers, e.g. Authorization."},
    "transport": {"type": "string", "enum": ["http", "sse"]},
}
_STDIO_PROPERTIES: dict[str, Any] = {
    "command": {"type": "string", "description": "Program to run (a stdio server)."},
    "args": {"type": "array", "items": {"type": "string"}},
    "env": {**_STRINGS, "description": "Environment variables for it."},
}
_DESTRUCTIVE = mcp_types.ToolAnnotations(destructive_hint=True)
_READ_ONLY = mcp_types.ToolAnnotations(read_only_hint=True)
"""Only what governance reads (and clients show): every byte here is paid in every session's tools/list."""
_URL = re.compile(r"^https?://[^/\s]+\S*$")
_REFERENCE = "${"

Handler = Callable[[dict[str, Any]], Awaitable[mcp_types.CallToolResult | mcp_types.InputRequiredResult]]


class ManageTool(Tool):
    """One of the router's own management tools; takes its arguments as given and checks them itself."""

    _handler: Any = PrivateAttr(default=None)

    @classmethod
    def of(
        cls,
        name: str,
        description: str,
        properties: Mapping[str, Any],
        required: list[str],
        annotations: mcp_types.ToolAnnotations,
        handler: Handler,
    ) -> ManageTool:
        parameters: dict[str, Any] = {"type": "object", "properties": dict(properties)}
        if required:
            parameters["required"] = required
        tool = cls(name=name, description=description, annotations=annotations, parameters=parameters)
        tool._handler = handler
        return tool

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            result = await self._handler(arguments)
        except RouterError as exc:
            raise ToolError(str(exc)) from None
        if isinstance(result, mcp_types.InputRequiredResult):
            return InputRequiredToolResult(result)  # the client asks its user, then retries
        return ToolResult.from_mcp_result(result)


def add_management_tools(mcp: FastMCP, router: Router, watcher: ConfigWatcher) -> None:
    """List add_server, remove_server and list_servers beside the meta-tools (``manage_servers`` is not off)."""
    stdio_allowed = router.settings.manage_servers == "all"
    add_properties = {**_REMOTE_PROPERTIES, **(_STDIO_PROPERTIES if stdio_allowed else {})}
    path = watcher.path

    def own_tool(name: str, annotations: mcp_types.ToolAnnotations) -> mcp_types.Tool:
        return mcp_types.Tool(name=name, input_schema={"type": "object"}, annotations=annotations)

    async def add(arguments: dict[str, Any]) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        name = arguments.get("name")
        entry: dict[str, Any] = {}

        def check() -> None:
            """Before the user is asked or anything is written: a refusal is final, and leaves its audit line."""
            entry.update(_entry_from(arguments, stdio_allowed))
            if name in router.upstreams:
                raise InvalidArgumentsError(
                    f"A server named {name!r} already exists; remove_server it first, or pick another name."
                )

        async def run() -> str:
            assert isinstance(name, str)
            try:
                await asyncio.to_thread(edit.add_server, path, name, entry)
            except ConfigError as exc:
                raise RouterError(f"Not added: {_short_config_error(exc)}") from None
            await watcher.reload_now()
            status = await router.wait_server(name, router.settings.connect_timeout + 5)
            if status is None:
                return f"Saved {name}, but the config did not apply: {router.config_problem or 'unknown reason'}."
            if status.state is UpstreamState.CONNECTED:
                return f"Added {name}: connected, {status.tool_count} tools. Find them with search_tools."
            why = f": {status.error}" if status.error else ""
            return f"Added {name}, but it is {status.state.value}{why}. remove_server it if it is wrong."

        return await router.call_own(
            own_tool("add_server", _DESTRUCTIVE),
            arguments,
            run,
            check=check,
            shown=_masked(arguments),
            front=front_context(get_context()),
        )

    async def remove(arguments: dict[str, Any]) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        name = arguments.get("name")

        def check() -> None:
            if not isinstance(name, str) or not name or set(arguments) - {"name"}:
                raise InvalidArgumentsError("remove_server takes `name`, the server to remove (see list_servers).")

        async def run() -> str:
            assert isinstance(name, str)
            try:
                await asyncio.to_thread(edit.remove_server, path, name)
            except ConfigError as exc:
                raise RouterError(f"Not removed: {_short_config_error(exc)}") from None
            await watcher.reload_now()
            return f"Removed {name}; its tools are gone."

        return await router.call_own(
            own_tool("remove_server", _DESTRUCTIVE), arguments, run, check=check, front=front_context(get_context())
        )

    async def list_all(arguments: dict[str, Any]) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        async def run() -> str:
            lines = [
                f"{s.name}\t{s.transport}\t{s.state.value}\t{s.tool_count} tools" + (f"\t{s.error}" if s.error else "")
                for s in router.status()
            ]
            if router.config_problem:
                lines.append(
                    f"(the config file has a problem; still serving the previous one: {router.config_problem})"
                )
            return router.redact("\n".join(lines) or "No servers configured.")

        return await router.call_own(
            own_tool("list_servers", _READ_ONLY), arguments, run, front=front_context(get_context())
        )

    for tool in (
        ManageTool.of(
            "add_server", ADD_ALL if stdio_allowed else ADD_REMOTE, add_properties, ["name"], _DESTRUCTIVE, add
        ),
        ManageTool.of("remove_server", REMOVE, {"name": {"type": "string"}}, ["name"], _DESTRUCTIVE, remove),
        ManageTool.of("list_servers", LIST, {}, [], _READ_ONLY, list_all),
    ):
        mcp.add_tool(tool)


def _entry_from(arguments: Mapping[str, Any], stdio_allowed: bool) -> dict[str, Any]:
    """The config entry add_server writes; raises why not (one sentence for the model, no values)."""
    allowed = set(_REMOTE_PROPERTIES) | (set(_STDIO_PROPERTIES) if stdio_allowed else set())
    if set(arguments) & set(_STDIO_PROPERTIES) and not stdio_allowed:
        raise PolicyRefusedError(
            "Refused: this router lets agents add remote servers only (an http(s) `url`; router.manage_servers "
            'is "remote"). Ask the user to add a local command with `discovery-router add`.'
        )
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise InvalidArgumentsError(
            f"add_server takes {', '.join(f'`{k}`' for k in sorted(allowed))} (not `{unknown[0]}`)."
        )
    name = arguments.get("name")
    if not isinstance(name, str) or not SERVER_NAME.match(name):
        raise InvalidArgumentsError(
            "`name` must be letters, digits, '_', '-' or '.' (it becomes the `<name>/` of its tool ids)."
        )
    url, command = arguments.get("url"), arguments.get("command")
    if (url is None) == (command is None):
        raise InvalidArgumentsError(
            "add_server needs a `url` (an http(s) server)"
            + (" or a `command` (a local one)" if stdio_allowed else "")
            + "."
        )
    texts = _texts(arguments)
    if texts is None:
        raise InvalidArgumentsError("`headers` and `env` take an object of strings, `args` a list of strings.")
    if any(_REFERENCE in text for text in texts):
        raise PolicyRefusedError(
            "Refused: ${...} references (environment variables, keyring secrets) are not accepted from an agent; "
            "give the value itself, or ask the user to add the server."
        )
    entry: dict[str, Any] = {}
    if url is not None:
        if not isinstance(url, str) or not _URL.match(url):
            raise PolicyRefusedError("Refused: `url` must be an http:// or https:// URL naming a host.")
        entry["url"] = url
        if arguments.get("headers"):
            entry["headers"] = dict(arguments["headers"])
        if arguments.get("transport") is not None:
            if arguments["transport"] not in ("http", "sse"):
                raise InvalidArgumentsError('`transport` is "http" or "sse" (default: from the URL).')
            entry["transport"] = arguments["transport"]
        return entry
    if set(arguments) & {"headers", "transport"}:
        raise InvalidArgumentsError("`headers` and `transport` go with a `url`; a `command` takes `args` and `env`.")
    if not isinstance(command, str) or not command.strip():
        raise InvalidArgumentsError("`command` must be a program name or path.")
    entry["command"] = command
    entry["args"] = list(arguments.get("args") or [])
    if arguments.get("env"):
        entry["env"] = dict(arguments["env"])
    return entry


def _texts(arguments: Mapping[str, Any]) -> list[str] | None:
    """Every string the agent gave (to look for ``${``), or None when one of the fields has the wrong shape."""
    texts: list[str] = []
    for key in ("name", "url", "command", "transport"):
        value = arguments.get(key)
        if value is not None and not isinstance(value, str):
            return None
        if value is not None:
            texts.append(value)
    for key in ("headers", "env"):
        value = arguments.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            return None
        texts += [*value, *value.values()]
    items = arguments.get("args") or []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return texts + items


def _masked(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the user is asked about them and the audit may keep them: header/env values masked."""
    return {
        key: ({k: MASK for k in value} if key in ("headers", "env") and isinstance(value, dict) else value)
        for key, value in arguments.items()
    }


def _short_config_error(exc: ConfigError) -> str:
    """A writer's complaint without the file path (the agent needs the field, not where the file lives)."""
    where = [f"field {exc.field!r}"] if exc.field else []
    return ": ".join([*where, exc.message])
