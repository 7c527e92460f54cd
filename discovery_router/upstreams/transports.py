"""A config entry's transport: the fastmcp client transport for one connection attempt."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from discovery_router.config.model import ServerConfig
from discovery_router.governance.redact import Redactor
from discovery_router.upstreams.child import stdio_transport


def transport_for(
    config: ServerConfig,
    errlog: Any = None,
    *,
    auth: Any = None,
    redactor: Redactor | None = None,
    on_login_required: Callable[[], None] | None = None,
) -> Any:
    """A fresh fastmcp client transport for one connection attempt (stdio children are never kept alive:
    see :mod:`discovery_router.upstreams.child`).

    ``errlog`` takes a stdio child's stderr (the upstream reads it: exits and last lines). ``auth``: the
    OAuth provider to use (``login`` passes its own); an ``"auth": "oauth"`` entry otherwise gets the
    serving one, which loads stored tokens and feeds them to ``redactor`` (and calls ``on_login_required``
    when only a person can help).
    """
    from fastmcp.client.transports import SSETransport, StreamableHttpTransport

    if config.transport == "stdio":
        assert config.command is not None
        return stdio_transport(
            resolve_command(config.command),
            list(config.args),
            env=dict(config.env) or None,
            cwd=config.cwd,
            log_file=errlog,
        )
    assert config.url is not None
    if auth is None and config.oauth is not None:
        from discovery_router.upstreams.oauth import auth_for

        auth = auth_for(config, redactor, on_login_required)
    if config.transport == "sse":
        return SSETransport(config.url, headers=dict(config.headers), auth=auth)
    return StreamableHttpTransport(config.url, headers=dict(config.headers), auth=auth)


def resolve_command(command: str) -> str:
    """Find a bare command on PATH, else beside this interpreter.

    Lets the example config say ``mcp-server-time`` and work when the router
    runs from a virtualenv that was never activated.
    """
    if os.sep in command or shutil.which(command):
        return command
    beside = Path(sys.executable).parent / command
    return str(beside) if beside.exists() else command
