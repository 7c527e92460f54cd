"""What an upstream says besides its answers, as the router's own log keeps it: a stdio child's stderr
(read, masked, its end noticed at once) and a per-server budget so a flooding server cannot fill the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import time
from collections.abc import Callable
from typing import Any

from discovery_router.governance.redact import Redactor

logger = logging.getLogger(__name__)


class LogBudget:
    """A token bucket for the router's own copy of one server's log lines.

    A flooding server (seen: 1.8 MB/s) must not fill the operator's terminal or log file; what the
    calling client is sent is not limited here. Lines over the budget are counted, and one
    "N lines suppressed" line is written once the next window has passed.
    """

    RATE = 20.0
    """Lines per second written here once the burst is spent."""
    BURST = 50.0
    REPORT_AFTER = 1.0
    """Seconds after the first suppressed line at which the suppressed count is written."""

    def __init__(
        self, name: str, what: str = "log lines", note: str = "", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``note`` ends the suppressed-count line (what still happened to the lines)."""
        self._name, self._what, self._note, self._clock = name, what, note, clock
        self._tokens = self.BURST
        self._stamp = clock()
        self._suppressed = 0
        self._report: asyncio.TimerHandle | None = None

    def admit(self) -> bool:
        """Whether one more line may be written now; if not it is counted and reported later."""
        now = self._clock()
        self._tokens = min(self.BURST, self._tokens + (now - self._stamp) * self.RATE)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self._suppressed += 1
        if self._report is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the count waits for the next report
                self._report = asyncio.get_running_loop().call_later(self.REPORT_AFTER, self.flush)
        return False

    def flush(self) -> None:
        """Write the suppressed count, if any (also called when the connection closes)."""
        if self._report is not None:
            self._report.cancel()
            self._report = None
        if self._suppressed:
            logger.warning(
                "[%s] %d %s suppressed here (over %g per second)%s",
                self._name,
                self._suppressed,
                self._what,
                self.RATE,
                self._note,
            )
            self._suppressed = 0


class StderrTail:
    """A stdio child's stderr, read by the router instead of being copied onto the router's own.

    Each line is logged at INFO under the server's name, masked (``serve`` shows it, one-shot CLI
    commands only with ``-v``); the last line is kept for failure reasons; and the end of the stream,
    once the router has closed its own copy of the pipe, means the process exited: ``on_end`` is
    called at once, so a crash is noticed when it happens, not at the next call.
    """

    MAX_LINE = 2000

    def __init__(self, name: str, redact: Redactor, on_end: Callable[[], None]) -> None:
        read_fd, write_fd = os.pipe()
        self._read_fd = read_fd
        self.writer = os.fdopen(write_fd, "wb", buffering=0)
        """Handed to the child as its stderr; closed here once the child holds its own copy."""
        self._name, self._redact, self._on_end = name, redact, on_end
        self._budget = LogBudget(name, "stderr lines")
        self.last_line: str | None = None
        self.ended = asyncio.Event()
        self._task = asyncio.create_task(self._read(os.fdopen(read_fd, "rb", buffering=0)), name=f"stderr:{name}")

    def unread(self) -> bool:
        """Whether the pipe holds something the reader has not taken yet (a line, or the child's exit).

        One ``poll`` with no wait: the caller turns the event loop only when there is something to see.
        """
        if self.ended.is_set():
            return False
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except OSError:  # closed under us: the reader is finishing
            return True

    def spawned(self) -> None:
        """The child is running: drop the router's copy of the write end, so EOF means the child is gone."""
        if not self.writer.closed:
            self.writer.close()

    async def close(self, timeout: float = 1.0) -> None:
        """Stop reading once the child's remaining output is in (bounded: a grandchild may hold the pipe)."""
        self.spawned()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def _read(self, pipe: Any) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        pending = b""
        try:
            while chunk := await reader.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                pending = pending[-self.MAX_LINE * 4 :]
                for line in lines:
                    self._line(line)
            self._line(pending)
        finally:
            transport.close()
            self.ended.set()
            self._budget.flush()
        self._on_end()

    def _line(self, raw: bytes) -> None:
        text = self._redact(raw.decode("utf-8", "replace").rstrip()[: self.MAX_LINE])
        if text.strip():
            self.last_line = text.strip()
            if logger.isEnabledFor(logging.INFO) and self._budget.admit():
                logger.info("[%s] %s", self._name, text)
