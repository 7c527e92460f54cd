"""Secrets written inline in a server entry: found, named by key, and never shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlparse

from discovery_router.onboarding.normalise import env_var_name
from discovery_router.governance.redact import Redactor

_SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSW|PASS$|PWD|AUTH|CREDENTIAL|COOKIE|SESSION|PRIVATE|BEARER|^PAT$|_PAT$)", re.IGNORECASE
)
_CREDENTIAL_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
_REFERENCE = re.compile(r"\$\{[^}]+\}")


@dataclass(frozen=True)
class InlineSecret:
    server: str
    where: str  # "env.GITHUB_TOKEN", "headers.Authorization", "args[3]", "url query api_key"
    variable: str  # the ${VAR} we suggest

    def advice(self) -> str:
        return (
            f"{self.server}: {self.where} is stored inline; move it to ${{{self.variable}}} in the environment "
            f"(or the keyring, when supported)"
        )


def _looks_secret(name: str, value: str) -> bool:
    if not value or _REFERENCE.fullmatch(value.strip()):
        return False
    if _REFERENCE.search(value) and not _CREDENTIAL_URL.search(_REFERENCE.sub("", value)):
        # "Bearer ${TOKEN}": the secret part is already a reference
        return False
    if _SECRET_NAME.search(name) or _CREDENTIAL_URL.search(value):
        return True
    # a long opaque token under an innocent name (letters and digits mixed, no spaces, no path)
    return (
        len(value) >= 24
        and " " not in value
        and "/" not in value
        and bool(re.search(r"[A-Za-z]", value) and re.search(r"\d", value))
    )


def _header_variable(server: str, header: str) -> str:
    lowered = header.lower()
    if lowered in ("authorization", "proxy-authorization"):
        return env_var_name(f"{server}_token")
    if lowered in ("x-api-key", "api-key", "apikey", "x-auth-token", "x-token"):
        return env_var_name(f"{server}_api_key")
    return env_var_name(header)


def find_inline_secrets(server: str, entry: dict[str, Any]) -> tuple[list[InlineSecret], list[str]]:
    """Findings (key names only) and the secret values themselves, for a :class:`Redactor`."""
    findings: list[InlineSecret] = []
    values: list[str] = []
    for section in ("env", "headers"):
        mapping = entry.get(section)
        if not isinstance(mapping, dict):
            continue
        for key, value in mapping.items():
            if not isinstance(value, str):
                continue
            if section == "headers":
                secret = not _REFERENCE.search(value) and (
                    _SECRET_NAME.search(key)
                    or _looks_secret(key, value)
                    or key.lower() in ("x-api-key", "api-key", "apikey")
                )
            else:
                secret = _looks_secret(key, value)
            if secret:
                var = env_var_name(key) if section == "env" else _header_variable(server, key)
                findings.append(InlineSecret(server, f"{section}.{key}", var))
                values.append(value)
    args = entry.get("args")
    if isinstance(args, list):
        for i, arg in enumerate(args):
            if not isinstance(arg, str):
                continue
            flag, eq, value = arg.partition("=")
            if eq and flag.startswith("-") and _looks_secret(flag, value) and _SECRET_NAME.search(flag):
                findings.append(InlineSecret(server, f"args[{i}] ({flag})", env_var_name(f"{server}_{flag}")))
                values.append(value)
            elif (
                i > 0
                and isinstance(args[i - 1], str)
                and args[i - 1].startswith("-")
                and _SECRET_NAME.search(args[i - 1])
                and _looks_secret(args[i - 1], arg)
            ):
                findings.append(
                    InlineSecret(server, f"args[{i}] (after {args[i - 1]})", env_var_name(f"{server}_{args[i - 1]}"))
                )
                values.append(arg)
            elif _CREDENTIAL_URL.search(arg) and not _REFERENCE.search(arg):
                findings.append(
                    InlineSecret(server, f"args[{i}] (credentials in a URL)", env_var_name(f"{server}_url"))
                )
                values.append(arg)
    url = entry.get("url")
    if isinstance(url, str) and not _REFERENCE.search(url):
        parsed = urlparse(url)
        if parsed.password:
            findings.append(InlineSecret(server, "url (password)", env_var_name(f"{server}_password")))
            values.append(parsed.password)
        for key, value in parse_qsl(parsed.query):
            if _looks_secret(key, value) and _SECRET_NAME.search(key):
                findings.append(InlineSecret(server, f"url query {key}", env_var_name(f"{server}_{key}")))
                values.append(value)
    return findings, values


def redactor_for(entries: dict[str, dict[str, Any]]) -> Redactor:
    """Masks every inline env/header value and every detected secret, whatever the output."""
    redactor = Redactor()
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            continue
        for section in ("env", "headers"):
            mapping = entry.get(section)
            if isinstance(mapping, dict):
                redactor.add(*(v for v in mapping.values() if isinstance(v, str) and not _REFERENCE.fullmatch(v)))
        redactor.add(*find_inline_secrets(name, entry)[1])
    return redactor
