"""Turning tools and queries into tokens for lexical retrieval."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from discovery_router.search.base import ToolDoc

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2,})")
_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    "a an and are as at be by for from has have i in is it its me my of on or our please the this "
    "to was were will with you your can could would should do does into that these those".split()
)


def split_identifier(name: str) -> str:
    """``getCurrentTime`` / ``get_current-time`` -> ``get Current Time`` (words for search)."""
    return " ".join(_CAMEL.sub(" ", part) for part in re.split(r"[_\-./:\s]+", name) if part)


def stem(word: str) -> str:
    """Plural and third-person ``-s`` off (``logs``/``shows`` -> ``log``/``show``, ``entities`` -> ``entity``).

    Tool descriptions say "Shows the commit logs" where a user asks to "show the
    commit log": without this the name word alone decides (git_show above git_log).
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Identifier-aware, case-folded, lightly stemmed word tokens without stopwords."""
    normalized = unicodedata.normalize("NFKC", text)
    words = _WORD.findall(_CAMEL.sub(" ", normalized))
    return [stem(w) for w in (word.casefold() for word in words) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


DESTRUCTIVE = frozenset(
    "delete remove erase destroy drop purge wipe clear reset revoke uninstall unlink kill terminate truncate".split()
)
"""Name words of tools that destroy something: ranked lower unless the query asks for it."""


@functools.lru_cache(maxsize=65536)
def destructive_name(name: str) -> bool:
    """The tool's name says it deletes, drops, clears... (``delete_entities``, ``dropTable``)."""
    return any(word in DESTRUCTIVE for word in tokenize(split_identifier(name)))


def asks_to_destroy(query: str) -> bool:
    return any(word in DESTRUCTIVE for word in tokenize(query))


def parameter_text(schema: Mapping[str, Any]) -> str:
    """Parameter names (split into words) and their descriptions."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping):
        return ""
    parts: list[str] = []
    for name, spec in props.items():
        parts.append(split_identifier(str(name)))
        if isinstance(spec, Mapping) and isinstance(spec.get("description"), str):
            parts.append(spec["description"])
    return " ".join(parts)


def document_text(doc: ToolDoc) -> str:
    """The text a tool is retrieved by: server, name words, description, parameters."""
    return " ".join(
        part
        for part in (
            split_identifier(doc.server),
            doc.server_description,
            split_identifier(doc.name),
            doc.description,
            parameter_text(doc.input_schema),
        )
        if part
    )


def embedding_text(doc: ToolDoc, params: bool = False) -> str:
    """The text a tool is embedded from: what it is, in sentence form, most telling first.

    Parameters are left out by default: with them the fused ranking was no
    better on ETOM dev and the first embedding of the catalog took 2.4x as
    long (benchmarks/TUNING.md); BM25 still indexes them.
    """
    head = f"{split_identifier(doc.name)} ({split_identifier(doc.server)})"
    parts = [head + ":", doc.description.strip()]
    words = parameter_text(doc.input_schema) if params else ""
    if words:
        parts.append("Parameters: " + words)
    return " ".join(p for p in parts if p)


_STEP_BREAK = re.compile(
    r"(?:(?<=[.!?;])\s+(?=[A-Z(\"'])|\n+\s*|,?\s+(?:and\s+)?then\s+|,\s*(?:next|finally|afterwards|after that),?\s+)",
    re.IGNORECASE,
)


def split_steps(query: str, min_tokens: int = 3) -> list[str]:
    """The steps of a multi-step request (sentences, "then ..." clauses); a one-step query gives one.

    Fragments with fewer than ``min_tokens`` search tokens are merged into the
    previous step, so "Then, do it." does not become a query of its own.
    """
    steps: list[str] = []
    for fragment in _STEP_BREAK.split(query):
        fragment = (fragment or "").strip()
        if not fragment:
            continue
        if steps and len(tokenize(fragment)) < min_tokens:
            steps[-1] = f"{steps[-1]} {fragment}"
        else:
            steps.append(fragment)
    if len(steps) > 1 and len(tokenize(steps[0])) < min_tokens:
        steps[1] = f"{steps[0]} {steps[1]}"
        steps.pop(0)
    return steps or [query]
