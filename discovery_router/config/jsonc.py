"""JSON with comments and trailing commas, as VS Code and Cursor write their configs (and users paste them)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?(?:\*/|\Z)|,(?=\s*[}\]])', re.S)
"""A string (kept), a comment or a trailing comma (dropped): strings first, so nothing inside one is touched."""


def strip_jsonc(text: str) -> str:
    """JSONC to plain JSON: comments and trailing commas removed, strings untouched.

    Comments go first, so a comma followed by a comment and then ``}`` is still a trailing comma.
    """
    without_comments = _TOKEN.sub(lambda m: m.group(0) if m.group(0).startswith('"') or m.group(0) == "," else "", text)
    return _TOKEN.sub(lambda m: "" if m.group(0) == "," else m.group(0), without_comments)
