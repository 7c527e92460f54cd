"""The team database's URL: where it is set, and how it is said without its password.

No driver import here: the loader and the router read the setting on every start, and a machine without a
database (the default) must never import psycopg.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from discovery_router.config.model import RouterSettings
from discovery_router.paths import DATABASE_ENV_VAR

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/?#]*):(?P<password>[^@/?#]*)@")
_PASSWORD_PARAM = re.compile(r"(?P<key>\bpassword=)(?P<password>[^&\s]*)", re.IGNORECASE)
MASK = "***"


def database_url(settings: RouterSettings) -> str | None:
    """``router.database_url``, else ``$DISCOVERY_ROUTER_DATABASE_URL``; None (or empty): no team database."""
    chosen = settings.database_url or os.environ.get(DATABASE_ENV_VAR) or ""
    return chosen.strip() or None


def passwords_in(url: str) -> list[str]:
    """The password(s) a URL carries (userinfo and a ``password=`` parameter), raw and percent-decoded."""
    found: list[str] = []
    for match in (*_USERINFO.finditer(url), *_PASSWORD_PARAM.finditer(url)):
        value = match.group("password")
        if value:
            found += [value, unquote(value)]
    try:
        parsed = urlsplit(url)
        if parsed.password:
            found.append(parsed.password)
    except ValueError:
        pass
    return list(dict.fromkeys(found))


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs and errors)."""
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['key']}{MASK}", url)


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error, say) with the URL and its password masked, however short the password is."""
    text = text.replace(url, redacted_url(url))
    for password in sorted(passwords_in(url), key=len, reverse=True):
        text = text.replace(password, MASK)
    return text


def where(url: str) -> str:
    """``database "name" on host:port``: how messages name the database (no user, no password)."""
    try:
        parsed = urlsplit(url)
        host = parsed.hostname or "localhost"
        port = parsed.port or 5432
        name = parsed.path.lstrip("/") or parsed.username or "postgres"
    except ValueError:
        return "the database at " + redacted_url(url)
    return f'database "{unquote(name)}" on {host}:{port}'
