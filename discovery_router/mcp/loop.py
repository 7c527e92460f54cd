"""The event loop a serving router runs on: uvloop where it is installed, asyncio's own otherwise.

Why: a forwarded call is a handful of pipe or socket reads and writes and a few task switches on each side;
on asyncio's pure-Python loop that bookkeeping was about a third of the router's CPU per call. uvloop
(libuv) does the same work in C: the router's CPU per forwarded stdio call fell by about 15% in interleaved
runs (issue 17), and a bare JSON relay's added latency from 0.45 to 0.30 ms. It is a dependency on Linux and
macOS (CPython); Windows (no uvloop) and any failure to import it keep asyncio, with nothing else changed.
Both ``serve`` transports run here: stdio through :func:`run`, HTTP through uvicorn with :func:`loop_factory`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed and supported (not Windows); None: asyncio's own."""
    if sys.platform == "win32":
        return None
    try:
        import uvloop
    except ImportError:
        logger.debug("uvloop is not installed: serving on asyncio's event loop")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
