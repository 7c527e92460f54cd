"""A fresh clone has no ../shared corpus: the benchmarks say where it comes from and fail, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_missing_corpus_exits_non_zero_and_says_where_it_comes_from(tmp_path: Path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "retrieval",
            "--quick",
            "--quiet",
            "--corpus",
            str(tmp_path / "etom"),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"no corpus at {tmp_path / 'etom'}" in proc.stderr
    assert "../shared/data/etom" in proc.stderr and "$ETOM_DIR" in proc.stderr and "--corpus DIR" in proc.stderr
