"""discovery-router: many MCP servers behind three tools (search, describe, call).

The public face; everything else is reached through these names::

    from discovery_router import Router, load_config

    async with Router.from_config(load_config("config.json")) as router:
        hits = await router.search("show the commit log")
        result = await router.call(hits[0].id, {"repo_path": "."})

Errors are one tree under :class:`RouterError` (see :mod:`discovery_router.errors`).
The MCP server is :func:`discovery_router.mcp.server.build_server`; the CLI is
``discovery_router.cli``. Names load lazily so that ``import discovery_router``
stays cheap for the CLI's fast paths.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError as _NotInstalled, version as _version
from typing import TYPE_CHECKING, Any

from discovery_router import errors
from discovery_router.errors import (
    AmbiguousToolError,
    ConfigError,
    InvalidArgumentsError,
    PolicyRefusedError,
    RequestError,
    RouterError,
    SecretError,
    UnknownToolError,
    UpstreamError,
)
from discovery_router.paths import APP_NAME

if TYPE_CHECKING:
    from discovery_router.config.loader import load_config
    from discovery_router.config.model import RouterConfig, RouterSettings
    from discovery_router.router import Router

try:
    __version__ = _version(APP_NAME)
except _NotInstalled:  # run from a checkout without `pip install -e .`
    __version__ = "0.0.0+unknown"

_LAZY = {
    "Router": "discovery_router.router",
    "RouterConfig": "discovery_router.config.model",
    "RouterSettings": "discovery_router.config.model",
    "load_config": "discovery_router.config.loader",
}

__all__ = [
    "AmbiguousToolError",
    "ConfigError",
    "InvalidArgumentsError",
    "PolicyRefusedError",
    "RequestError",
    "Router",
    "RouterConfig",
    "RouterError",
    "RouterSettings",
    "SecretError",
    "UnknownToolError",
    "UpstreamError",
    "__version__",
    "errors",
    "load_config",
]


def __getattr__(name: str) -> Any:
    """Import the heavy names (fastmcp, numpy) on first use."""
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'discovery_router' has no attribute {name!r}")
