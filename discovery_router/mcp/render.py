"""Text the meta-tools return. Every search token is paid on every lookup, so it stays terse."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from discovery_router.catalog import ToolEntry

NO_MATCH = "No tools matched. Try other words."
NO_MATCH_FILTERED = "No tools matched. Try other words, or drop the server filter."
WEAK_NOTE = "(weak matches: none fits well; rephrase or try other words)"
WEAK_STEP = " (weak match)"
STEP_CHARS = 60
STEP_RUNNER_UP_CHARS = 48
"""In a step search, a step's second and later tools get this much summary (its best gets ``max_chars``):
a 4-step plan at 3 tools a step stays near one plain lookup's tokens (benchmarks/TUNING.md)."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def summarize(description: str | None, max_chars: int) -> str:
    """First sentence of the first paragraph, on one line, at most ``max_chars``."""
    text = " ".join((description or "").strip().split("\n\n", 1)[0].split())
    text = _SENTENCE_END.split(text, 1)[0]
    if len(text) > max_chars:
        cut = text[: max_chars - 1]
        space = cut.rfind(" ")
        if space >= max_chars * 2 // 3:  # end on a whole word when one ends near the limit
            cut = cut[:space]
        text = cut.rstrip(" ,;:-") + "…"
    return text


def search_results(
    entries: Sequence[ToolEntry],
    max_chars: int,
    *,
    filtered: bool = False,
    down: Sequence[tuple[str, str]] = (),
    starting: Sequence[str] = (),
) -> str:
    """One line per hit: ``id: summary``, with unreachable servers flagged.

    ``entries`` may be a :class:`~discovery_router.catalog.Matches`: a step search
    is shown as one ``[n] step`` line per step followed by its tools, and a weak
    best hit gets a one-line note (filler must not look like an answer).

    ``filtered``: a server filter was given (the no-match hint then says to drop it).
    ``down``: (server, reason) of servers the query names that are not connected, said after the hits.
    ``starting``: servers still connecting for the first time, whose tools were not searched.
    """
    notes = [f"Server {name!r} exists but is down: {reason}" for name, reason in down]
    if starting:
        notes.append(f"Still starting, not searched yet (search again shortly): {', '.join(starting)}")
    if not entries:
        return "\n".join([NO_MATCH_FILTERED if filtered else NO_MATCH, *notes])
    steps: Sequence[str] = getattr(entries, "steps", ())
    if steps:  # a Matches from a step search: one block per step
        groups: Sequence[Sequence[ToolEntry]] = getattr(entries, "groups", ())
        weak_steps: Sequence[bool] = getattr(entries, "weak_steps", ())
        lines = []
        for n, (step, group) in enumerate(zip(steps, groups), 1):
            weak = WEAK_STEP if n <= len(weak_steps) and weak_steps[n - 1] else ""
            lines.append(f"[{n}] {summarize(step, STEP_CHARS)}{weak if group else ' (no match)'}")
            lines.extend(
                _hit_line(entry, max_chars if j == 0 else min(max_chars, STEP_RUNNER_UP_CHARS))
                for j, entry in enumerate(group)
            )
        return "\n".join(lines + notes)
    lines = [_hit_line(entry, max_chars) for entry in entries]
    if getattr(entries, "weak", False):
        lines.append(WEAK_NOTE)
    return "\n".join(lines + notes)


def _hit_line(entry: ToolEntry, max_chars: int) -> str:
    flag = " [server unreachable]" if not entry.available else ""
    if entry.policy is not None and entry.policy.label:  # governance: read-only / asks to confirm / refused
        flag += f" [{entry.policy.label}]"
    summary = summarize(entry.tool.description, max_chars)
    return f"{entry.id}{flag}: {summary}" if summary else f"{entry.id}{flag}"


def tool_description(entry: ToolEntry) -> dict[str, Any]:
    """The full tool, renamed to its router id, as a JSON-able dict."""
    tool = entry.tool
    described: dict[str, Any] = {"name": entry.id}
    if tool.title and _squash(tool.title) != _squash(tool.name):  # not a prettified copy of the name
        described["title"] = tool.title
    described["description"] = tool.description or ""
    described["inputSchema"] = slim_schema(tool.input_schema)
    if tool.output_schema is not None:
        described["outputSchema"] = slim_schema(tool.output_schema)
    if tool.annotations is not None:
        described["annotations"] = tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not entry.available:
        described["available"] = False
    if entry.policy is not None and entry.policy.governed:
        described["policy"] = entry.policy.summary
    return described


_NOISE_KEYS = frozenset({"$schema"})


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def slim_schema(schema: Any, key: str | None = None) -> Any:
    """The schema minus what carries no meaning for a caller, paid for on every describe.

    Drops ``$schema`` and generated ``title``s that only restate a property or
    model name (pydantic's "Repo Path" for ``repo_path``, "get_timeArguments");
    every constraint, description, default and enum stays.
    """
    if isinstance(schema, list):
        return [slim_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    slim: dict[str, Any] = {}
    for name, value in schema.items():
        if name in _NOISE_KEYS:
            continue
        if name == "title" and isinstance(value, str) and _generated_title(value, key):
            continue
        if name in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            slim[name] = {prop: slim_schema(sub, prop) for prop, sub in value.items()}
        else:
            slim[name] = slim_schema(value)
    return slim


def _generated_title(title: str, key: str | None) -> bool:
    squashed = _squash(title)
    return key is None or squashed == _squash(key) or squashed.endswith(("arguments", "output", "result"))


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def describe_text(entry: ToolEntry) -> str:
    """describe_tool's answer: the id, the description as plain text, then each schema as compact JSON.

    Plain lines rather than one JSON object: on the wire a JSON document inside
    a text block has every quote escaped, which the model pays for in tokens.
    """
    described = tool_description(entry)
    lines = [described["name"] + (" [server unreachable]" if not entry.available else "")]
    if "title" in described:
        lines.append(f"title: {described['title']}")
    lines.append(described["description"].strip() or "(no description)")
    for key in ("inputSchema", "outputSchema", "annotations"):
        if key in described:
            lines.append(f"{key}: {compact_json(described[key])}")
    if "policy" in described:
        lines.append(f"policy: {described['policy']}")
    return "\n".join(lines)


def readable_result(result: Any) -> str:
    """A call result for a terminal: text as is, other content types as a one-line note."""
    parts: list[str] = []
    for block in result.content:
        if block.type == "text":
            parts.append(block.text)
        elif block.type in ("image", "audio"):
            parts.append(f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif block.type == "resource_link":
            parts.append(f"[resource link {block.uri}]")
        elif block.type == "resource":
            parts.append(f"[resource {block.resource.uri}]")
        else:
            parts.append(f"[{block.type}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    prefix = "error: " if result.is_error else ""
    return prefix + "\n".join(parts)


def argument_mistakes(tool: str, parameters: Sequence[str], errors: Sequence[Any]) -> str:
    """ "call_tool takes `name` and `arguments` (not `args`)": one line from pydantic's error list.

    Short and without pydantic's URL: a model reads it and retries with the right names.
    """
    problems = []
    for error in errors:
        field = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
        kind, ctx = error.get("type", ""), error.get("ctx") or {}
        if kind == "unexpected_keyword_argument":
            problems.append(f"not `{field}`")
        elif kind in ("missing_argument", "missing"):
            problems.append(f"`{field}` is missing")
        elif kind in ("greater_than_equal", "less_than_equal") and ("ge" in ctx or "le" in ctx):
            bound = f"at least {ctx['ge']}" if "ge" in ctx else f"at most {ctx['le']}"
            problems.append(f"`{field}` must be {bound}, not {_short(error.get('input'))}")
        else:
            problems.append(f"`{field}`: {str(error.get('msg', kind)).lower()}, not {_short(error.get('input'))}")
    names = [f"`{name}`" for name in parameters]
    takes = " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)
    return f"{tool} takes {takes} ({'; '.join(problems)})."


def _short(value: Any, max_chars: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
