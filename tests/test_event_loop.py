"""``serve`` runs on uvloop where it is installed (discovery_router.mcp.loop), asyncio's loop otherwise."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest

from discovery_router.mcp.loop import run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_serves_on_uvloop_where_it_is_installed():
    pytest.importorskip("uvloop")
    assert run(_loop_module()).startswith("uvloop")


def test_run_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch):
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert run(_loop_module()).startswith("asyncio")
