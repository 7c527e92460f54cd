"""Measure the product's search on a labelled corpus (default: ETOM dev) under several variants.

Imports the router's own code (discovery_router.search, discovery_router.cache); nothing
here re-implements retrieval. Embeddings are cached under
benchmarks/results/cache, so a second run embeds nothing.

    .venv/bin/python -m benchmarks.tune_retrieval                 # the default variants
    .venv/bin/python -m benchmarks.tune_retrieval --backend sentence-transformers
    .venv/bin/python -m benchmarks.tune_retrieval --sweep         # fusion grid
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from discovery_router.search import SearchIndex, ToolDoc
from discovery_router.search.dense import QUERY_VECTORS
from discovery_router.search.embedders import resolve_embedder
from discovery_router.search.fusion import FusionConfig
from discovery_router.search.text import document_text, embedding_text
from benchmarks.suites.retrieval import KS, aggregate, score_query
from discovery_router.cache import IndexCache

DATA = Path(os.environ.get("ETOM_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "etom")
RESULTS = Path(__file__).resolve().parent / "results"


def load_corpus(folder: Path, queries_file: str) -> tuple[list[ToolDoc], list[dict]]:
    servers = {}
    if (folder / "servers.jsonl").exists():
        for line in open(folder / "servers.jsonl"):
            s = json.loads(line)
            servers[s["server"]] = s.get("description") or ""
    docs = [
        ToolDoc(
            t["server"],
            t["name"],
            t.get("description") or "",
            t.get("inputSchema") or {},
            server_description=servers.get(t["server"], ""),
        )
        for t in map(json.loads, open(folder / "tools.jsonl"))
    ]
    queries = [json.loads(line) for line in open(folder / queries_file)]
    return docs, queries


def evaluate(index: SearchIndex, queries: list[dict], with_server_desc: bool = True) -> dict:
    """Recall, MRR and all@10 per level, scored exactly as the retrieval suite scores the router."""
    rows, latencies = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = index.search(q["query"], limit=max(KS))
        latencies.append(time.perf_counter() - t0)
        groups = [{(m["server"], m["tool"]) for m in g} for g in q["gold"]]
        rows.append((q["level"], score_query([(h.doc.server, h.doc.name) for h in hits], groups)))
    out = aggregate(rows)
    planned = [q for q in queries if q.get("steps")]
    if planned:  # step mode, scored over the merged list as Router.search(query, steps=...) returns it
        for mode in ("whole", "steps"):
            step_rows = []
            for q in planned:
                if mode == "whole":
                    ranked = [(h.doc.server, h.doc.name) for h in index.search(q["query"], limit=max(KS))]
                else:
                    groups_hit = index.search_steps(q["query"], q["steps"], per_step=STEP_LIMIT)
                    ranked = [(h.doc.server, h.doc.name) for h in SearchIndex.merged(groups_hit)][: max(KS)]
                gold = [{(m["server"], m["tool"]) for m in g} for g in q["gold"]]
                step_rows.append(("x", score_query(ranked, gold)))
            out[f"plans {mode}"] = aggregate(step_rows)["all"]
    lat = sorted(latencies)
    out["latency_ms"] = {"p50": 1000 * lat[len(lat) // 2], "p90": 1000 * lat[int(len(lat) * 0.9)]}
    return out


STEP_LIMIT = 3


def row(name: str, res: dict) -> str:
    def cell(m: dict | None) -> str:
        return "/".join(f"{m[f'R@{k}']:.3f}" for k in KS) + f" · {m['MRR']:.3f}" if m else "-"

    cells = [name] + [cell(res.get(lv)) for lv in ("all", "L1", "L2", "L3", "L4")]
    cells.append(f"{res['L4']['all@10']:.2f}" if "L4" in res else "-")
    cells.append(f"{res['latency_ms']['p50']:.2f}")
    cells += [cell(res[k]) for k in ("plans whole", "plans steps") if k in res]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| variant | all R@1/3/5/10 · MRR | L1 | L2 | L3 | L4 | L4 all-groups@10 | p50 ms | plans: whole | plans: steps |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--queries", default="queries_dev.jsonl")
    parser.add_argument("--backend", default="auto", help="auto (int8 ONNX) | sentence-transformers")
    parser.add_argument("--model", default=None, help="embedding_model setting (path or name)")
    parser.add_argument("--sweep", action="store_true", help="grid over fusion settings")
    parser.add_argument("--no-server-desc", action="store_true")
    parser.add_argument("--only", default=None, help="regex: run only variants whose name matches")
    parser.add_argument("--plans", type=Path, default=None, help='JSONL of {"id","steps"}: adds step mode')
    parser.add_argument("--server-stage", action="store_true", help="grid over the soft server stage")
    parser.add_argument("--step-limit", type=int, default=STEP_LIMIT)
    args = parser.parse_args()

    docs, queries = load_corpus(args.data, args.queries)
    globals()["STEP_LIMIT"] = args.step_limit
    if args.plans is not None:
        plans = {p["id"]: p["steps"] for p in map(json.loads, open(args.plans)) if p}
        queries = [q | {"steps": plans[q["id"]]} if q.get("id") in plans else q for q in queries]
    if args.no_server_desc:
        docs = [replace(d, server_description="") for d in docs]
    cache = IndexCache(RESULTS / "cache")
    t0 = time.perf_counter()
    embedder = resolve_embedder(args.model, backend=args.backend)
    print(f"# embedder {embedder!r} loaded in {time.perf_counter() - t0:.2f}s", flush=True)

    vectors: dict[str, object] = {}

    def matrix_for(text_of) -> object:
        key = repr(text_of)
        if key not in vectors:
            texts = [text_of(d) for d in docs]
            t = time.perf_counter()
            res = cache.get_or_embed(embedder, texts)
            print(f"# {key}: encoded {res.encoded} in {time.perf_counter() - t:.1f}s", flush=True)
            vectors[key] = res.matrix
        return vectors[key]

    def run(name: str, fusion: FusionConfig, dense: bool = True, text_of=embedding_text) -> dict | None:
        if args.only and not re.search(args.only, name):
            return None
        index = SearchIndex(docs, fusion=fusion, embedding_text_of=text_of)
        if dense:
            index.attach_embeddings(embedder, matrix_for(text_of))
        if name in ("default", "dense only"):
            QUERY_VECTORS.clear()  # time the query encoder too, not the query-vector cache
        res = evaluate(index, queries)
        print(row(name, res), flush=True)
        return res

    print(HEADER)
    no_steps = FusionConfig(server_weight=0.0, split_steps=False)
    run("BM25 only", replace(no_steps, dense_weight=0.0), dense=False)
    run("dense only", replace(no_steps, dense_weight=1.0))
    run("default without steps and server pass", no_steps)
    run("default without steps", replace(FusionConfig(), split_steps=False))
    if args.sweep:
        for w in (0.3, 0.4, 0.5, 0.6, 0.7):
            run(f"minmax w={w}", replace(no_steps, dense_weight=w))
        for w in (0.5, 0.6, 0.7):
            run(f"rrf k=60 w={w}", replace(no_steps, method="rrf", dense_weight=w))
        run("minmax w=0.5 doc=document_text", replace(no_steps, dense_weight=0.5), text_of=document_text)
        no_params = functools.partial(embedding_text, params=False)
        with_params = functools.partial(embedding_text, params=True)
        run("minmax w=0.4 text with params", no_steps, text_of=with_params)
        run("dense only, no params in text", replace(no_steps, dense_weight=1.0), text_of=no_params)
        for sw in (0.1, 0.2, 0.3):
            run(f"minmax w=0.4 server={sw}", replace(no_steps, server_weight=sw))
    if args.server_stage:
        for sdd in (0.0, 0.4, 0.7, 1.0):
            for sd in (0.1, 0.2, 0.3, 0.4):
                run(
                    f"server best 0.3 + server doc {sd} (dense share {sdd})",
                    replace(
                        FusionConfig(),
                        server_weight=0.3,
                        server_doc_weight=sd,
                        step_server_doc_weight=sd,
                        server_doc_dense=sdd,
                    ),
                )
    run("steps on every query", replace(FusionConfig(), steps_min_tokens=0))
    run("default", FusionConfig())
    rss = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024
    print(f"# peak RSS of this process {rss} MiB", flush=True)


if __name__ == "__main__":
    main()
