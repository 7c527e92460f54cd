"""The two MCP protocol eras a peer may speak (ARCHITECTURE.md's glossary: *era*).

The handshake era (``initialize``, up to 2025-11-25) keeps a session with a
back-channel for asks; the 2026 era (2026-07-28) is stateless: asks travel as
``InputRequiredResult`` and change notices on ``subscriptions/listen``.
"""

from __future__ import annotations

from mcp_types.version import MODERN_PROTOCOL_VERSIONS


def is_2026_era(protocol_version: str | None) -> bool:
    """True when a peer negotiated the stateless 2026 protocol, False for the handshake era (or unknown)."""
    return protocol_version in MODERN_PROTOCOL_VERSIONS
