"""Scrubbing secret values out of any text that leaves the router (logs, errors, status)."""

from __future__ import annotations

MASK = "***"
_MIN_SECRET_LENGTH = 4


class Redactor:
    """Remembers secret values and masks them wherever they appear.

    Fed by config loading with every env value, header value and value
    substituted from the environment. Very short values are not masked: they
    would corrupt ordinary text and are not secrets worth the name.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *values: str) -> None:
        self._secrets.update(v for v in values if len(v) >= _MIN_SECRET_LENGTH)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __len__(self) -> int:
        return len(self._secrets)
