"""The benchmark harness runs end to end on small inputs and writes well-formed outputs.

Only shape is checked here, never timing or quality numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.corpus import DEFAULT_CORPUS

ROOT = Path(__file__).resolve().parents[1]
CORPUS = DEFAULT_CORPUS  # ../shared/data/etom beside the repository (or $ETOM_DIR)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

EXPECTED_KEYS = {
    "tokens": {"suite", "catalogs", "checks", "plots", "tokenizers"},
    "retrieval": {"suite", "retrievers", "checks", "plots", "queries", "tools"},
    "latency": {"suite", "forwarding", "search", "checks", "plots"},
    "scale": {"suite", "rows", "postgres_rows", "checks", "plots", "sizes"},
    "soak": {"suite", "calls", "mismatches", "errors", "samples", "checks", "plots"},
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    if not (CORPUS / "tools.jsonl").exists():
        pytest.skip(f"benchmark corpus not found at {CORPUS}")
    pytest.importorskip("matplotlib")
    pytest.importorskip("quicktok")
    out = tmp_path_factory.mktemp("bench")
    rankings = out / "rankings.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), "--quiet", "--rankings", str(rankings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_every_suite_writes_json_with_expected_keys(quick_run: Path) -> None:
    for suite, keys in EXPECTED_KEYS.items():
        data = json.loads((quick_run / f"{suite}.json").read_text())
        assert "error" not in data, data.get("error")
        assert keys <= set(data), (suite, keys - set(data))
        for c in data["checks"]:
            assert {"name", "target", "measured", "pass"} <= set(c)


def test_token_catalogs_are_counted(quick_run: Path) -> None:
    data = json.loads((quick_run / "tokens.json").read_text())
    assert len(data["catalogs"]) == 2
    for cat in data["catalogs"]:
        for unit in ("o200k_base", "cl100k_base"):
            assert cat["merged"][unit] > cat["router_upfront"][unit] > 0
            assert cat["per_lookup"][unit]["lookup"]["median"] > 0


def test_retrieval_reports_every_retriever(quick_run: Path) -> None:
    data = json.loads((quick_run / "retrieval.json").read_text())
    keys = [r["key"] for r in data["retrievers"]]
    assert keys == ["router", "bm25", "dense", "peer"]
    for r in data["retrievers"]:
        if r["metrics"] is not None:
            assert {"R@1", "R@3", "R@5", "R@10", "MRR", "all@10"} <= set(r["metrics"]["all"])
    lines = (quick_run / "rankings.jsonl").read_text().splitlines()
    assert len(lines) == data["queries"]
    first = json.loads(lines[0])
    assert set(first) == {"query", "ranked"} and len(first["ranked"]) <= 10
    assert all(set(item) == {"server", "tool"} for item in first["ranked"])


def test_summary_and_plots(quick_run: Path) -> None:
    summary = (quick_run / "summary.md").read_text()
    assert "PASS/MISS" in summary and "## Machine" in summary
    pngs = sorted(quick_run.glob("*.png"))
    assert {p.name for p in pngs} >= {"tokens.png", "retrieval.png", "latency.png", "scale.png", "soak.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_soak_lost_nothing(quick_run: Path) -> None:
    data = json.loads((quick_run / "soak.json").read_text())
    assert data["calls"] > 0 and data["mismatches"] == 0 and data["errors"] == 0
    assert data["samples"] and all(s["rss_mb"] for s in data["samples"])


def test_retrieval_ranks_queries_with_steps_in_both_modes(tmp_path: Path) -> None:
    """A labelled fixture whose queries carry plans: both modes reported, ranked_steps written."""
    pytest.importorskip("matplotlib")
    corpus = ROOT / "tests" / "data" / "steps_corpus"
    rankings = tmp_path / "rankings.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "retrieval",
            "--corpus",
            str(corpus),
            "--out",
            str(tmp_path),
            "--quiet",
            "--rankings",
            str(rankings),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads((tmp_path / "retrieval.json").read_text())
    assert data["queries_with_steps"] == 2
    by_key = {r["key"]: r for r in data["retrievers"]}
    assert by_key["router_steps"]["metrics"]["all"]["n"] == by_key["router_whole_planned"]["metrics"]["all"]["n"] == 2
    assert by_key["router_steps"]["metrics"]["all"]["R@3"] == 1.0  # each step's best tool is its gold tool
    lines = [json.loads(line) for line in rankings.read_text().splitlines()]
    assert [("ranked_steps" in line) for line in lines] == [True, True, False]
    first = lines[0]["ranked_steps"]
    assert first[:3] == [
        {"server": "Weather", "tool": "get_forecast"},
        {"server": "Translate", "tool": "translate_text"},
        {"server": "Mail", "tool": "send_email"},
    ]
    assert len(first) == len({(r["server"], r["tool"]) for r in first}) <= 10
