"""Does search find the right tool? Recall@k, MRR and all-groups@10 on a labelled corpus.

Retrievers, all over the same tools in the same run:
- ``router``: the shipped default, ``Router.search`` on a router connected to one
  in-memory FastMCP server per corpus server (hybrid if the shipped router
  attaches embeddings, else BM25);
- ``router BM25 part``: ``SearchIndex`` over the router's own documents with the
  router's fusion config and no embeddings attached (lexical side alone);
- ``router embedding part``: cosine ranking by the router's dense side
  (``DenseVectors``; model from ``resolve_embedder``, vectors through ``discovery_router.cache``);
  n/a when no dense module or model is available;
- ``FastMCP BM25SearchTransform``: a FastMCP server holding the same tools plus
  the transform (``max_results=10``), queried by a fastmcp Client calling its
  ``search_tools`` tool, as FastMCP users get it.

Recall@k = fraction of a query's gold groups with a member in the top k; MRR =
1 / rank of the first gold tool in the top 10 (0 if none); all@10 = every group found.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.suites.context import Context

from benchmarks.suites.corpus import Corpus, flat_server

from benchmarks.suites.report import check, md_table, pct, pyplot, save_figure

NAME = "retrieval"
KS = (1, 3, 5, 10)
DEPTH = 10
METRICS = [f"R@{k}" for k in KS] + ["MRR", "all@10"]


def score_query(ranked: Sequence[tuple[str, str]], groups: list[set[tuple[str, str]]]) -> dict[str, float]:
    ranked = list(ranked)[:DEPTH]
    row = {}
    for k in KS:
        top = set(ranked[:k])
        row[f"R@{k}"] = sum(bool(g & top) for g in groups) / len(groups) if groups else 0.0
    gold = set().union(*groups) if groups else set()
    row["MRR"] = next((1.0 / (i + 1) for i, t in enumerate(ranked) if t in gold), 0.0)
    row["all@10"] = float(all(g & set(ranked) for g in groups)) if groups else 0.0
    return row


def aggregate(rows: list[tuple[Any, dict[str, float]]]) -> dict[str, dict[str, float]]:
    buckets: dict[str, list[dict[str, float]]] = {}
    for level, row in rows:
        buckets.setdefault("all", []).append(row)
        buckets.setdefault(f"L{level}", []).append(row)
    out = {}
    for name in sorted(buckets, key=lambda b: (b != "all", b)):
        items = buckets[name]
        out[name] = {m: statistics.fmean(r[m] for r in items) for m in METRICS} | {"n": len(items)}
    return out


async def _evaluate(
    name: str,
    corpus: Corpus,
    rank: Callable[[Any], Any],
    ctx: Context,
    queries: Sequence[dict[str, Any]] | None = None,
    whole: bool = True,
) -> dict[str, Any]:
    """``rank`` gets each query's text (``whole``) or the query object itself (step mode)."""
    rows, latencies, rankings = [], [], []
    for q in corpus.queries if queries is None else queries:
        t0 = time.perf_counter()
        ranked = rank(q["query"] if whole else q)
        if hasattr(ranked, "__await__"):
            ranked = await ranked
        latencies.append(time.perf_counter() - t0)
        rows.append((q.get("level", "?"), score_query(ranked, corpus.gold_groups(q))))
        rankings.append(ranked)
    ctx.log(f"retrieval: {name} done ({len(rows)} queries)")
    lat = pct([x * 1000 for x in latencies], 50, 99)
    return {"name": name, "metrics": aggregate(rows), "latency_ms": lat, "_rankings": rankings}


async def run(ctx: Context) -> dict[str, Any]:
    t_start = time.perf_counter()
    shared = await ctx.corpus_router()
    corpus, router = shared.corpus, shared.router
    unslug = corpus.unslug

    def from_router_docs(ids: Sequence[Any]) -> list[tuple[str, str]]:
        return [(unslug.get(d.server, d.server), d.name) for d in ids]

    retrievers: list[dict[str, Any]] = []
    notes: list[str] = []

    # 1. the shipped default, through the router's public API
    async def rank_router(query: str) -> list[tuple[str, str]]:
        hits = await router.search(query, DEPTH)
        return [(unslug.get(e.server, e.server), e.name) for e in hits]

    shipped = await _evaluate(f"router (shipped default: {shared.info['mode']})", corpus, rank_router, ctx)
    shipped["key"] = "router"
    retrievers.append(shipped)

    # 1b. step mode: queries that carry the agent's plan, through the same Router.search the MCP tool calls
    planned = [q for q in corpus.queries if q.get("steps")]
    step_rankings: dict[int, list[tuple[str, str]]] = {}
    if planned:

        async def rank_steps(q: dict[str, Any]) -> list[tuple[str, str]]:
            hits = await router.search(q["query"], DEPTH, steps=q["steps"])  # the merged list, as the client sees it
            return [(unslug.get(e.server, e.server), e.name) for e in hits][:DEPTH]

        whole = await _evaluate("router, whole task (queries with steps)", corpus, rank_router, ctx, planned)
        whole["key"] = "router_whole_planned"
        steps = await _evaluate("router, step mode (queries with steps)", corpus, rank_steps, ctx, planned, whole=False)
        steps["key"] = "router_steps"
        retrievers += [whole, steps]
        step_rankings = {id(q): r for q, r in zip(planned, steps["_rankings"])}
    else:
        notes.append("step mode: no query in this corpus carries steps (pass --plans FILE to add them)")

    # 2. the lexical part alone: the router's own documents and fusion config, no embeddings
    from discovery_router.search import SearchIndex

    live = router.index
    lexical = (
        SearchIndex(live.docs, fusion=getattr(live, "fusion", None))
        if hasattr(live, "fusion")
        else SearchIndex(live.docs)
    )

    def rank_bm25(query: str) -> list[tuple[str, str]]:
        return from_router_docs([h.doc for h in lexical.search(query, DEPTH)])

    part = await _evaluate("router BM25 part alone", corpus, rank_bm25, ctx)
    part["key"] = "bm25"
    retrievers.append(part)

    # 3. the embedding part alone (when the product has one and a model is installed)
    dense_rank, dense_note = _dense_ranker(ctx, router, lexical)
    if dense_rank is not None:
        part = await _evaluate("router embedding part alone", corpus, lambda q: from_router_docs(dense_rank(q)), ctx)
        part["key"] = "dense"
        part["note"] = dense_note
        retrievers.append(part)
    else:
        retrievers.append(
            {
                "name": "router embedding part alone",
                "key": "dense",
                "metrics": None,
                "latency_ms": None,
                "note": dense_note,
            }
        )
        notes.append(f"embedding part: n/a ({dense_note})")

    # 4. the peer: FastMCP BM25SearchTransform, through an MCP client
    from fastmcp import Client
    from fastmcp.server.transforms.search import BM25SearchTransform

    peer, back = flat_server(corpus, "peer")
    peer.add_transform(BM25SearchTransform(max_results=DEPTH))
    async with Client(peer) as client:

        async def rank_peer(query: str) -> list[tuple[str, str]]:
            result = await client.call_tool_mcp("search_tools", {"query": query})
            return [back[n] for n in _peer_names(result) if n in back]

        part = await _evaluate("FastMCP BM25SearchTransform", corpus, rank_peer, ctx)
        part["key"] = "peer"
        retrievers.append(part)

    if ctx.rankings is not None:
        ctx.rankings.parent.mkdir(parents=True, exist_ok=True)
        with open(ctx.rankings, "w", encoding="utf-8") as handle:
            for q, ranked in zip(corpus.queries, shipped["_rankings"]):
                line: dict[str, Any] = {
                    "query": q["query"],
                    "ranked": [{"server": s, "tool": t} for s, t in ranked[:DEPTH]],
                }
                if id(q) in step_rankings:
                    line["steps"] = q["steps"]
                    line["ranked_steps"] = [{"server": s, "tool": t} for s, t in step_rankings[id(q)]]
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    for r in retrievers:
        r.pop("_rankings", None)

    plots = [_plot(ctx, [r for r in retrievers if r["key"] not in ("router_whole_planned", "router_steps")])]
    checks = []
    by_key = {r["key"]: r for r in retrievers}
    if by_key["router"]["metrics"] and by_key["peer"]["metrics"]:
        for level in ("all", "L2", "L4"):
            mine = by_key["router"]["metrics"].get(level, {}).get("R@5")
            theirs = by_key["peer"]["metrics"].get(level, {}).get("R@5")
            if mine is not None and theirs is not None:
                checks.append(
                    check(
                        f"Recall@5 {level}: router vs FastMCP BM25SearchTransform",
                        ">= peer",
                        round(mine, 3),
                        mine >= theirs,
                        f"peer {theirs:.3f}",
                    )
                )
    return {
        "suite": NAME,
        "quick": ctx.quick,
        "corpus": corpus.name,
        "tools": len(corpus.tools),
        "servers": len(corpus.servers),
        "queries": len(corpus.queries),
        "queries_with_steps": len(planned),
        "router_info": shared.info,
        "server_descriptions_in_router": True,
        "retrievers": retrievers,
        "notes": notes,
        "rankings_file": str(ctx.rankings) if ctx.rankings else None,
        "checks": checks,
        "plots": plots,
        "elapsed_s": time.perf_counter() - t_start,
    }


def _peer_names(result: Any) -> list[str]:
    payload = None
    structured = getattr(result, "structured_content", None)
    if isinstance(structured, dict) and isinstance(structured.get("result"), list):
        payload = structured["result"]
    if payload is None:
        for block in result.content:
            if getattr(block, "type", None) == "text":
                try:
                    payload = json.loads(block.text)
                except json.JSONDecodeError:
                    payload = []
                break
    return [t.get("name") for t in payload or [] if isinstance(t, dict)]


def _dense_ranker(ctx: Context, router: Any, lexical: Any) -> tuple[Callable[[str], list[Any]] | None, str]:
    """A ranking by the router's dense side alone, or (None, why not)."""
    try:
        from discovery_router.search.dense import DenseVectors
        from discovery_router.search.embedders import resolve_embedder
    except ImportError as exc:
        return None, f"no dense module in discovery_router.search ({exc.name})"
    try:
        embedder = getattr(router.index, "embedder", None)
        if embedder is None:
            embedder = resolve_embedder(getattr(router.settings, "embedding_model", None))
    except Exception as exc:  # EmbedderUnavailableError and friends
        return None, f"no embedding model: {exc}"
    texts = lexical.embedding_texts()
    t0 = time.perf_counter()
    try:
        from discovery_router.cache import IndexCache

        result = IndexCache(ctx.cache_dir).get_or_embed(embedder, texts)
        matrix, encoded = result.matrix, result.encoded
    except ImportError:
        matrix, encoded = embedder.encode(texts), len(texts)
    ctx.log(
        f"retrieval: embedded {encoded} of {len(texts)} tool texts in {time.perf_counter() - t0:.1f}s "
        f"({embedder.model_id})"
    )
    vectors = DenseVectors(embedder, np.ascontiguousarray(matrix, dtype=np.float32))
    docs = lexical.docs

    def rank(query: str) -> list[Any]:
        scores = vectors.scores(query)
        top = np.argsort(-scores, kind="stable")[:DEPTH]
        return [docs[i] for i in top]

    return rank, f"{embedder.model_id} ({getattr(embedder, 'source', '?')}); {encoded} texts embedded this run"


def _plot(ctx: Context, retrievers: list[dict[str, Any]]) -> str:
    plt = pyplot()
    measured = [r for r in retrievers if r.get("metrics")]
    levels = [lv for lv in measured[0]["metrics"] if lv != "all"] if measured else []
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.8 / max(1, len(measured))
    for i, r in enumerate(measured):
        xs = np.arange(len(METRICS)) + i * width
        axes[0].bar(xs, [r["metrics"]["all"][m] for m in METRICS], width, label=r["name"])
        xl = np.arange(len(levels)) + i * width
        axes[1].bar(xl, [r["metrics"][lv]["R@5"] for lv in levels], width, label=r["name"])
    axes[0].set_xticks(np.arange(len(METRICS)) + 0.4 - width / 2, METRICS)
    axes[0].set_title("all queries")
    axes[1].set_xticks(
        np.arange(len(levels)) + 0.4 - width / 2,
        [f"{lv} (n={measured[0]['metrics'][lv]['n']})" for lv in levels] if measured else [],
    )
    axes[1].set_title("Recall@5 per level")
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    return save_figure(fig, ctx, "retrieval.png")


def summary(result: dict[str, Any]) -> str:
    lines = [
        "## Retrieval",
        "",
        f"Corpus {result['corpus']}: {result['tools']} tools, {result['servers']} servers, "
        f"{result['queries']} queries. Router mode: {result['router_info'].get('mode')}"
        f"{' (' + result['router_info']['embedder'] + ')' if result['router_info'].get('embedder') else ''}; "
        "router servers carry their corpus descriptions (config `description`).",
        "",
    ]
    rows = []
    for r in result["retrievers"]:
        if not r.get("metrics"):
            rows.append([r["name"]] + ["n/a"] * (len(METRICS) + 2))
            continue
        m = r["metrics"]["all"]
        rows.append([r["name"]] + [m[k] for k in METRICS] + [r["latency_ms"]["p50"], r["latency_ms"]["p99"]])
    lines.append(md_table(["retriever"] + METRICS + ["ms p50", "ms p99"], rows))
    measured = [r for r in result["retrievers"] if r.get("metrics")]
    if measured:
        levels = [lv for lv in measured[0]["metrics"] if lv != "all"]
        lines += ["", "Per level (R@5 / MRR / all@10):", ""]
        rows = []
        for r in measured:
            rows.append(
                [r["name"]]
                + [
                    f"{r['metrics'][lv]['R@5']:.3f} / {r['metrics'][lv]['MRR']:.3f} / {r['metrics'][lv]['all@10']:.3f}"
                    if lv in r["metrics"]
                    else "-"
                    for lv in levels
                ]
            )
        lines.append(md_table(["retriever"] + [f"{lv} (n={measured[0]['metrics'][lv]['n']})" for lv in levels], rows))
    for r in result["retrievers"]:
        if r.get("note"):
            lines.append(f"\n- {r['name']}: {r['note']}")
    if result.get("queries_with_steps"):
        lines += [
            "",
            f"Step mode: {result['queries_with_steps']} queries carry a plan (`steps`); each is ranked "
            "as the whole task and with its steps (`Router.search(query, steps=...)`, the merged "
            "round-robin list as the client gets it, at most `step_limit` tools per step).",
        ]
    lines += [
        "",
        "Latency columns are per query as driven here (router: `Router.search` in-process; "
        "peer: an MCP round trip through an in-memory fastmcp Client), not comparable with each other.",
        "",
        "![retrieval](retrieval.png)",
    ]
    return "\n".join(lines)
