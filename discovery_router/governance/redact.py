"""Scrubbing secret values out of any text that leaves the router (logs, errors, status)."""

from __future__ import annotations

import logging
import re
import weakref
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 6


class Redactor:
    """Remembers secret values and masks them wherever they appear.

    Fed by config loading with every env value, header value and value
    substituted from the environment. Very short values are not masked: they
    would corrupt ordinary text and are not secrets worth the name.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str) -> None:
        self._secrets.update(v for v in values if len(v) >= _MIN_SECRET_LENGTH)
        self._compile()

    def absorb(self, other: Redactor) -> None:
        """Mask ``other``'s secrets too (a reloaded config's new values join the running router's)."""
        self.add(*other._secrets)

    def discard(self, *values: str) -> None:
        """Never mask these (server names are public, even when an env value repeats one)."""
        self._secrets.difference_update(values)
        self._compile()

    def _compile(self) -> None:
        """One alternation, longest secret first, so masking costs one scan (it runs on every log record)."""
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def __len__(self) -> int:
        return len(self._secrets)


_log_redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()
_previous_factory = None


def redact_logs(redactor: Redactor) -> None:
    """Mask ``redactor``'s secrets in every log record from now on, whoever logs it.

    Libraries below us (HTTP clients, the MCP SDK) log URLs and headers at
    debug level; a record factory is the one place every record passes through,
    whichever logger or handler it goes to.
    """
    global _previous_factory
    _log_redactors.add(redactor)
    if _previous_factory is None:
        _previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _previous_factory is not None
    record = _previous_factory(*args, **kwargs)
    redactors = [r for r in list(_log_redactors) if len(r)]
    if not redactors:
        return record
    message = record.getMessage()
    for redactor in redactors:
        message = redactor(message)
    record.msg, record.args = message, ()
    if record.exc_info:
        text = logging.Formatter().formatException(record.exc_info)
        for redactor in redactors:
            text = redactor(text)
        record.exc_text = text
    return record
