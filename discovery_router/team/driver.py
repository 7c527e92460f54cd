"""The one gate to the PostgreSQL driver: a clear error naming the extra when it is not installed.

Every team module that needs psycopg imports it through :func:`require_driver` first (or after it has
succeeded once), so "the URL is set but the driver is missing" is said once, in one way.
"""

from __future__ import annotations

import importlib

from discovery_router.errors import SharedStateError
from discovery_router.paths import DATABASE_ENV_VAR

DRIVER_MODULES = ("psycopg", "psycopg_pool", "pgvector.psycopg")
INSTALL_HINT = "pip install 'discovery-router[team]'"


def require_driver() -> None:
    """Import psycopg, its pool and pgvector's adapter, or say which is missing and how to install them."""
    for module in DRIVER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SharedStateError(
                f"a team database is configured (router.database_url or {DATABASE_ENV_VAR}) but the "
                f"PostgreSQL driver is not installed ({exc.name or module} is missing): {INSTALL_HINT}"
            ) from None
