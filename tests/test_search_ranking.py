"""Ranking sanity on a small fixed catalog, with the real packaged MiniLM (no mocks)."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from discovery_router.search import SearchIndex, ToolDoc
from discovery_router.search.embedders import resolve_embedder
from discovery_router.search.fusion import FusionConfig
from discovery_router.search.text import split_steps

CATALOG = [
    ToolDoc(
        "weather",
        "get_forecast",
        "Weather forecast for a city: temperature, rain and wind for the next days.",
        {"properties": {"city": {"type": "string", "description": "City name"}}},
    ),
    ToolDoc(
        "weather",
        "get_alerts",
        "Active severe weather alerts for a US state.",
        {"properties": {"state": {"type": "string"}}},
    ),
    ToolDoc(
        "github",
        "create_issue",
        "Open a new issue in a GitHub repository.",
        {"properties": {"repo": {"type": "string"}, "title": {"type": "string"}}},
    ),
    ToolDoc("github", "list_pull_requests", "List pull requests of a repository."),
    ToolDoc(
        "mail",
        "send_email",
        "Send an email message to one or more recipients.",
        {"properties": {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}}},
    ),
    ToolDoc("files", "read_file", "Read the contents of a file from the local disk."),
    ToolDoc("files", "write_file", "Write text to a file on the local disk, replacing it."),
    ToolDoc("time", "get_current_time", "Current time in a given IANA timezone."),
    ToolDoc("translate", "translate_text", "Translate text between languages."),
    ToolDoc("music", "play_song", "Start playback of a track on the speaker."),
]


@pytest.fixture(scope="module")
def embedder():
    return resolve_embedder(None)


@pytest.fixture(scope="module")
def hybrid(embedder):
    index = SearchIndex(CATALOG)
    index.attach_embeddings(embedder, embedder.encode(index.embedding_texts()))
    return index


def top(index, query, **kw):
    return [h.doc.id for h in index.search(query, **kw)]


def test_bm25_alone_answers_before_embeddings():
    index = SearchIndex(CATALOG)
    assert not index.hybrid
    assert top(index, "weather forecast for Paris")[0] == "weather/get_forecast"
    # No word in common with any tool: lexical search has no evidence.
    assert top(index, "will it be sunny tomorrow?") == []


def test_dense_side_finds_a_tool_with_no_shared_word(hybrid):
    assert hybrid.hybrid
    assert top(hybrid, "will it be sunny tomorrow?")[0] == "weather/get_forecast"
    assert top(hybrid, "what hour is it in Tokyo")[0] == "time/get_current_time"
    assert top(hybrid, "put on some music")[0] == "music/play_song"


def test_lexical_side_still_counts(hybrid):
    assert top(hybrid, "open a github issue about the crash")[0] == "github/create_issue"
    assert top(hybrid, "send an email to bob")[0] == "mail/send_email"


def test_exact_name_or_id_ranks_first(hybrid):
    assert top(hybrid, "write_file")[0] == "files/write_file"
    assert top(hybrid, "weather/get_alerts")[0] == "weather/get_alerts"
    assert top(hybrid, "  GITHUB/List_Pull_Requests ")[0] == "github/list_pull_requests"


def test_server_filter(hybrid):
    ids = top(hybrid, "read a file", server="files", limit=10)
    assert ids and all(i.startswith("files/") for i in ids)
    assert top(hybrid, "read a file", server="nope") == []
    assert (
        top(hybrid, "get_forecast", server="files") == []
        or top(hybrid, "get_forecast", server="files")[0] != "weather/get_forecast"
    )


def test_limit_and_empty(hybrid):
    assert len(hybrid.search("file", limit=1)) == 1
    assert hybrid.search("", limit=5) == []
    assert hybrid.search("file", limit=0) == []
    assert SearchIndex([]).search("anything") == []


def test_multi_step_query_finds_each_step(embedder):
    index = SearchIndex(CATALOG, fusion=FusionConfig(split_steps=True, steps_min_tokens=0))
    index.attach_embeddings(embedder, embedder.encode(index.embedding_texts()))
    query = "Get the weather forecast for Berlin. Then translate it to French and then email the summary to my team."
    ids = top(index, query, limit=5)
    for expected in ("weather/get_forecast", "translate/translate_text", "mail/send_email"):
        assert expected in ids


def test_split_steps():
    assert split_steps("Read the file.") == ["Read the file."]
    steps = split_steps("First read config.yaml from disk, then send its contents by email. Finally, post a note.")
    assert len(steps) == 3


def test_attach_rejects_wrong_shape(embedder):
    index = SearchIndex(CATALOG)
    with pytest.raises(ValueError):
        index.attach_embeddings(embedder, np.zeros((3, embedder.dimension), dtype=np.float32))
    assert not index.hybrid


def test_attach_while_searching_from_another_thread(embedder):
    index = SearchIndex(CATALOG)
    matrix = embedder.encode(index.embedding_texts())
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher():
        try:
            while not stop.is_set():
                index.search("send a message by email", limit=3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=searcher)
    thread.start()
    index.attach_embeddings(embedder, matrix)
    stop.set()
    thread.join()
    assert not errors
    assert index.hybrid


def test_steps_each_get_their_own_best_tools_once(hybrid):
    groups = hybrid.search_steps(
        "trip prep",
        ["weather forecast for Berlin", "translate text to French", "email the summary to my team"],
        per_step=2,
    )
    assert [g[0].doc.id for g in groups] == ["weather/get_forecast", "translate/translate_text", "mail/send_email"]
    ids = [h.doc.id for g in groups for h in g]
    assert len(ids) == len(set(ids)) == 6
    merged = [h.doc.id for h in SearchIndex.merged(groups)]
    assert merged[:3] == [g[0].doc.id for g in groups]  # every step's best before any step's second


def test_step_shared_by_two_steps_goes_to_the_first(hybrid):
    groups = hybrid.search_steps("", ["read a file", "read the file again"], per_step=1)
    assert groups[0][0].doc.id == "files/read_file" and groups[1][0].doc.id != "files/read_file"
    assert hybrid.search_steps("x", [], per_step=2) == [] and hybrid.search_steps("x", ["a file"], per_step=0) == [[]]


def test_partial_top_k_matches_a_full_sort(hybrid):
    scores = np.array([0.5, 0.0, 0.9, 0.5, 0.1, 0.9, 0.0, 0.3])
    full = hybrid._ranked(scores, None)
    for k in range(1, len(scores) + 2):
        assert list(hybrid._ranked(scores, None, k)) == list(full[:k])


def test_weak_flag_only_when_nothing_fits(hybrid):
    assert not hybrid.search("weather forecast for Paris", limit=3)[0].weak
    assert hybrid.search("quantum chromodynamics lattice simulation", limit=3)[0].weak


def test_plural_descriptions_and_destructive_names_do_not_win_by_word_overlap(embedder):
    docs = [
        ToolDoc("git", "git_log", "Shows the commit logs"),
        ToolDoc("git", "git_show", "Shows the contents of a commit"),
        ToolDoc("git", "git_commit", "Records changes to the repository"),
        ToolDoc("memory", "create_entities", "Create multiple new entities in the knowledge graph"),
        ToolDoc(
            "memory",
            "delete_entities",
            "Delete multiple entities and their associated relations from the knowledge graph",
        ),
        ToolDoc("memory", "read_graph", "Read the entire knowledge graph"),
    ]
    index = SearchIndex(docs)
    index.attach_embeddings(embedder, embedder.encode(index.embedding_texts()))
    assert top(index, "show the commit log")[0] == "git/git_log"
    assert top(index, "store an entity in the knowledge graph")[0] == "memory/create_entities"
    assert top(index, "delete an entity from the knowledge graph")[0] == "memory/delete_entities"


def test_the_server_stage_lifts_the_tools_of_the_server_a_request_is_about():
    """A server-level document (name, description, its tools' names) scores the server as a whole: its
    other tools rise above another server's tool that merely shares the words."""
    docs = [
        ToolDoc("depot", "restock_part", "Order more of a part."),
        ToolDoc("depot", "count_items", "Count the items on a shelf."),
        ToolDoc("shop", "list_orders", "List the orders placed at the depot restock desk today."),
        ToolDoc("shop", "refund", "Refund an order."),
    ]
    query = "depot restock"
    plain = [h.doc.id for h in SearchIndex(docs, fusion=FusionConfig(server_weight=0.0)).search(query, 2)]
    staged_index = SearchIndex(docs, fusion=FusionConfig(server_weight=0.0, server_doc_weight=0.4))
    staged = [h.doc.id for h in staged_index.search(query, 2)]
    assert "shop/list_orders" in plain
    assert set(staged) == {"depot/restock_part", "depot/count_items"}
    # a server filter leaves one server: the stage adds the same to every tool and changes nothing
    assert [h.doc.id for h in staged_index.search("refund", 2, server="shop")][0] == "shop/refund"


def test_integer_cosines_agree_with_float_cosines(embedder):
    """Big catalogs score on int8 vectors: same order as exact float32 cosines, error far below a fused score's grain.

    Real vectors (the catalog's, repeated with noise to a few thousand rows, the int8 path forced on).
    """
    from discovery_router.search.dense import DenseVectors

    base = embedder.encode([f"{d.name}: {d.description}" for d in CATALOG])
    rng = np.random.default_rng(7)
    matrix = np.repeat(base, 300, axis=0) + rng.normal(0, 0.05, (len(base) * 300, base.shape[1])).astype(np.float32)
    matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    exact = DenseVectors(embedder, matrix, integer=False)
    integer = DenseVectors(embedder, matrix, integer=True)
    for query in ("weather forecast for Paris", "send an email to my boss", "play some music"):
        want, got = exact.scores(query), integer.scores(query)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.abs(got - want).max() < 0.01
        top_want, top_got = np.argsort(-want)[:50], np.argsort(-got)[:50]
        assert len(set(top_want) & set(top_got)) >= 45
        assert int(np.argmax(got)) in set(np.argsort(-want)[:5])


def test_small_catalogs_keep_exact_cosines(embedder, hybrid):
    from discovery_router.search.dense import INTEGER_COSINES_FROM, DenseVectors

    small = DenseVectors(embedder, embedder.encode(["a", "b"]))
    assert small._integer is None and INTEGER_COSINES_FROM > 1000
