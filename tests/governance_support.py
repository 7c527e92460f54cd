"""Shared by the governance tests: the inventory server as a stdio entry, settings with an audit log, reading it."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from discovery_router.errors import (
    PolicyRefusedError,
)
from discovery_router.router import Router
from tests.conftest import FAST

REPO = Path(__file__).parent.parent
INVENTORY = str(Path(__file__).parent / "governance_upstreams.py")
SECRET = "zq-GOV-SECRET-51d0c3"


def inventory_entry(**governance) -> dict:
    return {"command": sys.executable, "args": [INVENTORY, "stdio"], "env": {"PYTHONPATH": str(REPO)}, **governance}


def settings(tmp_path: Path, **overrides):
    return replace(FAST, audit_log=str(tmp_path / "audit.jsonl"), **overrides)


def audit_lines(tmp_path: Path) -> list[dict]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def refused(router: Router, name: str, arguments: dict | None = None) -> str:
    with pytest.raises(PolicyRefusedError) as caught:
        await router.call(name, arguments or {})
    return str(caught.value)
