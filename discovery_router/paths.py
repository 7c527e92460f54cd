"""Names the router is known by on a machine: the app name, every ``DISCOVERY_ROUTER_*`` variable, its folders.

One place for each: the config loader, the index cache, the audit log and the
HTTP access check all read their defaults from here, so a renamed variable or
folder cannot drift between them.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "discovery-router"
"""The distribution name: platformdirs folders, the keyring service, the install entry, serverInfo."""

CONFIG_ENV_VAR = "DISCOVERY_ROUTER_CONFIG"
"""A config file to use when ``--config`` is not given."""
CACHE_ENV_VAR = "DISCOVERY_ROUTER_CACHE_DIR"
"""The index cache folder when ``router.cache_dir`` is not set ("none" disables the cache)."""
AUDIT_ENV_VAR = "DISCOVERY_ROUTER_AUDIT_LOG"
"""The audit log file when ``router.audit_log`` is not set ("none" disables it)."""
DATA_ENV_VAR = "DISCOVERY_ROUTER_DATA_DIR"
"""The folder for OAuth tokens when no secure OS keyring exists (default: the platform's user data dir)."""
TOKEN_ENV_VAR = "DISCOVERY_ROUTER_TOKEN"
"""The bearer token HTTP clients must send to ``serve --transport http|sse``."""
DATABASE_ENV_VAR = "DISCOVERY_ROUTER_DATABASE_URL"
"""A PostgreSQL URL when ``router.database_url`` is not set: replicas share catalog, embeddings, audit there."""
STATE_KEY_ENV_VAR = "DISCOVERY_ROUTER_STATE_KEY"
"""The key ring sealing the 2026 protocol's ``requestState`` when ``router.state_key`` is not set: the same value
on every replica, so any replica can finish a multi-round call another started (``new,old`` while rotating)."""
WIRE_LANE_ENV_VAR = "DISCOVERY_ROUTER_WIRE_LANE"
"""``off`` keeps every stdio ``tools/call`` on the MCP SDK's own path instead of the wire lane
(``mcp/wire_calls.py``): a switch for diagnosis, and what the latency benchmark compares the lane with."""

OFF = "none"
"""The value that turns a path-like setting off (``cache_dir``, ``audit_log``, ``embedding_model``)."""

AUDIT_FILE_NAME = "audit.jsonl"
OAUTH_DIR_NAME = "oauth"
"""Under the data dir: one token file per OAuth server (mode 0600) and its login stamp."""
OAUTH_KEYRING_SERVICE = f"{APP_NAME}-oauth"
"""The keyring service OAuth tokens are kept under (one entry per server name)."""


def turned_off(setting: str | None) -> bool:
    """True when a path-like setting says ``"none"`` (any case, surrounding spaces ignored)."""
    return (setting or "").strip().casefold() == OFF


def default_config_path() -> Path:
    """The platform's user config folder's ``config.json`` (used when no file is named)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.json"


def default_cache_dir() -> Path:
    """``$DISCOVERY_ROUTER_CACHE_DIR``, else the platform's user cache dir."""
    return Path(os.environ.get(CACHE_ENV_VAR) or platformdirs.user_cache_dir(APP_NAME))


def default_audit_path() -> Path:
    """``$DISCOVERY_ROUTER_AUDIT_LOG``, else ``audit.jsonl`` in the platform's user log dir."""
    return Path(
        os.environ.get(AUDIT_ENV_VAR) or Path(platformdirs.user_log_dir(APP_NAME)) / AUDIT_FILE_NAME
    ).expanduser()


def default_data_dir() -> Path:
    """``$DISCOVERY_ROUTER_DATA_DIR``, else the platform's user data dir (OAuth tokens without a keyring)."""
    return Path(os.environ.get(DATA_ENV_VAR) or platformdirs.user_data_dir(APP_NAME)).expanduser()
