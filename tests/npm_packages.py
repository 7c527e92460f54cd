"""Pinned npm packages for the tests: installed once under ~/.cache/discovery-router-tests/npm/.

A thin pytest face over :mod:`benchmarks.npm` (shared with ``devkit/conformance.py``): a missing
``npm``/``node`` skips the test with the reason; a failed install (npm is there) raises, so the test
fails rather than silently skipping.

    node, entry = server_everything()        # run as: node ENTRY stdio
    node22, cli = conformance()              # run as: node22 CLI server --url URL
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit import npm
from devkit.npm import CONFORMANCE, NODE22, SERVER_EVERYTHING, NpmInstallError  # noqa: F401 - re-exported


def _require() -> None:
    try:
        npm.require_npm()
    except npm.NpmUnavailable as exc:
        pytest.skip(str(exc))


def install(name: str, version: str) -> Path:
    """Prefix of NAME@VERSION, installed on first use; skips when npm/node is missing."""
    _require()
    return npm.install(name, version)


def bin_path(name: str, version: str, bin_name: str | None = None) -> Path:
    """The file NAME@VERSION's `bin` entry points at; skips when npm/node is missing."""
    _require()
    return npm.bin_path(name, version, bin_name)


def server_everything() -> tuple[str, Path]:
    """(node, entry .js) of @modelcontextprotocol/server-everything."""
    _require()
    return npm.server_everything()


def server_filesystem() -> tuple[str, Path]:
    """(node, entry .js) of @modelcontextprotocol/server-filesystem."""
    _require()
    return npm.server_filesystem()


def conformance() -> tuple[Path, Path]:
    """(Node 22 binary, CLI .js) of @modelcontextprotocol/conformance."""
    _require()
    return npm.conformance()
