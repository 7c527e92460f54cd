"""The CLI's stderr log: one plain format for our lines and fastmcp's, the SDK's and uvicorn's.

fastmcp logs through its own rich handler, and logs every upstream error
answer and every refused request with a traceback box (``Error reading
resource ...`` followed by a page of frames). Those are ordinary: a model asked
for something that does not exist, or an upstream said no. They become one
line with the reason; a traceback is kept for exceptions that are real bugs,
and for everything with ``-v``.
"""

from __future__ import annotations

import logging
import sys

from fastmcp.exceptions import FastMCPError, NotFoundError
from mcp import MCPError

from discovery_router.errors import RouterError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ORDINARY: tuple[type[BaseException], ...] = (RouterError, MCPError, FastMCPError, NotFoundError)
"""Errors that are answers (the router's refusals, an upstream's error reply, fastmcp's own not-found and
tool/resource/prompt errors), not failures of the router's code."""
PER_REQUEST_LOGGERS = ("httpx", "httpx2")
"""HTTP client libraries that log every request at INFO (``HTTP Request: POST ... "200 OK"``): a stderr line per
upstream call, which costs a forwarded call over HTTP a write and says nothing an operator needs; kept for ``-v``."""


class OneLineErrors(logging.Filter):
    """Turns a record carrying an ordinary error's traceback into one line ending with the error's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, ORDINARY):
            reason = " ".join(str(exc).split()) or type(exc).__name__
            record.msg, record.args = f"{record.getMessage()}: {reason}", ()
            record.exc_info, record.exc_text = None, None
        return True


def configure(level: int, *, verbose: bool) -> None:
    """Set up stderr logging for one CLI run (only when nothing else has, e.g. not inside a test harness)."""
    root = logging.getLogger()
    fresh = not root.handlers
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr)
    if not fresh:
        return
    library = logging.getLogger("fastmcp")  # off its rich handler, onto ours
    for handler in list(library.handlers):
        library.removeHandler(handler)
    library.propagate = True
    if not verbose:
        for handler in root.handlers:
            handler.addFilter(OneLineErrors())
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
