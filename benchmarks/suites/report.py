"""Statistics, target checks, tables, JSON and plots for the suites' results."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pct(values: Sequence[float], *qs: float) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return {f"p{int(q) if q == int(q) else q}": float("nan") for q in qs}
    return {f"p{int(q) if q == int(q) else q}": float(np.percentile(arr, q)) for q in qs}


def check(name: str, target: str, measured: Any, passed: bool | None, note: str = "") -> dict[str, Any]:
    """One target: ``passed`` None means it could not be measured (n/a)."""
    return {"name": name, "target": target, "measured": measured, "pass": passed, "note": note}


def p50_check(name: str, limit_ms: float, timings: dict[str, Any], note: str = "", digits: int = 3) -> dict[str, Any]:
    """A timing target: ``timings``' p50 (ms) at most ``limit_ms``."""
    return check(name, f"<= {limit_ms:g} ms", round(timings["p50"], digits), timings["p50"] <= limit_ms, note)


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "**MISS**")


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # nan
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |")
    return "\n".join(lines)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, ctx: Any, name: str) -> str:
    """Lay out, write ``<out>/<name>`` and close a matplotlib figure; returns the file name."""
    fig.tight_layout()
    path = ctx.out / name
    fig.savefig(path, dpi=110)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name
