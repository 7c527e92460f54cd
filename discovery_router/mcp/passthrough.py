"""Resources, resource templates and prompts of every upstream, served as they are.

Tools go behind search because that is where the tokens are; everything else
passes through. Reading and rendering reuse fastmcp's proxy components
(``ProxyResource``, ``ProxyTemplate``, ``ProxyPrompt``) over each upstream's
live connection, so 2026-era ``InputRequiredResult`` round trips and content
conversion behave exactly as in a fastmcp proxy. Names come from
:mod:`discovery_router.mcp.namespace`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mcp_types
from fastmcp.exceptions import PromptError
from fastmcp.prompts.base import Prompt
from fastmcp.resources.base import Resource
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.providers.base import Provider
from fastmcp.server.providers.proxy import ProxyPrompt, ProxyResource, ProxyTemplate
from fastmcp.utilities.versions import VersionSpec

from discovery_router.ids import clean_id
from discovery_router.mcp.namespace import Namespace
from discovery_router.router import Router


class UpstreamComponents(Provider):
    """A fastmcp provider of the upstreams' resources, templates and prompts (never their tools)."""

    def __init__(self, router: Router) -> None:
        super().__init__()
        self._router = router
        self._snapshot: tuple[tuple[str, Any], ...] = ()
        self._namespace = Namespace({}, {}, {})

    async def get_tasks(self) -> Sequence[Any]:
        """None: proxied components never run as tasks, and listing here would wait on upstreams per request."""
        return []

    async def _ready_namespace(self) -> Namespace:
        """Lists wait (bounded) for every server's first connection attempt, as search does."""
        await self._router.wait_ready()
        return self.namespace()

    def namespace(self) -> Namespace:
        """Names for the current components; rebuilt only when an upstream's components changed."""
        snapshot = tuple(self._router.components().items())
        if snapshot != self._snapshot:
            self._snapshot = snapshot
            self._namespace = Namespace(
                {name: c.resources for name, c in snapshot},
                {name: c.templates for name, c in snapshot},
                {name: c.prompts for name, c in snapshot},
            )
        return self._namespace

    def locate(self, uri: str) -> tuple[str, str] | None:
        """(server, upstream uri) for a client-facing URI, or None when no server can be told apart."""
        return self.namespace().locate_resource(uri) or self._sole_resource_server(uri)

    def front_uri(self, server: str, uri: str) -> str:
        """The client-facing form of ``server``'s own ``uri`` (inverse of :meth:`locate`)."""
        for named in self.namespace().resources:
            if named.server == server and str(named.item.uri) == uri:  # type: ignore[union-attr]
                return named.front
        return uri

    def _client_factory(self, server: str) -> Any:
        return lambda: self._router.connection(server)

    async def _list_resources(self) -> Sequence[Resource]:
        return [self._resource(n.server, n.item, n.front) for n in (await self._ready_namespace()).resources]

    async def _get_resource(self, uri: str, version: VersionSpec | None = None) -> Resource | None:
        """Listed URIs, rewritten ones, and unlisted URIs when only one server has resources at all."""
        await self._router.wait_ready()
        located = self.locate(uri)
        components = self._router.components()
        if located is None or located[0] not in components:
            return None
        server, upstream_uri = located
        listed = next((r for r in components[server].resources if str(r.uri) == upstream_uri), None)
        if listed is None:
            if await self._get_resource_template(uri) is not None:
                return None  # let the template read it, with its parameters
            listed = _unlisted_resource(upstream_uri)
        return self._resource(server, listed, uri)

    def _sole_resource_server(self, uri: str) -> tuple[str, str] | None:
        having = [name for name, c in self._router.components().items() if c.resources or c.templates]
        return (having[0], uri) if len(having) == 1 else None

    def _resource(self, server: str, item: Any, front_uri: str) -> Resource:
        resource = ProxyResource.from_mcp_resource(self._client_factory(server), item)
        return resource if front_uri == str(item.uri) else resource.model_copy(update={"uri": front_uri})

    async def _list_resource_templates(self) -> Sequence[ResourceTemplate]:
        templates = []
        for named in (await self._ready_namespace()).templates:
            template = ProxyTemplate.from_mcp_template(self._client_factory(named.server), named.item)  # type: ignore[arg-type]
            if named.front != named.item.uri_template:  # type: ignore[union-attr]
                template = template.model_copy(update={"uri_template": named.front})
            templates.append(template)
        return templates

    async def _list_prompts(self) -> Sequence[Prompt]:
        return [
            ProxyPrompt.from_mcp_prompt(self._client_factory(n.server), n.item).model_copy(  # type: ignore[arg-type]
                update={"name": n.front}
            )
            for n in (await self._ready_namespace()).prompts
        ]

    async def _get_prompt(self, name: str, version: VersionSpec | None = None) -> Prompt | None:
        """``<server>/<prompt>``, or a bare prompt name that exactly one server has (as with tool ids)."""
        named = self._find_prompt((await self._ready_namespace()).prompts, name)
        if named is None:
            return None
        prompt = ProxyPrompt.from_mcp_prompt(self._client_factory(named.server), named.item)
        return prompt.model_copy(update={"name": name})

    async def refuse_ambiguous_prompt(self, name: str) -> None:
        """Raise when ``name`` is a bare prompt name several servers have, naming their ids (as tools do).

        Called from :class:`AmbiguousPromptNames`: fastmcp asks providers in parallel and
        treats an error raised inside ``_get_prompt`` as "not found".
        """
        candidates = self._candidates((await self._ready_namespace()).prompts, name)
        if len(candidates) > 1:
            ids = ", ".join(n.front for n in candidates)
            raise PromptError(f"Prompt name {clean_id(name)!r} is ambiguous: use one of {ids}.")

    @staticmethod
    def _candidates(prompts: list[Any], name: str) -> list[Any]:
        name = clean_id(name)
        return [n for n in prompts if n.front == name] or [n for n in prompts if n.item.name == name]

    @classmethod
    def _find_prompt(cls, prompts: list[Any], name: str) -> Any:
        """The prompt called ``name`` (its client-facing id, or a bare name exactly one server has)."""
        exact = cls._candidates(prompts, name)
        return exact[0] if len(exact) == 1 else None

    async def complete(self, _ctx: Any, params: mcp_types.CompleteRequestParams) -> mcp_types.CompleteResult:
        """``completion/complete`` for an upstream prompt or resource template, forwarded to its server."""
        await self._router.wait_ready()
        ref = params.ref
        if isinstance(ref, mcp_types.PromptReference):
            named = self._find_prompt(self.namespace().prompts, ref.name)
            upstream_ref: Any = ref.model_copy(update={"name": named.item.name}) if named else None
        else:
            named = next((n for n in self.namespace().templates if n.front == ref.uri), None)
            upstream_ref = ref.model_copy(update={"uri": named.item.uri_template}) if named else None  # type: ignore[union-attr]
        if named is None:
            return mcp_types.CompleteResult(completion=mcp_types.Completion(values=[]))
        client = await self._router.connection(named.server)
        if client.server_capabilities is None or client.server_capabilities.completions is None:
            return mcp_types.CompleteResult(completion=mcp_types.Completion(values=[]))  # it offers none
        context = params.context.arguments if params.context else None
        return await client.session.complete(upstream_ref, params.argument.model_dump(), context)


def _unlisted_resource(uri: str) -> Any:
    return mcp_types.Resource(uri=uri, name=uri)


class AmbiguousPromptNames(Middleware):
    """``prompts/get`` with a bare name two servers share gets "use one of ..." instead of "Unknown prompt"."""

    def __init__(self, components: UpstreamComponents) -> None:
        self._components = components

    async def on_get_prompt(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        await self._components.refuse_ambiguous_prompt(context.message.name)
        return await call_next(context)
