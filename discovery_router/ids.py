"""Tool ids as clients see them: ``<server>/<tool>``, and the forms models copy them in.

A leaf module: the catalog, the policy, the router and the MCP face all spell ids from here.
"""

from __future__ import annotations

import unicodedata

ID_SEPARATOR = "/"
"""Between the server and the tool in an id (``time/get_current_time``); prompts are named the same way."""
_WRAPPERS = "`'\"“”‘’"


def tool_id(server: str, name: str) -> str:
    """The id a client sees for ``server``'s tool ``name``."""
    return f"{server}{ID_SEPARATOR}{name}"


def server_of(name: str) -> str | None:
    """The server part of an id as a client wrote it (None for a bare tool name)."""
    name = clean_id(name)
    return name.split(ID_SEPARATOR, 1)[0] if ID_SEPARATOR in name else None


def clean_id(name: str) -> str:
    """``name`` without the spaces, backticks or quotes a model copies around an id (`time/get_current_time`)."""
    return name.strip().strip(_WRAPPERS).strip()


def valid_tool_name(name: str) -> bool:
    """A tool name that makes one unambiguous id on one line: 1-128 characters, no control or format
    characters (newlines would inject search lines), no edge whitespace, no empty, ``.`` or ``..``
    segment between slashes. Spaces and non-ASCII letters, which real servers use, are kept."""
    return (
        0 < len(name) <= 128
        and name == name.strip()
        and not any(unicodedata.category(char) in _UNPRINTABLE for char in name)
        and all(part not in ("", ".", "..") for part in name.split("/"))
    )


_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
"""Control, format, surrogate, private, unassigned, line and paragraph separator characters."""
