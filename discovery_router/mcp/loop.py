"""The event loop a serving router runs on: uvloop where it is installed, asyncio's own otherwise.

Why: a forwarded call is a handful of pipe or socket reads and writes and a few task switches on each side;
on asyncio's pure-Python loop that bookkeeping was about a third of the router's CPU per call. uvloop
(libuv) does the same work in C: the router's CPU per forwarded stdio call fell by about 15% in interleaved
runs (issue 17), and a bare JSON relay's added latency from 0.45 to 0.30 ms. It is a dependency on Linux and
macOS; Windows (no uvloop) and any failure to import it keep asyncio, with nothing else changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    logger.debug("serving on uvloop %s", uvloop.__version__)
    return uvloop.run(main)
