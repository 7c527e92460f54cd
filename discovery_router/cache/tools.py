"""Each backend server's last tool list, one JSON file per server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from discovery_router.cache.files import check_header, safe_name
from discovery_router.files import atomic_write

log = logging.getLogger(__name__)

#: The only tool fields ever written: tool data, never config, env or headers.
TOOL_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def clean_tool(tool: Any) -> dict[str, Any]:
    """A plain dict with only :data:`TOOL_FIELDS` from an MCP ``Tool`` object or a mapping."""
    if hasattr(tool, "model_dump"):
        tool = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
        raise TypeError(f"not a tool: {tool!r}")
    out = {key: tool[key] for key in TOOL_FIELDS if tool.get(key) is not None}
    json.dumps(out)  # must be JSON data
    return out


class ToolStore:
    KIND = "discovery-router/tools"

    def __init__(self, directory: Path, format_version: int) -> None:
        self.directory = directory
        self.format_version = format_version

    def path(self, server: str) -> Path:
        return self.directory / safe_name(server, ".json")

    def save(self, server: str, tools: Iterable[Any]) -> None:
        payload = {
            "kind": self.KIND,
            "format": self.format_version,
            "server": server,
            "saved_at": time.time(),
            "tools": [clean_tool(t) for t in tools],
        }
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        atomic_write(self.path(server), lambda handle: handle.write(data))

    def load(self, server: str) -> list[dict[str, Any]] | None:
        path = self.path(server)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("tool cache %s unreadable (%s); ignoring it", path, exc)
            return None
        try:
            payload = json.loads(raw)
            check_header(payload, self.KIND, self.format_version, "server", server)
            tools = payload["tools"]
            if not isinstance(tools, list):
                raise ValueError("tools is not a list")
            return [clean_tool(t) for t in tools]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("tool cache %s is unusable (%s); it will be rebuilt", path, exc)
            return None

    def forget(self, server: str) -> None:
        try:
            self.path(server).unlink()
        except FileNotFoundError:
            pass
