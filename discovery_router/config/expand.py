"""``${VAR}`` and ``${VAR:-default}`` expansion, so secrets stay in the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping

from discovery_router.errors import MissingVariableError

_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand every reference in ``value``.

    Returns the expanded string and the values taken from the environment, so
    the caller can register them for redaction. A reference without a default
    to an unset variable raises :class:`~discovery_router.errors.MissingVariableError`. ``:-`` follows the
    shell: an empty variable also takes the default.
    """
    substituted: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        if found:
            substituted.append(found)
            return found
        if default is not None:
            return default
        if found is not None:
            return found
        raise MissingVariableError(name)

    return _PATTERN.sub(replace, value), substituted
