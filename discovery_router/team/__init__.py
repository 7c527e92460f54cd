"""Team deployment: replicas share their catalog, embeddings, audit trail and change sequence in PostgreSQL.

Off unless ``router.database_url`` or ``$DISCOVERY_ROUTER_DATABASE_URL`` is set; then the router makes one
:class:`~discovery_router.team.replica.SharedState` and calls it at a handful of points (start, stop, a
server's tools listed, the indexer's vectors, the audit sink). Nothing here imports psycopg until a URL is
set, so a single machine needs no database and no driver.

Rooms: :mod:`.url` (the setting, redaction), :mod:`.driver` (the install hint), :mod:`.migrate` (numbered
SQL files in ``migrations/``), :mod:`.store` (every query), :mod:`.replica` (the router's side), :mod:`.search`
(search past the in-memory range) and :mod:`.database_search` (when the router uses it, and keeping it in step).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from discovery_router.config.model import RouterSettings
from discovery_router.governance.audit import AuditQuery
from discovery_router.governance.redact import Redactor
from discovery_router.team.driver import require_driver
from discovery_router.team.url import database_url, passwords_in

if TYPE_CHECKING:
    from discovery_router.team.replica import SharedState

__all__ = ["database_url", "open_shared_state", "read_shared_trail"]


def open_shared_state(settings: RouterSettings, redactor: Redactor) -> SharedState | None:
    """The team state the settings ask for, or None (no database: this machine only).

    The URL's password joins ``redactor`` first, so nothing logged from here on can show it.
    """
    url = database_url(settings)
    if url is None:
        return None
    redactor.add(*passwords_in(url))
    require_driver()
    from discovery_router.team.replica import SharedState

    return SharedState(url, redactor)


def read_shared_trail(url: str, query: AuditQuery) -> list[dict[str, Any]]:
    """Every replica's audit records matching ``query``, oldest first (for ``discovery-router audit``)."""
    require_driver()
    from discovery_router.team.store import read_audit

    return asyncio.run(read_audit(url, since=query.since, server=query.server, limit=query.limit))
