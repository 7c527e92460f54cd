"""One backend as the router runs it, whatever it was given as: a config entry or an object.

:class:`UpstreamSpec` is made once at the router's boundary (:func:`spec_of`),
so nothing past it asks "is this a config entry?": a stdio command, a URL and
an in-memory FastMCP server (tests, benchmarks, embedding the router in an
app) all carry the same fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastmcp import Client

from discovery_router.config.model import ServerConfig
from discovery_router.governance.policy import ServerPolicy
from discovery_router.governance.redact import Redactor
from discovery_router.upstreams.transports import transport_for

IN_MEMORY = "in-memory"
"""The transport name of an upstream given as an object (a FastMCP server, a transport, a URL)."""


@dataclass(frozen=True, repr=False)
class UpstreamSpec:
    """Everything needed to connect to, index and govern one upstream. ``repr`` is bare: targets hold secrets."""

    name: str
    target: Any
    """What a fastmcp ``Client`` connects to; a :class:`ServerConfig` means "build its transport per attempt"."""
    transport: str = IN_MEMORY
    """"stdio", "http", "sse" or "in-memory": shown in ``status``."""
    description: str = ""
    """What the server is for, in the config's words (search ranks with it)."""
    call_timeout: float | None = None
    """Seconds per forwarded call; None means the router's ``call_timeout``."""
    enabled: bool = True
    error: str | None = None
    """Why the entry cannot be used (it is shown as failed, never started), or None."""
    policy: ServerPolicy | None = None
    """Governance for this server; None means the router-wide defaults."""
    protocol: str = "auto"
    """Protocol era towards the server: "auto" (negotiate) or "legacy" (force the initialize handshake)."""
    roots: tuple[str, ...] | None = None
    """The server's answer to ``roots/list`` (``file://`` URIs); None: ask the client."""

    def __repr__(self) -> str:
        return f"UpstreamSpec(name={self.name!r}, transport={self.transport!r})"

    @classmethod
    def from_config(cls, config: ServerConfig) -> UpstreamSpec:
        return cls(
            config.name,
            config,
            transport=config.transport,
            description=config.description or "",
            call_timeout=config.timeout,
            enabled=config.enabled,
            error=config.error,
            policy=config.policy,
            protocol=config.protocol,
            roots=config.roots,
        )

    def client_factory(self, redactor: Redactor | None = None) -> Callable[..., Client[Any]]:
        """Makes a fresh, unconnected fastmcp ``Client`` per connection attempt (kwargs: its handlers).

        ``redactor`` learns an OAuth server's tokens as they are loaded or refreshed.
        """
        target, protocol = self.target, self.protocol

        def make(errlog: Any = None, on_login_required: Callable[[], None] | None = None, **kwargs: Any) -> Client[Any]:
            """``errlog``: where a stdio child's stderr goes (the upstream reads it; see ``upstreams.output.StderrTail``);
            ``on_login_required``: an OAuth server's tokens were refused (see ``RouterOAuth``)."""
            if isinstance(target, ServerConfig):
                transport = transport_for(target, errlog, redactor=redactor, on_login_required=on_login_required)
            else:
                transport = target
            return Client(transport, mode=protocol, **kwargs)  # type: ignore[arg-type]

        return make

    @property
    def login_stamp(self) -> Callable[[], object] | None:
        """For an OAuth server: a value that changes when someone logs in or out (``serve`` retries then)."""
        if not isinstance(self.target, ServerConfig) or self.target.oauth is None:
            return None
        from discovery_router.upstreams.oauth import login_generation

        name = self.name
        return lambda: login_generation(name)

    @property
    def cache_key(self) -> str:
        """Name plus a digest of where the server lives, so routers with different configs can share a cache.

        Only non-secret identity goes into the digest: transport, command, and
        the URL without its query string (never args, env or headers).
        """
        if isinstance(self.target, ServerConfig):
            config = self.target
            where = config.command if config.transport == "stdio" else (config.url or "").split("?", 1)[0]
            identity = f"{config.transport}|{where}"
        else:
            identity = f"object|{type(self.target).__name__}"
        return f"{self.name}@{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def spec_of(name: str, target: ServerConfig | UpstreamSpec | Any) -> UpstreamSpec:
    """Normalise what a caller passed for server ``name``: a config entry, a spec, or any ``Client`` target."""
    if isinstance(target, UpstreamSpec):
        return target
    if isinstance(target, ServerConfig):
        return UpstreamSpec.from_config(target)
    return UpstreamSpec(name, target)


@dataclass(frozen=True)
class ConfigChange:
    """What :meth:`Router.apply_config` did, server names only (never a value)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @classmethod
    def between(cls, old: Mapping[str, UpstreamSpec], new: Mapping[str, UpstreamSpec]) -> ConfigChange:
        """The servers a reload from ``old`` to ``new`` adds, removes and must restart."""
        return cls(
            added=tuple(n for n in new if n not in old),
            removed=tuple(n for n in old if n not in new),
            changed=tuple(n for n in new if n in old and not _same_server(old[n], new[n])),
        )


def _same_server(old: UpstreamSpec, new: UpstreamSpec) -> bool:
    """Whether a reload may keep ``old``'s connection: config entries compare by value (every field, secrets
    included, never shown), objects by identity."""
    if isinstance(old.target, ServerConfig) and isinstance(new.target, ServerConfig):
        return old.target == new.target
    return old.target is new.target and old == new
