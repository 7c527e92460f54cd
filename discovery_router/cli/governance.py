"""``discovery-router secret set|delete NAME`` and ``discovery-router audit``: the governance commands."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from discovery_router.governance import audit

from discovery_router.config import keyring as keyring_refs
from discovery_router.config.loader import EVERY_VARIABLE_SET, load_config, load_settings
from discovery_router.config.model import RouterConfig
from discovery_router.team import database_url, read_shared_trail
from discovery_router.team.url import redacted_url
from discovery_router.errors import KeyringUnavailableError, RouterError, SecretError
from discovery_router.cli.output import EXIT_FAILURE, EXIT_OK, Output, Table


def register(sub: Any) -> None:
    secret = sub.add_parser("secret", help="store or delete a secret in the OS keyring (for ${keyring:...})")
    secret_sub = secret.add_subparsers(dest="secret_command", metavar="SUBCOMMAND", required=True)
    set_ = secret_sub.add_parser("set", help="store a secret: typed without echo, or read from stdin when piped")
    set_.add_argument("name", help="NAME (service discovery-router) or SERVICE/NAME")
    set_.set_defaults(handler=cmd_secret_set)
    delete = secret_sub.add_parser("delete", help="delete a stored secret")
    delete.add_argument("name", help="NAME or SERVICE/NAME")
    delete.set_defaults(handler=cmd_secret_delete)

    log = sub.add_parser("audit", help="show recent tool calls from the audit log")
    log.add_argument("--since", default=None, metavar="WHEN", help="30m, 2h, 7d, or an ISO date/time")
    log.add_argument("--server", default=None, help="only this server's calls")
    log.add_argument("--limit", type=int, default=50, help="newest N calls (0: all; default 50)")
    log.add_argument("--json", action="store_true", help="machine-readable output")
    log.set_defaults(handler=cmd_audit)


def _reference(name: str) -> tuple[str, str]:
    try:
        return keyring_refs.split_reference(name)
    except SecretError as exc:
        raise RouterError(str(exc)) from None


def _read_secret(label: str) -> str:
    """From the terminal without echo, or the whole of stdin (one trailing newline dropped) when piped."""
    if sys.stdin.isatty():
        value = getpass.getpass(f"value for {label} (not echoed): ")
    else:
        value = sys.stdin.read()
        value = value.removesuffix("\n")
        value = value.removesuffix("\r")
    if not value:
        raise RouterError("no value given: nothing stored")
    return value


def cmd_secret_set(args: argparse.Namespace) -> int:
    service, name = _reference(args.name)
    label = f"{service}/{name}"
    try:
        backend = keyring_refs.backend_name()
        if backend is None:
            raise KeyringUnavailableError(keyring_refs.NO_BACKEND)
        insecure = keyring_refs.insecure_backend(backend)
        if insecure:  # stored as asked, but never called "the OS keyring"
            print(f"warning: {insecure}", file=sys.stderr)
        keyring_refs.set_secret(service, name, _read_secret(label))
    except SecretError as exc:
        raise RouterError(f"cannot store {label}: {exc}") from None
    reference = name if service == keyring_refs.DEFAULT_SERVICE else label
    where = f"the insecure keyring backend {backend}" if insecure else f"the OS keyring ({backend})"
    print(f"stored {label} in {where}; refer to it as ${{keyring:{reference}}}")
    return EXIT_OK


def cmd_secret_delete(args: argparse.Namespace) -> int:
    service, name = _reference(args.name)
    label = f"{service}/{name}"
    try:
        deleted = keyring_refs.delete_secret(service, name)
    except SecretError as exc:
        raise RouterError(f"cannot delete {label}: {exc}") from None
    print(
        f"deleted {label}" if deleted else f"no secret {label} in the OS keyring",
        file=sys.stdout if deleted else sys.stderr,
    )
    return EXIT_OK if deleted else EXIT_FAILURE


def cmd_audit(args: argparse.Namespace) -> int:
    config = load_config(args.config, missing_ok=args.config is None, environ=EVERY_VARIABLE_SET)
    out = Output(as_json=args.json)
    try:
        since = audit.parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise RouterError(str(exc)) from None
    query = audit.AuditQuery(since=since, server=args.server, limit=args.limit or None)
    url = _team_database(config)
    if url is not None:  # every replica writes there: one trail
        records = read_shared_trail(url, query)
        where = f"the team trail ({redacted_url(url)})"
    else:
        path = audit.audit_path(config.settings.audit_log)
        if path is None:
            out.line('the audit log is disabled (router.audit_log is "none")')
            out.document([])
            return EXIT_OK
        records, where = audit.read_entries(path, query), str(path)
    if not records:
        out.line(f"no calls recorded in {where}" + (" matching the filters" if args.since or args.server else ""))
    rows = [
        [
            _short_time(r.get("time")),
            r.get("server") or "",
            r.get("tool") or "",
            r.get("outcome") or "",
            _ms(r.get("duration_ms")),
            ", ".join(r.get("argument_keys") or []),
            _note(r),
        ]
        for r in records
    ]
    if records:
        out.table(
            Table(
                f"tool calls in {where}",
                ["time (UTC)", "server", "tool", "outcome", "ms", "argument keys", "note"],
                rows,
                status_column=3,
            )
        )
    out.document(records)
    return EXIT_OK


def _team_database(config: RouterConfig) -> str | None:
    """The team database URL, with ``${VAR}`` in ``router.database_url`` read from the real environment
    (the config was loaded with placeholders: reading the trail needs no server's secrets)."""
    if config.settings.database_url is None or config.path is None or not config.path.exists():
        return database_url(config.settings)
    settings = load_settings(config.path)
    return database_url(settings)


def _short_time(value: Any) -> str:
    text = str(value or "")
    return text.replace("T", " ")[:19]


def _ms(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else ""


def _note(record: dict[str, Any]) -> str:
    if record.get("confirmed"):
        return "confirmed by the user"
    reason = str(record.get("reason") or "")
    return reason if len(reason) <= 100 else reason[:99] + "…"
