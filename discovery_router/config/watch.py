"""Live configuration: ``serve`` follows its config file while clients stay connected.

A poll (every :data:`POLL_INTERVAL` seconds: ``stat``, then a content hash
when the stat changed) is portable and needs no dependency; SIGHUP, and a
writer inside the router (the agent's ``add_server``), ask for a check at once.
What a changed file means is the router's business
(:meth:`~discovery_router.router.Router.apply_config`); a file that no longer
loads is handed to :meth:`~discovery_router.router.Router.reject_config` and
the last good config keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from discovery_router.config.loader import load_config
from discovery_router.errors import ConfigError

if TYPE_CHECKING:
    from discovery_router.router import Router

logger = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
"""Seconds between looks at the file: a change is applied within about this long."""


def _stat_of(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _digest_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    """Reloads ``router`` from ``path`` whenever the file's content changes, or on SIGHUP."""

    def __init__(self, router: Router, path: Path, interval: float = POLL_INTERVAL) -> None:
        self.router, self.path, self.interval = router, path, interval
        self._stat = _stat_of(path)
        self._digest = _digest_of(path)
        """The content the router runs now (what it was started with, or last applied or rejected)."""
        self._poke = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._signal_installed = False

    def start(self) -> None:
        """Begin polling, and reload on SIGHUP where the platform has it (needs the main thread's loop)."""
        if self._task is not None:
            return
        self._poke = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="config-watch")
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(sighup, self.poke)
                self._signal_installed = True

    async def stop(self) -> None:
        if self._signal_installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal_installed = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """Reload now even if the file looks unchanged (SIGHUP)."""
        logger.info("reloading %s (SIGHUP)", self.path)
        self._poke.set()

    async def reload_now(self) -> None:
        """Apply the file as it is now, and return once applied (the agent's add_server waits on this)."""
        await self._check(force=True)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=self.interval)
            forced = self._poke.is_set()
            self._poke.clear()
            try:
                await self._check(force=forced)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad reload
                logger.exception("reloading %s failed; still serving the last good config", self.path)

    async def _check(self, *, force: bool) -> None:
        async with self._lock:
            stat = _stat_of(self.path)
            if stat == self._stat and not force:
                return
            self._stat = stat
            digest = await asyncio.to_thread(_digest_of, self.path)
            if digest == self._digest and not force:
                return  # touched, or rewritten with the same content
            self._digest = digest
            try:
                config = await asyncio.to_thread(load_config, self.path)
            except ConfigError as exc:  # names the file, server and field, never a value
                self.router.reject_config(str(exc))
                return
            await self.router.apply_config(config)
