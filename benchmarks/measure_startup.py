"""Start-up costs of hybrid search, measured through the product's code.

Cold: resolve the default embedder and embed the whole catalog into an empty
cache. Warm: a new process-like start (fresh IndexCache, fresh embedder) over
the filled cache until the index is hybrid. Also RSS with the model loaded.

    .venv/bin/python -m benchmarks.measure_startup [--backend sentence-transformers]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.tune_retrieval import DATA, load_corpus

from discovery_router.search import SearchIndex
from discovery_router.search.hybrid import HybridLoader
from discovery_router.cache import IndexCache


def rss_mib(field: str = "VmRSS") -> int:
    return int(open("/proc/self/status").read().split(f"{field}:")[1].split()[0]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: a new temporary one)")
    args = parser.parse_args()
    docs, queries = load_corpus(DATA, "queries_dev.jsonl")
    folder = args.cache or Path(tempfile.mkdtemp(prefix="dr-cache-"))
    print(f"# {len(docs)} tools, cache {folder}, RSS before model {rss_mib()} MiB")

    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        index = SearchIndex(docs)
        t_bm25 = time.perf_counter() - t0
        loader = HybridLoader(None, IndexCache(folder), backend=args.backend)
        loader.start(index)
        loader._thread.join()
        total = time.perf_counter() - t0
        print(
            f"{label}: BM25 index {1000 * t_bm25:.0f} ms; hybrid ready after {total:.2f} s "
            f"(model {loader.embedder!r}); hybrid={index.hybrid}; RSS {rss_mib()} MiB"
        )

    embedder = loader.embedder
    t = time.perf_counter()
    result = IndexCache(folder).get_or_embed(embedder, index.embedding_texts())
    print(
        f"warm cache lookup alone: {1000 * (time.perf_counter() - t):.0f} ms for {len(docs)} vectors "
        f"(encoded {result.encoded})"
    )
    lat = []
    for q in queries[:300]:
        t = time.perf_counter()
        embedder.encode([q["query"]])
        lat.append(time.perf_counter() - t)
    lat.sort()
    print(f"query encode p50 {1000 * lat[len(lat) // 2]:.1f} ms, p90 {1000 * lat[int(len(lat) * 0.9)]:.1f} ms")
    print(f"RSS {rss_mib()} MiB, peak {rss_mib('VmHWM')} MiB")


if __name__ == "__main__":
    main()
