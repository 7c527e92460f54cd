"""N replicas of ``discovery-router serve --transport http`` on loopback, and a round-robin balancer over them.

Tests (and later the team database's tests, with ``DISCOVERY_ROUTER_DATABASE_URL``
in ``env``) start real processes from one config, spread real clients across
them, and stop one with SIGTERM or SIGKILL as an orchestrator would. The
balancer does what haproxy or nginx would: it polls each replica's
``/readyz`` and sends new work only to replicas that answered 200 last time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.system import child_env, free_port, serve_http_argv, wait_for_port

READY_TIMEOUT = 90.0
"""Seconds a replica gets to open its port and report ready (a loaded 2-core machine starts Python slowly)."""


def get_json(url: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET; (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback URLs we made)
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}  # a plain-text refusal (401, 403)
    except (OSError, ValueError):
        return 0, {}


@dataclass
class Replica:
    """One ``serve --transport http`` process."""

    index: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The MCP endpoint a client connects to."""
        return f"{self.base}/mcp"

    def readiness(self) -> tuple[int, dict[str, Any]]:
        return get_json(f"{self.base}/readyz")

    def liveness(self) -> tuple[int, dict[str, Any]]:
        return get_json(f"{self.base}/healthz")

    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ReplicaSet:
    """``count`` replicas serving ``config``, each with ``env`` (plus ``per_replica(i)``) over the test environment.

    Use as a context manager: every replica still running at the end is killed, with its children.
    """

    config: Path
    count: int = 3
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    extra_args: Sequence[str] = ()
    replicas: list[Replica] = field(default_factory=list)

    def per_replica(self, index: int) -> Mapping[str, str]:
        """Environment of replica ``index`` only (default: its own audit log beside its output log)."""
        return {"DISCOVERY_ROUTER_AUDIT_LOG": str(self._dir / f"audit-{index}.jsonl")}

    @property
    def _dir(self) -> Path:
        return self.workdir or self.config.parent

    def start(self) -> ReplicaSet:
        for index in range(self.count):
            port = free_port()
            log = self._dir / f"replica-{index}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    serve_http_argv(self.config, port, *self.extra_args),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=output,
                    env={**child_env(), **self.env, **self.per_replica(index)},
                    start_new_session=True,  # its own process group: a kill reaches its upstream children too
                )
            self.replicas.append(Replica(index, port, process, log))
        for replica in self.replicas:
            self.wait_ready(replica)
        return self

    def wait_ready(self, replica: Replica, timeout: float = READY_TIMEOUT) -> None:
        wait_for_port(replica.port, replica.process, timeout)
        deadline = time.monotonic() + timeout
        while replica.readiness()[0] != 200:
            if not replica.running() or time.monotonic() > deadline:
                raise RuntimeError(f"replica {replica.index} never became ready:\n{replica.log_text()[-3000:]}")
            time.sleep(0.1)

    def __getitem__(self, index: int) -> Replica:
        return self.replicas[index]

    def __iter__(self) -> Any:
        return iter(self.replicas)

    def terminate(self, index: int) -> None:
        """SIGTERM, as an orchestrator stopping a replica: it drains and exits on its own."""
        self.replicas[index].process.send_signal(signal.SIGTERM)

    def kill(self, index: int) -> None:
        """SIGKILL to the replica's whole process group (the replica and its upstream children): a crash."""
        replica = self.replicas[index]
        os.killpg(replica.process.pid, signal.SIGKILL)
        replica.process.wait(10)

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.running():
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            try:
                replica.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(replica.process.pid, signal.SIGKILL)  # whatever is left of the group, upstreams too
            except ProcessLookupError:
                pass

    def __enter__(self) -> ReplicaSet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class RoundRobin:
    """A load balancer in miniature: round robin over the replicas whose last ``/readyz`` said 200.

    ``poll_interval`` is the health-check interval (haproxy's ``inter``); one failed check takes a
    replica out (``fall 1``). Run :meth:`watch` as a task while sending work.
    """

    def __init__(self, replicas: ReplicaSet, poll_interval: float = 0.1) -> None:
        self._replicas = replicas
        self._interval = poll_interval
        self._ready = {replica.index: True for replica in replicas}
        self._next = 0
        self.unready_seen: dict[int, float] = {}
        """Replica index -> monotonic time this balancer first saw it unready."""

    def pick(self) -> Replica:
        """The next ready replica; raises when none is."""
        indices = [r.index for r in self._replicas if self._ready[r.index]]
        if not indices:
            raise RuntimeError("no replica is ready")
        chosen = indices[self._next % len(indices)]
        self._next += 1
        return self._replicas[chosen]

    async def watch(self) -> None:
        while True:
            for replica in self._replicas:
                status, _ = await asyncio.to_thread(replica.readiness)
                ready = status == 200
                if not ready and self._ready[replica.index]:
                    self.unready_seen.setdefault(replica.index, time.monotonic())
                self._ready[replica.index] = ready
            await asyncio.sleep(self._interval)


HAPROXY_CHECK_INTERVAL_MS = 100


def haproxy_config(port: int, replicas: ReplicaSet, *, sticky: bool = True) -> str:
    """The README's haproxy set-up over these replicas: checks on /readyz, sticky on ``Mcp-Session-Id``."""
    servers = "\n".join(
        f"    server r{r.index} 127.0.0.1:{r.port} check inter {HAPROXY_CHECK_INTERVAL_MS}ms fall 1 rise 2"
        for r in replicas
    )
    stick = (
        "    stick-table type string len 64 size 100k expire 30m\n"
        "    stick store-response res.hdr(Mcp-Session-Id)\n"
        "    stick match req.hdr(Mcp-Session-Id)\n"
        if sticky
        else ""
    )
    return (
        "global\n    maxconn 1000\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 130s\n    timeout server 130s\n"
        "    timeout tunnel 1h\n"
        f"frontend mcp\n    bind 127.0.0.1:{port}\n    default_backend routers\n"
        "backend routers\n    balance roundrobin\n"
        "    option httpchk\n    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1\n"
        "    http-check expect status 200\n"
        f"{stick}{servers}\n"
    )


class HAProxy:
    """haproxy (Debian's, when installed) in front of a :class:`ReplicaSet`, on a free loopback port."""

    def __init__(self, replicas: ReplicaSet, *, sticky: bool = True) -> None:
        self.port = free_port()
        self._config = replicas.config.parent / "haproxy.cfg"
        self._config.write_text(haproxy_config(self.port, replicas, sticky=sticky))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> HAProxy:
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(self._config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.process, 30)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
