"""Combining the score vectors of several retrievers into one ranking score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionConfig:
    """How lexical and dense scores are combined; defaults chosen on ETOM dev (benchmarks/TUNING.md).

    method: ``"minmax"`` (weighted sum of scores scaled to [0, 1]) or ``"rrf"``
    (reciprocal-rank fusion, ``sum w / (rrf_k + rank)``).
    dense_weight: share of the dense side, in [0, 1].
    server_weight: weight of a server-level pass (each tool also gets its
    server's best tool score, so tools of the server a query is about rise
    together); 0 disables it.
    split_steps: search each step of a multi-step request separately and
    interleave the results (several tools are needed, often on several servers),
    for queries of at least ``steps_min_tokens`` search tokens: short "do X and
    then Y" requests rank better as one query.
    """

    method: str = "minmax"
    dense_weight: float = 0.4
    rrf_k: float = 60.0
    server_weight: float = 0.3
    server_doc_weight: float = 0.0
    """Soft server stage for a whole query: each tool also gets this share of its server's own score,
    from a server-level document (name, description, every tool's name; see ``SearchIndex``). Off: on
    ETOM dev it tied at levels 1-2 and cost multi-step tasks R@10 (it pulls one server up, and a
    multi-step task needs several; benchmarks/TUNING.md)."""
    step_server_doc_weight: float = 0.2
    """The same stage in step search (each step is single-intent, and the task ranked as its context):
    R@5 0.711 -> 0.724, MRR 0.875 -> 0.900 on the 20 dev plans, R@10 unchanged."""
    server_doc_dense: float | None = 1.0
    """Dense share inside the server stage (None: ``dense_weight``); 0 = the server document's BM25 alone,
    1 = the cosine to the centroid of the server's tool vectors alone (best on ETOM dev)."""
    split_steps: bool = False
    steps_min_tokens: int = 30
    destructive_penalty: float = 0.15
    """Subtracted from tools whose name says delete/remove/drop... when the query asks for none of that:
    "store an entity" shares every word with ``delete_entities`` but not the intent."""
    task_weight: float = 0.5
    """Step search: each step's scores plus this share of the whole task's (context for the step)."""
    weak_cosine: float = 0.3
    weak_coverage: float = 0.5
    """A best hit under both (raw cosine to the query, share of the query's words it contains) is weak."""


def minmax(scores: np.ndarray) -> np.ndarray:
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(scores, dtype=np.float64)
    return (scores.astype(np.float64) - lo) / (hi - lo)


def reciprocal_ranks(scores: np.ndarray, k: float, positive_only: bool = False) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    out = 1.0 / (k + ranks)
    if positive_only:
        out[scores <= 0] = 0.0
    return out


def fuse(lexical: np.ndarray, dense: np.ndarray | None, config: FusionConfig) -> np.ndarray:
    """One score per document, higher is better, ``> 0`` for every document with evidence."""
    if dense is None:
        return lexical.astype(np.float64)
    w = config.dense_weight
    if config.method == "rrf":
        return (1 - w) * reciprocal_ranks(lexical, config.rrf_k, positive_only=True) + w * reciprocal_ranks(
            dense, config.rrf_k
        )
    if config.method == "minmax":
        # Lexical scores are scaled by their max only (zero stays "no evidence");
        # cosines by min-max over the catalog. A small epsilon keeps every
        # document above zero so a purely semantic match is still returned.
        top = float(lexical.max())
        lex = lexical.astype(np.float64) / top if top > 0 else np.zeros(len(lexical))
        return (1 - w) * lex + w * minmax(dense) + 1e-9
    raise ValueError(f"unknown fusion method {config.method!r}")


class ServerGroups:
    """Which tools share a server, laid out for per-server reductions.

    ``np.maximum.at`` (unbuffered) is slow at 100k tools; sorting the tools by
    server once lets ``np.maximum.reduceat`` take each server's best in one pass.
    """

    def __init__(self, server_ids: np.ndarray, n_servers: int) -> None:
        self.ids = server_ids
        self.order = np.argsort(server_ids, kind="stable")
        sorted_ids = server_ids[self.order]
        self.starts = (
            np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            if len(server_ids)
            else np.zeros(0, dtype=np.int64)
        )
        self.present = sorted_ids[self.starts] if len(server_ids) else np.zeros(0, dtype=np.int64)
        self.n = n_servers

    def mean(self, scores: np.ndarray) -> np.ndarray:
        """Each server's mean score (0 for a server with no tools)."""
        out = np.zeros(self.n)
        if len(scores):
            sums = np.add.reduceat(scores[self.order].astype(np.float64), self.starts)
            counts = np.diff(np.r_[self.starts, len(scores)])
            out[self.present] = sums / counts
        return out

    def best(self, scores: np.ndarray) -> np.ndarray:
        """Each server's best score (``-inf`` for a server with no tools)."""
        out = np.full(self.n, -np.inf)
        if len(scores):
            out[self.present] = np.maximum.reduceat(scores[self.order], self.starts)
        return out


def server_pass(scores: np.ndarray, groups: ServerGroups, weight: float) -> np.ndarray:
    """Add ``weight`` x the best score of each tool's server to the tool's own score."""
    if weight <= 0 or not len(scores):
        return scores
    return scores + weight * groups.best(scores)[groups.ids]
