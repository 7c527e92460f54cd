"""The key ring that seals the 2026 protocol's ``requestState``, shared by every replica of one service.

The MCP framework seals each ``requestState`` it hands a client and refuses
any echo it cannot unseal ("Invalid or expired requestState"). Without a
configured key each process seals with a random key of its own, so behind a
load balancer a retry that lands on another replica fails. With
``router.state_key`` (else ``$DISCOVERY_ROUTER_STATE_KEY``) every replica seals
and unseals with the same ring, and any of them can finish any multi-round
call (a confirmation, an upstream's own questions).

The ring is comma-separated: the first key seals, every key unseals, so a key
is rotated without failing calls in flight (the SDK's three phases, each on
every replica before the next): ``old,new``, then ``new,old``, then ``new``
alone once the state lifetime (600 s) has passed. Each key needs at least 32 characters of random
text (``python -c "import secrets; print(secrets.token_hex(32))"``). The value
is a secret: it is masked in every log line and never appears in an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from discovery_router.errors import RouterError
from discovery_router.paths import APP_NAME, STATE_KEY_ENV_VAR

if TYPE_CHECKING:
    from mcp.server.request_state import RequestStateSecurity

    from discovery_router.config.model import RouterSettings
    from discovery_router.governance.redact import Redactor

MIN_KEY_CHARS = 32
"""The MCP SDK's own floor: 32 bytes of secret material per key."""
MIN_DISTINCT_CHARS = 10
"""Fewer different characters than this (``aaaa...``, ``1234123412341234...``) is not random text."""
STATE_AUDIENCE = APP_NAME
"""Sealed into every state: the same on every replica, so a state from one verifies on all of them."""
GENERATE = 'python -c "import secrets; print(secrets.token_hex(32))"'


def state_key_ring(
    settings: RouterSettings, environ: Mapping[str, str] | None = None
) -> tuple[tuple[str, ...], str] | None:
    """The configured ring (sealing key first) and where it came from (for messages), or None when unset.

    Raises :class:`RouterError` naming the setting and the key's position, never its value, when a key is weak.
    """
    environ = os.environ if environ is None else environ
    if settings.state_key is not None and settings.state_key.strip():
        value, source = settings.state_key, "router.state_key"
    elif (environ.get(STATE_KEY_ENV_VAR) or "").strip():
        value, source = environ[STATE_KEY_ENV_VAR], f"${STATE_KEY_ENV_VAR}"
    else:
        return None
    keys = tuple(part.strip() for part in value.split(","))
    for position, key in enumerate(keys, 1):
        which = f"key {position} of {len(keys)} in {source}" if len(keys) > 1 else f"the key in {source}"
        if not key:
            raise RouterError(f"{which} is empty: separate the keys of a ring with single commas, no empty places.")
        if len(key.encode()) < MIN_KEY_CHARS or len(set(key)) < MIN_DISTINCT_CHARS:
            raise RouterError(
                f"{which} is too weak to seal request state: it needs at least {MIN_KEY_CHARS} characters of random "
                f"text. Generate one with: {GENERATE} (and give every replica the same value)."
            )
    if len(set(keys)) != len(keys):
        raise RouterError(f"{source} names the same key twice: a ring lists each key once (sealing key first).")
    return keys, source


def request_state_security(
    settings: RouterSettings, environ: Mapping[str, str] | None = None, redactor: Redactor | None = None
) -> RequestStateSecurity | None:
    """The MCP server's sealing policy for the configured ring, or None (a random per-process key).

    Every key is added to ``redactor`` first, so no log line can show one.
    """
    from mcp.server.request_state import RequestStateSecurity

    ring = state_key_ring(settings, environ)
    if ring is None:
        return None
    keys, _source = ring
    if redactor is not None:
        redactor.add(*keys)
    return RequestStateSecurity(keys=list(keys), audience=STATE_AUDIENCE)
