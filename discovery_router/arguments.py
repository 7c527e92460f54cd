"""Preparing call_tool arguments: undo stringified JSON, then validate against the inputSchema.

Models often send ``arguments`` (or a nested object/array inside it) as a JSON
string. We accept a string when it parses to what the schema wants, and we
reject anything the schema rejects before a byte goes upstream, with the
validator's own complaint.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import regex
from jsonschema.exceptions import SchemaError, UnknownType, ValidationError
from referencing.exceptions import Unresolvable

from discovery_router.errors import InvalidArgumentsError

_MAX_REPORTED_ERRORS = 5
logger = logging.getLogger(__name__)


def parse_arguments(tool_id: str, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """``None`` -> ``{}``; a JSON-object string -> its object; anything else is an error."""
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        text = arguments.strip()
        if not text:
            return {}
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentsError(
                f"Invalid arguments for {tool_id}: a string must be a JSON object ({exc.msg} at column {exc.colno})."
            ) from None
    if not isinstance(arguments, Mapping):
        raise InvalidArgumentsError(
            f"Invalid arguments for {tool_id}: expected an object of named arguments, got {type(arguments).__name__}."
        )
    bad = _unencodable_path(arguments, [])
    if bad is not None:
        where = "/".join(_shown(part) for part in bad) or "(top level)"
        raise InvalidArgumentsError(
            f"Invalid arguments for {tool_id} (nothing was sent): {where}: text that is not valid Unicode"
            " (a lone surrogate such as \\ud800) cannot be sent as UTF-8."
        )
    return dict(arguments)


_SURROGATE = re.compile("[\ud800-\udfff]")
"""The only str content UTF-8 cannot encode: a lone surrogate (``\\ud800``) as JSON lets a client send."""


def _shown(key: Any) -> str:
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


def _unencodable_path(value: Any, path: list[Any]) -> list[Any] | None:
    """The path of the first key or string that UTF-8 cannot encode, else None (a search, no copies).

    A lone surrogate sent upstream breaks the shared connection's encoder, so it is refused here.
    """
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and _SURROGATE.search(key):
                return [*path, key]
            found = _unencodable_path(item, [*path, key])
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _unencodable_path(item, [*path, str(index)])
            if found is not None:
                return found
    return None


def coerce_stringified(arguments: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Parse top-level string values whose property schema wants an object or array."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return arguments
    fixed = dict(arguments)
    for key, value in arguments.items():
        wanted = _json_types(properties.get(key))
        if isinstance(value, str) and wanted & {"object", "array"} and "string" not in wanted:
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                continue
            if ("object" in wanted and isinstance(parsed, dict)) or ("array" in wanted and isinstance(parsed, list)):
                fixed[key] = parsed
    return fixed


def _json_types(schema: Any) -> set[str]:
    if not isinstance(schema, Mapping):
        return set()
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or [])
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key) or []:
            types |= _json_types(branch)
    if not types and "properties" in schema:
        types.add("object")
    return types


def validate_arguments(tool_id: str, arguments: dict[str, Any], schema: Mapping[str, Any] | None) -> None:
    """Raise :class:`InvalidArgumentsError` with the validator's messages, paths included."""
    if not schema:
        return
    validator = _validator_for(schema)
    if validator is None:
        return  # the upstream's schema is itself invalid; let the upstream judge the call
    try:
        errors = sorted(validator.iter_errors(arguments), key=lambda e: (list(e.absolute_path), e.message))
    except (SchemaError, UnknownType, Unresolvable) as exc:
        logger.warning(
            "inputSchema of %s cannot be used for validation (%s); forwarding unvalidated", tool_id, type(exc).__name__
        )
        return
    if not errors:
        return
    lines = [_describe(error) for error in errors[:_MAX_REPORTED_ERRORS]]
    more = len(errors) - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    raise InvalidArgumentsError(
        f"Invalid arguments for {tool_id} (nothing was sent):\n- "
        + "\n- ".join(lines)
        + "\nCall describe_tool for its inputSchema."
    )


PATTERN_TIMEOUT = 0.1
"""Seconds one schema ``pattern`` may take on one string (the regex module's time limit)."""


def _search(pattern: str, text: str) -> bool | None:
    """``re.search`` semantics, but bounded: None when the pattern took longer than PATTERN_TIMEOUT.

    An upstream's schema may carry a catastrophically backtracking pattern (``^(a+)+$``); with the
    standard ``re`` one argument could freeze the event loop for every client.
    """
    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT) is not None
    except TimeoutError:
        return None
    except regex.error:
        return True  # a pattern regex cannot read: leave it to the upstream


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any):
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield ValidationError(
            f"checking the value against pattern {pattern!r} took too long (over"
            f" {PATTERN_TIMEOUT:g} s); the router refuses it rather than stall"
        )
    elif not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield ValidationError(f"checking the key {key!r} against pattern {pattern!r} took too long", path=[key])
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_bounded_classes: dict[Any, Any] = {}


def _bounded(validator_cls: Any) -> Any:
    """``validator_cls`` with ``pattern`` and ``patternProperties`` checked under a time limit."""
    bounded = _bounded_classes.get(validator_cls)
    if bounded is None:
        keywords: dict[str, Any] = {"pattern": _pattern}
        if "patternProperties" in validator_cls.VALIDATORS:
            keywords["patternProperties"] = _pattern_properties
        bounded = _bounded_classes[validator_cls] = jsonschema.validators.extend(validator_cls, keywords)
    return bounded


_validators: dict[int, tuple[Mapping[str, Any], Any]] = {}
_MAX_CACHED_VALIDATORS = 4096


def _validator_for(schema: Mapping[str, Any]) -> Any | None:
    """A checked validator per schema object, cached: building one costs more than validating."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_cls.check_schema(schema)
        validator = _bounded(validator_cls)(schema, format_checker=validator_cls.FORMAT_CHECKER)
    except (SchemaError, UnknownType, Unresolvable):
        validator = None
    if len(_validators) >= _MAX_CACHED_VALIDATORS:
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


def _describe(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def prepare_arguments(
    tool_id: str, arguments: Mapping[str, Any] | str | None, schema: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The whole pipeline call_tool runs before forwarding."""
    parsed = parse_arguments(tool_id, arguments)
    if schema:
        parsed = coerce_stringified(parsed, schema)
    validate_arguments(tool_id, parsed, schema)
    return parsed
