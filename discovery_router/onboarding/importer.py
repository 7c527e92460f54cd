"""``import``: read other clients' servers, plan how they merge into the router's config, then write."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discovery_router.config.loader import read_raw, servers_of
from discovery_router.config.edit import add_servers
from discovery_router.errors import ConfigError, RouterError
from discovery_router.onboarding.clients import CLIENTS, Environment, Source, file_source, read_client_file, server_maps
from discovery_router.onboarding.normalise import identity, is_router_entry, normalise
from discovery_router.onboarding.secrets import InlineSecret, find_inline_secrets, redactor_for
from discovery_router.governance.redact import Redactor

ADD, RENAME, SKIP, IGNORE, ERROR = "add", "rename", "skip", "ignore", "error"


@dataclass
class PlanItem:
    action: str
    name: str  # the name in the router's config
    original: str  # the name in the client's file
    client: str
    source: str  # the file, for display
    entry: dict[str, Any] | None = None
    reason: str = ""
    converted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    secrets: list[InlineSecret] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return self.action in (ADD, RENAME)

    def to_json(self) -> dict[str, Any]:
        """Everything but the entry's values (which may hold secrets)."""
        return {
            "action": self.action,
            "name": self.name,
            "original": self.original,
            "client": self.client,
            "source": self.source,
            "reason": self.reason,
            "converted": self.converted,
            "dropped": self.dropped,
            "transport": _transport_word(self.entry) if self.entry else None,
            "target": describe_target(self.entry),
            "inline_secrets": [s.where for s in self.secrets],
        }


@dataclass(frozen=True)
class SkippedProject:
    """A Claude Code project whose own (local-scope) servers a plain import leaves out."""

    project: str  # the folder, as Claude Code keys it in ~/.claude.json
    servers: list[str]
    source: str  # the file, for display

    @property
    def command(self) -> str:
        return f"discovery-router import --from claude-code --project {shlex.quote(self.project)}"


@dataclass
class ImportPlan:
    config_path: Path
    read: list[str] = field(default_factory=list)  # files read
    unreadable: list[str] = field(default_factory=list)  # "file: reason"
    not_found: list[str] = field(default_factory=list)  # clients asked for by name whose files do not exist
    items: list[PlanItem] = field(default_factory=list)
    skipped_projects: list[SkippedProject] = field(default_factory=list)
    """Claude Code's per-project servers, kept per project: listed, imported only with ``--project``."""
    redactor: Redactor = field(default_factory=Redactor)
    written: bool = False

    @property
    def to_write(self) -> list[PlanItem]:
        return [i for i in self.items if i.writes]

    @property
    def secrets(self) -> list[InlineSecret]:
        return [s for i in self.items if i.writes for s in i.secrets]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": str(self.config_path),
            "read": self.read,
            "unreadable": self.unreadable,
            "not_found": self.not_found,
            "written": self.written,
            "items": [i.to_json() for i in self.items],
            "skipped_projects": [
                {"project": p.project, "servers": p.servers, "source": p.source, "import_with": p.command}
                for p in self.skipped_projects
            ],
            "inline_secrets": [
                {"server": s.server, "where": s.where, "suggest": f"${{{s.variable}}}"} for s in self.secrets
            ],
        }


def _transport_word(entry: dict[str, Any]) -> str:
    if "command" in entry:
        return "stdio"
    from discovery_router.config.loader import infer_transport

    return entry.get("transport") or infer_transport(str(entry.get("url", "")))


def describe_target(entry: dict[str, Any] | None) -> str:
    """``command arg...`` or the URL, for a table cell (pass it through the plan's redactor)."""
    if not entry:
        return ""
    if "command" in entry:
        return " ".join(str(x) for x in [entry.get("command", ""), *(entry.get("args") or [])])
    return str(entry.get("url", ""))


def select_sources(env: Environment, wanted: list[str] | None) -> tuple[list[Source], list[str]]:
    """The files to read for ``--from`` (client names or files; all clients when empty)."""
    sources: list[Source] = []
    not_found: list[str] = []
    for item in wanted or list(CLIENTS):
        if item in CLIENTS:
            found = [s for s in CLIENTS[item].sources(env) if s.path.is_file()]
            if not found and wanted:
                not_found.append(
                    f"{item}: no config file at " + ", ".join(env.display(s.path) for s in CLIENTS[item].sources(env))
                )
            sources.extend(found)
        else:
            path = Path(item).expanduser()
            if not path.is_absolute() and env.cwd is not None:
                path = env.cwd / path
            if not path.is_file():
                raise RouterError(f"--from {item}: not a known client ({', '.join(CLIENTS)}) nor an existing file")
            sources.append(file_source(path))
    return sources, not_found


def _project_sources(env: Environment, project: Path, wanted: list[str] | None) -> list[Source]:
    """``--project``: Claude Code's own file (for its ``projects`` entry) and the project's ``.mcp.json``."""
    if wanted and any(item != "claude-code" for item in wanted):
        raise RouterError(
            "--project imports one Claude Code project's servers: use it with --from claude-code (or without --from)"
        )
    user = next(s for s in CLIENTS["claude-code"].sources(env) if s.scope == "user")
    return [user, Source("claude-code", project / ".mcp.json", "project", project)]


def _same_folder(key: str, project: Path) -> bool:
    return Path(key).expanduser().resolve() == project.resolve()


def plan_import(
    env: Environment, config_path: Path, wanted: list[str] | None = None, project: Path | None = None
) -> ImportPlan:
    """What importing would do; reads files only.

    Claude Code keeps servers per project (``projects.<path>.mcpServers`` in ``~/.claude.json``): they
    belong to that project, not to every session, so by default they are only listed
    (``skipped_projects``). With ``project``, only that project's servers are imported: its entry there
    and its ``.mcp.json``.
    """
    plan = ImportPlan(config_path)
    if project is not None:
        project = project.expanduser()
        if not project.is_absolute() and env.cwd is not None:
            project = env.cwd / project
    router_raw = read_raw(config_path) if config_path.exists() else {}
    existing = servers_of(router_raw)
    if not isinstance(existing, dict):
        raise ConfigError(config_path, None, "mcpServers", "must be an object mapping server names to entries")
    taken: dict[str, str] = {name: identity(e) for name, e in existing.items() if isinstance(e, dict)}
    by_identity: dict[str, str] = {}
    for name, ident in taken.items():
        by_identity.setdefault(ident, name)

    if project is None:
        sources, plan.not_found = select_sources(env, wanted)
    else:
        sources = [s for s in _project_sources(env, project, wanted) if s.path.is_file()]
    found_project = False
    all_entries: dict[str, dict[str, Any]] = {}
    seen_files: set[Path] = set()
    for source in sources:
        resolved = source.path.resolve()
        if resolved in seen_files or (config_path.exists() and resolved == config_path.resolve()):
            continue
        seen_files.add(resolved)
        try:
            raw, _commented = read_client_file(source.path)
        except ConfigError as exc:
            if source.client == "file":
                raise
            plan.unreadable.append(f"{env.display(source.path)}: {exc.message}")
            continue
        plan.read.append(env.display(source.path))
        for smap in server_maps(raw, source):
            per_project = smap.keys[0] == "projects"
            where = env.display(source.path) + (f" ({smap.keys[1]})" if per_project else "")
            if project is not None:
                if per_project and not _same_folder(smap.keys[1], project):
                    continue
                if not per_project and source.scope != "project":
                    continue  # user-scope servers: a plain `import` brings them
                found_project = True
            elif per_project:
                plan.skipped_projects.append(
                    SkippedProject(smap.keys[1], sorted(smap.entries), env.display(source.path))
                )
                continue
            for original, raw_entry in smap.entries.items():
                item = _plan_one(env, smap.project, source.client, where, original, raw_entry, taken, by_identity)
                plan.items.append(item)
                if item.entry is not None:
                    all_entries[f"{where}:{original}"] = item.entry
    if project is not None and not found_project:
        user = _project_sources(env, project, wanted)[0]
        raise RouterError(
            f"--project {project}: Claude Code has no servers for this folder (none under "
            f'"projects" in {env.display(user.path)}, no {env.display(project / ".mcp.json")})' + _known_projects(user)
        )
    plan.redactor = redactor_for(all_entries)
    return plan


def _known_projects(user: Source) -> str:
    """ "; projects with servers: ..." from Claude Code's file, to correct a mistyped --project."""
    if not user.path.is_file():
        return ""
    try:
        raw, _ = read_client_file(user.path)
    except ConfigError:
        return ""
    names = [m.keys[1] for m in server_maps(raw, user) if m.keys[0] == "projects"]
    return f"; projects with servers: {', '.join(names)}" if names else ""


def _plan_one(
    env: Environment,
    project: Path | None,
    client: str,
    where: str,
    original: str,
    raw_entry: Any,
    taken: dict[str, str],
    by_identity: dict[str, str],
) -> PlanItem:
    item = PlanItem(SKIP, original, original, client, where)
    if is_router_entry(raw_entry):
        item.action, item.reason = IGNORE, "the router's own entry"
        return item
    result = normalise(original, raw_entry, env, project)
    item.name, item.entry = result.name, result.entry
    item.converted, item.dropped = result.converted, result.dropped
    if result.error:
        item.action, item.reason, item.entry = ERROR, f"not imported: {result.error}", None
        return item
    ident = identity(result.entry)
    if ident in by_identity:
        same = by_identity[ident]
        item.name = same
        item.reason = "already present" if same == result.name else f"already present as {same}"
        return item
    name = result.name
    if name in taken:
        suffix = client if client != "file" else "imported"
        candidate, n = f"{name}-{suffix}", 2
        while candidate in taken:
            candidate, n = f"{name}-{suffix}-{n}", n + 1
        item.action, item.reason = RENAME, f"{name} is taken by a different server"
        name = candidate
    elif name != original:
        item.action, item.reason = RENAME, "name not allowed by the router"
    else:
        item.action = ADD
    item.name = name
    item.secrets = find_inline_secrets(name, result.entry)[0]
    taken[name] = ident
    by_identity[ident] = name
    return item


def apply_import(plan: ImportPlan) -> None:
    """Add the planned entries to the router's config (validated first, written atomically)."""
    if not plan.to_write:
        return
    add_servers(
        plan.config_path, {item.name: item.entry for item in plan.to_write if item.entry is not None}, replace=True
    )  # the plan already renamed or skipped clashing names
    plan.written = True
