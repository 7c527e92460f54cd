"""``${keyring:SERVICE/NAME}`` references: secrets kept in the OS keyring instead of the environment.

Through the ``keyring`` library (macOS Keychain, Windows Credential Locker,
the Secret Service on Linux desktops). Where there is no backend (a headless
Linux box, a container) a reference fails with a message that says so, and
``${VAR}`` keeps working. ``${keyring:NAME}`` without a service means service
``discovery-router``, the one ``discovery-router secret set NAME`` writes to.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from discovery_router.errors import KeyringUnavailableError, SecretError
from discovery_router.paths import APP_NAME

DEFAULT_SERVICE = APP_NAME
_PATTERN = re.compile(r"\$\{keyring:([^}]*)\}")
NO_BACKEND = (
    "no OS keyring backend is available here (typical of headless Linux and containers): install and unlock one "
    "(e.g. gnome-keyring or KWallet), or choose one with PYTHON_KEYRING_BACKEND (the keyrings.alt package has "
    "file-based ones), or put the secret in an environment variable and write ${VAR} instead"
)


Lookup = Callable[[str, str], str | None]
"""(service, name) -> the stored secret, or None when there is none."""


def split_reference(reference: str) -> tuple[str, str]:
    """``SERVICE/NAME`` -> (SERVICE, NAME); a bare ``NAME`` uses :data:`DEFAULT_SERVICE`."""
    reference = reference.strip()
    service, slash, name = reference.rpartition("/")
    service = service.strip() if slash else DEFAULT_SERVICE
    name = name.strip()
    if not service or not name:
        raise SecretError(f"a keyring reference is SERVICE/NAME or NAME, not {reference!r}")
    return service, name


def has_reference(value: str) -> bool:
    return bool(_PATTERN.search(value))


def expand_keyring(value: str, lookup: Lookup | None = None) -> tuple[str, list[str]]:
    """Replace every ``${keyring:...}``; returns the text and the secrets used (for the redactor)."""
    if not has_reference(value):
        return value, []
    lookup = lookup or get_secret
    found: list[str] = []

    def replace(match: re.Match[str]) -> str:
        service, name = split_reference(match.group(1))
        secret = lookup(service, name)
        if secret is None:
            shown = name if service == DEFAULT_SERVICE else f"{service}/{name}"
            raise SecretError(
                f"the OS keyring has no secret {service}/{name} (store it with `discovery-router secret set {shown}`)"
            )
        found.append(secret)
        return secret

    return _PATTERN.sub(replace, value), found


def placeholder_lookup(_service: str, _name: str) -> str:
    """For checking a file's shape without reading any secret (``list``)."""
    return "set"


def _backend():
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise KeyringUnavailableError(NO_BACKEND)
    return keyring


def backend_name() -> str | None:
    """The keyring backend in use, or None where there is none."""
    try:
        backend = _backend().get_keyring()
        return f"{type(backend).__module__}.{type(backend).__name__}"
    except KeyringUnavailableError:
        return None


INSECURE_MODULES = ("keyrings.alt", "keyring.backends.null", "keyring.backends.fail")
"""Backends that keep secrets readable by anyone who can read the user's files (keyrings.alt's plaintext and
base64 files), or keep nothing at all; a test extra, never what a normal install should rely on."""


def insecure_backend(name: str | None = None) -> str | None:
    """Why the keyring backend in use does not protect secrets, or None when it is a real OS keyring.

    ``name``: a backend name from :func:`backend_name` (default: the one in use).
    """
    name = backend_name() if name is None else name
    if name is None:
        return "there is no OS keyring backend here"
    if name.startswith(INSECURE_MODULES):
        return (
            f"the keyring backend {name} is not an OS keyring: it keeps secrets in a plain file "
            "(install and unlock gnome-keyring or KWallet, or use ${VAR} instead)"
        )
    return None


def get_secret(service: str, name: str) -> str | None:
    from keyring import errors

    keyring = _backend()
    try:
        return keyring.get_password(service, name)
    except errors.NoKeyringError:
        raise KeyringUnavailableError(NO_BACKEND) from None
    except errors.KeyringError as exc:  # locked, denied ...
        raise SecretError(f"the OS keyring refused to read {service}/{name}: {type(exc).__name__}") from None


def set_secret(service: str, name: str, value: str) -> None:
    from keyring import errors

    keyring = _backend()
    try:
        keyring.set_password(service, name, value)
    except errors.NoKeyringError:
        raise KeyringUnavailableError(NO_BACKEND) from None
    except errors.KeyringError as exc:
        raise SecretError(f"the OS keyring refused to store {service}/{name}: {type(exc).__name__}") from None


def delete_secret(service: str, name: str) -> bool:
    """Delete one secret; False when there was none."""
    from keyring import errors

    keyring = _backend()
    try:
        keyring.delete_password(service, name)
    except errors.PasswordDeleteError:  # there was none
        return False
    except errors.NoKeyringError:
        raise KeyringUnavailableError(NO_BACKEND) from None
    except errors.KeyringError as exc:
        raise SecretError(f"the OS keyring refused to delete {service}/{name}: {type(exc).__name__}") from None
    return True
