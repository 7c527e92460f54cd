"""The router's search entry point: retrievers over one catalog, fused, filtered and ranked.

A :class:`SearchIndex` answers at once with BM25 alone; the dense side can be
attached later (:meth:`SearchIndex.attach_embeddings`) from another thread,
after which the same object answers with the hybrid ranking. Attaching is one
attribute assignment, so a search running meanwhile sees either the old or the
new state, never a mix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from discovery_router.search.base import Hit, Retriever, ToolDoc
from discovery_router.search.bm25 import BM25Retriever
from discovery_router.search.dense import DenseVectors
from discovery_router.search.embedders.base import Embedder
from discovery_router.search.fusion import FusionConfig, ServerGroups, fuse, server_pass
from discovery_router.search.text import (
    asks_to_destroy,
    destructive_name,
    document_text,
    embedding_text,
    split_identifier,
    split_steps,
    tokenize,
)

T = TypeVar("T")


def server_documents(docs: Sequence[ToolDoc], servers: Sequence[str]) -> list[ToolDoc]:
    """One document per server (in ``servers`` order): its name, its description, its tools' names.

    Scored like a tool's (``document_text``): a request about what a server
    is ("post to the team chat") finds it even when no single tool says so.
    """
    names: dict[str, list[str]] = {s: [] for s in servers}
    described: dict[str, str] = {}
    for doc in docs:
        names[doc.server].append(split_identifier(doc.name))
        described.setdefault(doc.server, doc.server_description)
    return [ToolDoc(s, "", " ".join(names[s]), server_description=described.get(s, "")) for s in servers]


class SearchIndex:
    """An index over a catalog snapshot; the router swaps in a new one when the catalog changes."""

    def __init__(
        self,
        docs: Sequence[ToolDoc],
        retriever: Retriever | None = None,
        *,
        fusion: FusionConfig | None = None,
        embedding_text_of: Callable[[ToolDoc], str] = embedding_text,
        previous: SearchIndex | None = None,
        exact_names: Mapping[str, int] | None = None,
    ) -> None:
        """``previous``: the index this one replaces; its BM25 term counts of unchanged documents are reused.

        ``exact_names`` (casefolded name or id -> position) replaces the exact-name lookups computed from
        ``docs``: an index over a catalog's search candidates (``discovery_router.team.search``) is given the
        whole catalog's answer, since a name unique among the candidates may be shared in the catalog."""
        self.docs: tuple[ToolDoc, ...] = tuple(docs)
        self.fusion = fusion or FusionConfig()
        self._retriever = retriever or BM25Retriever()
        if isinstance(self._retriever, BM25Retriever) and previous is not None:
            before = previous._retriever
            self._retriever.build(self.docs, before if isinstance(before, BM25Retriever) else None)
        else:
            self._retriever.build(self.docs)
        self._embedding_text_of = embedding_text_of
        self._dense: DenseVectors | None = None
        servers = sorted({d.server for d in self.docs})
        self._server_pos = {s: i for i, s in enumerate(servers)}
        self._servers = servers
        self._server_ids = np.array([self._server_pos[d.server] for d in self.docs], dtype=np.int64)
        self._server_groups = ServerGroups(self._server_ids, len(servers))
        self._server_retriever: BM25Retriever | None = None
        if max(self.fusion.server_doc_weight, self.fusion.step_server_doc_weight) > 0 and len(servers) > 1:
            self._server_retriever = BM25Retriever()
            self._server_retriever.build(server_documents(self.docs, servers))
        self._centroid_norms: np.ndarray | None = None
        dense_share = self.fusion.server_doc_dense
        self._server_fusion = self.fusion if dense_share is None else replace(self.fusion, dense_weight=dense_share)
        self._doc_words: dict[int, frozenset[str]] = {}
        self._destructive = np.array([destructive_name(d.name) for d in self.docs], dtype=bool)
        if exact_names is not None:
            self._exact = dict(exact_names)
        else:
            keys = [(key.casefold(), i) for i, d in enumerate(self.docs) for key in (d.id, d.name)]
            seen = Counter(key for key, _ in keys)
            self._exact = {key: i for key, i in keys if seen[key] == 1}  # a bare name two servers share names neither

    # -- the dense side -------------------------------------------------------------

    def embedding_texts(self) -> list[str]:
        """The texts to embed, one per document in index order (what the cache keys on)."""
        return [self._embedding_text_of(d) for d in self.docs]

    def vectors_by_text(self, model_id: str) -> dict[str, np.ndarray]:
        """Embedding text -> its attached vector, if this index is hybrid with ``model_id`` (else empty)."""
        dense = self._dense
        if dense is None or dense.embedder.model_id != model_id:
            return {}
        return dict(zip(self.embedding_texts(), dense.matrix))

    def attach_embeddings(self, embedder: Embedder, matrix: np.ndarray) -> None:
        """Switch to hybrid search with ``matrix[i]`` the vector of ``docs[i]`` (thread-safe)."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if not self.docs:
            matrix = np.zeros((0, embedder.dimension), dtype=np.float32)
        if matrix.shape != (len(self.docs), embedder.dimension):
            raise ValueError(f"expected a {(len(self.docs), embedder.dimension)} matrix, got {matrix.shape}")
        if self._server_retriever is not None:
            # |mean of a server's tool vectors|: its mean tool cosine / this = the cosine to its centroid
            groups = self._server_groups
            sums = np.add.reduceat(matrix[groups.order].astype(np.float64), groups.starts, axis=0)
            counts = np.diff(np.r_[groups.starts, len(matrix)])[:, None]
            norms = np.ones(groups.n)
            norms[groups.present] = np.maximum(np.linalg.norm(sums / counts, axis=1), 1e-6)
            self._centroid_norms = norms  # set before _dense: a search that sees _dense sees these
        self._dense = DenseVectors(embedder, matrix)

    @property
    def hybrid(self) -> bool:
        return self._dense is not None

    @property
    def vectors(self) -> np.ndarray | None:
        """The attached vectors (row ``i`` is ``docs[i]``'s), or None while BM25 only."""
        dense = self._dense
        return dense.matrix if dense is not None else None

    @property
    def embedder(self) -> Embedder | None:
        dense = self._dense
        return dense.embedder if dense is not None else None

    # -- search ---------------------------------------------------------------------

    def _scores(
        self, query: str, semantic: np.ndarray | None, allowed: np.ndarray | None, *, step: bool = False
    ) -> np.ndarray:
        lexical = self._retriever.scores(query)
        if allowed is not None:
            # Normalise within the servers searched, not the whole catalog.
            lexical = np.where(allowed, lexical, 0.0)
            if semantic is not None:
                semantic = np.where(allowed, semantic, semantic[allowed].min() if allowed.any() else 0.0)
        fused = fuse(lexical, semantic, self.fusion)
        fused = server_pass(fused, self._server_groups, self.fusion.server_weight)
        stage = self.fusion.step_server_doc_weight if step else self.fusion.server_doc_weight
        if stage > 0 and self._server_retriever is not None and allowed is None:
            fused = fused + stage * self._server_scores(query, semantic)[self._server_ids]
        if self.fusion.destructive_penalty and self._destructive.any() and not asks_to_destroy(query):
            fused = np.where(
                self._destructive & (fused > 0), np.maximum(fused - self.fusion.destructive_penalty, 1e-9), fused
            )
        return fused

    def _server_scores(self, query: str, semantic: np.ndarray | None) -> np.ndarray:
        """The soft server stage: each server's fused score for ``query``, one per server.

        Lexical from the server's own document (:func:`server_documents`); dense
        as the cosine between the query and the centroid of the server's tool
        vectors, read off the tools' cosines (no extra encoding, no extra vectors).
        """
        assert self._server_retriever is not None
        lexical = self._server_retriever.scores(query)
        norms = self._centroid_norms
        dense = None
        if semantic is not None and norms is not None:
            dense = self._server_groups.mean(semantic) / norms
        if dense is not None and self._server_fusion.dense_weight <= 0:  # hybrid tools, lexical servers: same scale
            top = float(lexical.max())
            return lexical / top if top > 0 else np.zeros(len(lexical))
        return fuse(lexical, dense, self._server_fusion)

    def _ranked(self, scores: np.ndarray, allowed: np.ndarray | None, k: int | None = None) -> np.ndarray:
        """Indices of the ``k`` best documents with evidence, best first.

        A partial selection (``argpartition``) then a sort of those ``k`` only: a
        full sort of 100k scores cost about half of a hybrid search.
        """
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        n = len(scores)
        if k is not None and k < n:
            cut = scores[np.argpartition(-scores, k - 1)[k - 1]]
            # every document tied at the cut, so ties go by index as in the stable full sort
            part = np.flatnonzero(scores >= max(cut, np.nextafter(0, 1)))
            return part[np.argsort(-scores[part], kind="stable")][:k]
        candidates = np.flatnonzero(scores > 0)
        return candidates[np.argsort(-scores[candidates], kind="stable")]

    def _allowed(self, server: str | None) -> tuple[bool, np.ndarray | None]:
        """(searchable, mask): an unknown server filter matches nothing."""
        if server is None:
            return True, None
        if server not in self._server_pos:
            return False, None
        return True, self._server_ids == self._server_pos[server]

    def search(self, query: str, limit: int = 5, server: str | None = None) -> list[Hit]:
        if not self.docs or limit <= 0 or not query.strip():
            return []
        dense = self._dense  # one read: a concurrent attach cannot change this search midway
        ok, allowed = self._allowed(server)
        if not ok:
            return []
        steps: list[str] = []
        if self.fusion.split_steps and len(tokenize(query)) >= self.fusion.steps_min_tokens:
            steps = split_steps(query)
            if len(steps) == 1:
                steps = []
        semantic = dense.scores_many([query, *steps]) if dense is not None else [None] * (1 + len(steps))
        scores = self._scores(query, semantic[0], allowed)
        order = self._ranked(scores, allowed, limit + 1 if not steps else None)
        if steps:
            rankings = [order] + [
                self._ranked(self._scores(step, vec, allowed), allowed, limit + 1)
                for step, vec in zip(steps, semantic[1:])
            ]
            order = self._interleave(rankings, limit + 1)
            scores = np.zeros(len(self.docs))
            scores[order] = np.linspace(1.0, 0.5, num=len(order)) if len(order) else 0
        exact = self._exact.get(query.strip().casefold())
        if exact is not None and (allowed is None or allowed[exact]):
            order = np.concatenate(([exact], order[order != exact]))
            scores = scores.copy()
            scores[exact] = max(float(scores.max()), 0.0) + 1.0
        top = order[:limit]
        weak = self._weak(query, semantic[0], int(top[0])) if len(top) and exact is None else False
        return [Hit(self.docs[i], float(scores[i]), weak) for i in top]

    def search_steps(
        self, task: str, steps: Sequence[str], per_step: int = 3, server: str | None = None
    ) -> list[list[Hit]]:
        """The best tools for each step of a plan, one group per step, a tool in one group only.

        Each step is ranked as a single-intent query, with the whole ``task``
        mixed in at ``FusionConfig.task_weight`` as context (it names the
        platform a step often leaves out). Groups are filled round-robin by
        step (every step's best tool before any step's second), so a tool two
        steps share goes to the earlier step and the later one gets its next.
        """
        steps = [s for s in (step.strip() for step in steps) if s]
        if not self.docs or per_step <= 0 or not steps:
            return [[] for _ in steps]
        dense = self._dense
        ok, allowed = self._allowed(server)
        if not ok:
            return [[] for _ in steps]
        task = task.strip()
        use_task = bool(task) and self.fusion.task_weight > 0
        texts = [*steps, task] if use_task else list(steps)
        semantic = dense.scores_many(texts) if dense is not None else [None] * len(texts)
        task_scores = self._scores(task, semantic[-1], allowed, step=True) if use_task else None
        depth = per_step * len(steps)
        rankings: list[np.ndarray] = []
        step_scores: list[np.ndarray] = []
        for step, vec in zip(steps, semantic):
            scores = self._scores(step, vec, allowed, step=True)
            exact = self._exact.get(step.casefold())
            if task_scores is not None:
                scores = scores + self.fusion.task_weight * task_scores
            if exact is not None and (allowed is None or allowed[exact]):
                scores = scores.copy()
                scores[exact] = float(scores.max()) + 1.0
            step_scores.append(scores)
            rankings.append(self._ranked(scores, allowed, depth))
        groups: list[list[int]] = [[] for _ in steps]
        seen: set[int] = set()
        cursor = [0] * len(steps)
        for _ in range(per_step):
            for s, ranking in enumerate(rankings):
                while cursor[s] < len(ranking):
                    i = int(ranking[cursor[s]])
                    cursor[s] += 1
                    if i not in seen:
                        seen.add(i)
                        groups[s].append(i)
                        break
        return [
            [
                Hit(
                    self.docs[i],
                    float(step_scores[s][i]),
                    self._weak(steps[s], semantic[s], group[0]) if j == 0 else False,
                )
                for j, i in enumerate(group)
            ]
            for s, group in enumerate(groups)
        ]

    def _weak(self, query: str, semantic: np.ndarray | None, i: int) -> bool:
        """True when the best hit barely matches: low cosine and few of the query's words.

        Fused scores are relative (the best is always near 1), so strength is
        judged on the raw evidence of the top document instead.
        """
        words = set(tokenize(query))
        covered = len(words & self._words_of(i)) / len(words) if words else 0.0
        if semantic is not None:
            return float(semantic[i]) < self.fusion.weak_cosine and covered < self.fusion.weak_coverage
        return covered < self.fusion.weak_coverage

    def _words_of(self, i: int) -> frozenset[str]:
        """Search tokens of document ``i``, kept once computed (only top hits are ever asked for)."""
        words = self._doc_words.get(i)
        if words is None:
            words = self._doc_words[i] = frozenset(tokenize(document_text(self.docs[i])))
        return words

    @staticmethod
    def merged(groups: Sequence[Sequence[T]]) -> list[T]:
        """Groups flattened round-robin: every step's first tool, then every step's second, ..."""
        depth = max((len(g) for g in groups), default=0)
        return [g[r] for r in range(depth) for g in groups if r < len(g)]

    @staticmethod
    def _interleave(rankings: list[np.ndarray], limit: int) -> np.ndarray:
        """Round-robin over rankings (whole query first, then each step), skipping repeats."""
        seen: set[int] = set()
        out: list[int] = []
        depth = max((len(r) for r in rankings), default=0)
        for level in range(depth):
            if len(out) >= limit:
                break
            for ranking in rankings:
                if level < len(ranking):
                    i = int(ranking[level])
                    if i not in seen:
                        seen.add(i)
                        out.append(i)
        return np.array(out, dtype=np.int64)
