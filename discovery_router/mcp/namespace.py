"""How upstream resources and prompts are named to the client, so two servers never collide.

- Prompts: always ``<server>/<prompt>``, like tool ids.
- Resource URIs and URI templates: passed unchanged while only one server
  has them. When two servers list the same URI (or the same template), both
  are rewritten to ``mcp-router://<server>/<original>``; the router strips the
  prefix again before forwarding, so the scheme is reversible and the
  original is always readable in the rewritten form.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import mcp_types

from discovery_router.ids import ID_SEPARATOR

ROUTED_PREFIX = "mcp-router://"
PROMPT_SEPARATOR = ID_SEPARATOR


def routed_uri(server: str, uri: str) -> str:
    """``uri`` of ``server``, made unique across servers."""
    return f"{ROUTED_PREFIX}{server}/{uri}"


def parse_routed_uri(uri: str) -> tuple[str, str] | None:
    """(server, original uri) of a rewritten URI, or None for an ordinary one."""
    if not uri.startswith(ROUTED_PREFIX):
        return None
    server, sep, original = uri[len(ROUTED_PREFIX) :].partition("/")
    return (server, original) if sep and server else None


def prompt_name(server: str, name: str) -> str:
    return f"{server}{PROMPT_SEPARATOR}{name}"


@dataclass(frozen=True)
class Named:
    """One upstream component and the name the client sees it by."""

    server: str
    item: mcp_types.Resource | mcp_types.ResourceTemplate | mcp_types.Prompt
    front: str


class Namespace:
    """Client-facing names of every upstream's resources, templates and prompts (one snapshot)."""

    def __init__(
        self,
        resources: Mapping[str, tuple[mcp_types.Resource, ...]],
        templates: Mapping[str, tuple[mcp_types.ResourceTemplate, ...]],
        prompts: Mapping[str, tuple[mcp_types.Prompt, ...]],
    ) -> None:
        self.resources = _unique_or_routed({s: [str(r.uri) for r in rs] for s, rs in resources.items()}, resources)
        self.templates = _unique_or_routed({s: [t.uri_template for t in ts] for s, ts in templates.items()}, templates)
        self.prompts = [Named(s, p, prompt_name(s, p.name)) for s, ps in prompts.items() for p in ps]
        self._by_uri = {n.front: n for n in self.resources}

    def locate_resource(self, uri: str) -> tuple[str, str] | None:
        """(server, upstream uri) for a listed or rewritten URI; None if neither."""
        named = self._by_uri.get(uri)
        if named is not None:
            return named.server, str(named.item.uri)  # type: ignore[union-attr]
        return parse_routed_uri(uri)


def _unique_or_routed(keys: Mapping[str, list[str]], items: Mapping[str, tuple]) -> list[Named]:
    servers_per_key = Counter(key for server_keys in keys.values() for key in set(server_keys))
    return [
        Named(server, item, key if servers_per_key[key] == 1 else routed_uri(server, key))
        for server, server_items in items.items()
        for item, key in zip(server_items, keys[server], strict=True)
    ]
