"""Stopping `serve` (EOF on stdin, SIGINT, SIGTERM) stops every child process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import stdio_entry

REPO = Path(__file__).parent.parent


def child_pids(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("how", ["eof", "sigterm", "sigint"])
def test_stopping_serve_leaves_no_orphans(tmp_path: Path, how: str):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {"a": stdio_entry("notes"), "b": stdio_entry("weather")}}))
    router = subprocess.Popen([sys.executable, "-m", "discovery_router", "--config", str(config), "serve"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 30
        while len(child_pids(router.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = child_pids(router.pid)
        assert len(children) == 2
        time.sleep(1)  # let both finish their handshake
        if how == "eof":
            router.stdin.close()
        else:
            router.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert router.wait(20) == 0
        deadline = time.monotonic() + 5
        while any(running(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [c for c in children if running(c)]
    finally:
        if router.poll() is None:
            router.kill()
