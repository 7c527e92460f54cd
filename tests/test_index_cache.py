"""The persistent store: tool lists, embeddings keyed by (model, text hash), damaged files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from discovery_router.search import SearchIndex, ToolDoc
from discovery_router.search.embedders import resolve_embedder
from discovery_router.cache import FORMAT_VERSION, IndexCache


class CountingEmbedder:
    """The real model, counting what it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0
        self.texts = 0

    @property
    def model_id(self):
        return self.inner.model_id

    @property
    def dimension(self):
        return self.inner.dimension

    def encode(self, texts):
        self.calls += 1
        self.texts += len(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def model():
    return resolve_embedder(None)


@pytest.fixture
def embedder(model):
    return CountingEmbedder(model)


TEXTS = [
    "get forecast (weather): Weather forecast for a city.",
    "send email (mail): Send an email message.",
    "read file (files): Read a file from disk.",
    "translate text (translate): Translate text between languages.",
]


def test_tools_round_trip_and_only_tool_fields(tmp_path):
    cache = IndexCache(tmp_path)
    assert cache.load_tools("github") is None
    tools = [
        {
            "name": "create_issue",
            "description": "Open an issue",
            "inputSchema": {"type": "object"},
            "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": False},
            "env": {"GITHUB_TOKEN": "secret"},
            "headers": {"Authorization": "Bearer x"},
        },
    ]
    cache.save_tools("github", tools)
    loaded = cache.load_tools("github")
    assert loaded == [{k: v for k, v in tools[0].items() if k not in ("env", "headers")}]
    raw = next((tmp_path / f"v{FORMAT_VERSION}" / "tools").iterdir()).read_text()
    assert "secret" not in raw and "Bearer" not in raw
    # A new router over the same folder sees it; a server name with odd characters is fine.
    cache2 = IndexCache(tmp_path)
    assert cache2.load_tools("github") == loaded
    cache2.save_tools("../weird/name: x", [{"name": "t"}])
    assert cache2.load_tools("../weird/name: x") == [{"name": "t"}]


def test_tools_accepts_mcp_tool_objects(tmp_path):
    from mcp.types import Tool

    cache = IndexCache(tmp_path)
    cache.save_tools("s", [Tool(name="t", description="d", inputSchema={"type": "object"})])
    assert cache.load_tools("s")[0]["name"] == "t"


def test_warm_restart_embeds_nothing(tmp_path, embedder, model):
    first = IndexCache(tmp_path).get_or_embed(embedder, TEXTS)
    assert (first.encoded, first.cached, embedder.calls) == (4, 0, 1)
    assert first.matrix.shape == (4, model.dimension) and first.matrix.dtype == np.float32
    restarted = CountingEmbedder(model)
    again = IndexCache(tmp_path).get_or_embed(restarted, TEXTS)
    assert (again.encoded, again.cached, restarted.calls) == (0, 4, 0)
    np.testing.assert_array_equal(again.matrix, first.matrix)


def test_one_changed_tool_reembeds_once(tmp_path, embedder, model):
    IndexCache(tmp_path).get_or_embed(embedder, TEXTS)
    changed = TEXTS[:2] + ["read file (files): Read a file from disk, now with line ranges."] + TEXTS[3:]
    later = CountingEmbedder(model)
    result = IndexCache(tmp_path).get_or_embed(later, changed)
    assert (result.encoded, later.calls, later.texts) == (1, 1, 1)
    np.testing.assert_allclose(result.matrix[2], model.encode([changed[2]])[0], atol=1e-6)


def test_two_configs_share_the_cache(tmp_path, embedder, model):
    IndexCache(tmp_path).get_or_embed(embedder, TEXTS[:2])
    other = CountingEmbedder(model)
    result = IndexCache(tmp_path).get_or_embed(other, TEXTS[1:])
    assert result.encoded == 2 and other.texts == 2
    third = CountingEmbedder(model)
    assert IndexCache(tmp_path).get_or_embed(third, TEXTS).encoded == 0


def test_vectors_are_per_model(tmp_path, embedder, model):
    IndexCache(tmp_path).get_or_embed(embedder, TEXTS)

    class OtherModel(CountingEmbedder):
        @property
        def model_id(self):
            return "some-other-model"

    other = OtherModel(model)
    assert IndexCache(tmp_path).get_or_embed(other, TEXTS).encoded == 4


def _embedding_file(tmp_path):
    (path,) = (tmp_path / f"v{FORMAT_VERSION}" / "embeddings").glob("*.npz")
    return path


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "empty", "foreign_npz", "future_format", "wrong_model"],
)
def test_damaged_embedding_file_is_rebuilt(tmp_path, embedder, model, damage, caplog):
    IndexCache(tmp_path).get_or_embed(embedder, TEXTS)
    path = _embedding_file(tmp_path)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00not an npz at all" * 10)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "foreign_npz":
        np.savez(path.open("wb"), x=np.arange(3))
    else:
        meta = {"kind": "discovery-router/embeddings", "format": FORMAT_VERSION, "model_id": model.model_id}
        if damage == "future_format":
            meta["format"] = FORMAT_VERSION + 1
        else:
            meta["model_id"] = "someone-else"
        np.savez(
            path.open("wb"),
            meta=np.array(json.dumps(meta)),
            keys=np.array(["a" * 64]),
            vectors=np.zeros((1, model.dimension), dtype=np.float32),
        )
    fresh = CountingEmbedder(model)
    with caplog.at_level(logging.WARNING, logger="discovery_router.cache"):
        result = IndexCache(tmp_path).get_or_embed(fresh, TEXTS)
    assert result.encoded == 4 and result.matrix.shape == (4, model.dimension)
    assert any("rebuilt" in r.getMessage() for r in caplog.records)
    # ... and the rebuilt file is good again.
    assert IndexCache(tmp_path).get_or_embed(CountingEmbedder(model), TEXTS).encoded == 0


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b'{"kind": "other"}',
        b"\xff\xfe",
        b'{"kind": "discovery-router/tools", "format": 99, "server": "s", "tools": []}',
    ],
)
def test_damaged_tool_file_is_ignored(tmp_path, content, caplog):
    cache = IndexCache(tmp_path)
    cache.save_tools("s", [{"name": "t"}])
    cache.tools.path("s").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="discovery_router.cache"):
        assert cache.load_tools("s") is None
    assert caplog.records
    cache.save_tools("s", [{"name": "t2"}])
    assert cache.load_tools("s") == [{"name": "t2"}]


def test_no_temp_files_left_behind(tmp_path, embedder):
    cache = IndexCache(tmp_path)
    cache.save_tools("s", [{"name": "t"}])
    cache.get_or_embed(embedder, TEXTS)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_trim_keeps_current_entries(tmp_path, embedder):
    cache = IndexCache(tmp_path, max_embeddings=3)
    cache.get_or_embed(embedder, TEXTS[:2])
    result = cache.get_or_embed(embedder, TEXTS[2:])
    assert result.encoded == 2
    assert len(cache.embeddings.lookup(embedder.model_id)[0]) == 3
    assert IndexCache(tmp_path, max_embeddings=3).get_or_embed(embedder, TEXTS[2:]).encoded == 0


def test_default_directory_is_the_user_cache(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("DISCOVERY_ROUTER_CACHE_DIR", raising=False)
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda app: str(tmp_path / app))
    assert IndexCache().root == tmp_path / "discovery-router"


def test_end_to_end_index_from_cache(tmp_path, embedder):
    docs = [
        ToolDoc("weather", "get_forecast", "Weather forecast for a city."),
        ToolDoc("mail", "send_email", "Send an email message."),
    ]
    index = SearchIndex(docs)
    result = IndexCache(tmp_path).get_or_embed(embedder, index.embedding_texts())
    index.attach_embeddings(embedder.inner, result.matrix)
    assert index.search("is it going to rain", limit=1)[0].doc.name == "get_forecast"


def test_cache_dir_environment_variable_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("DISCOVERY_ROUTER_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert IndexCache().root == tmp_path / "elsewhere"


def test_two_live_routers_merge_each_others_vectors(tmp_path, embedder, model):
    """Neither erases the other's work: a writer picks up what the other wrote since it last looked (on lookup,
    or when merging just before its own write)."""
    first, second = IndexCache(tmp_path), IndexCache(tmp_path)
    first.get_or_embed(embedder, TEXTS[:1])
    second.get_or_embed(CountingEmbedder(model), TEXTS[1:2])  # written after first's last write
    first.get_or_embed(embedder, TEXTS[2:3])
    fresh = CountingEmbedder(model)
    assert IndexCache(tmp_path).get_or_embed(fresh, TEXTS[:3]).encoded == 0


def test_cache_dir_env_none_disables_the_cache_like_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`DISCOVERY_ROUTER_CACHE_DIR=none` used to create a folder named `none`."""
    from discovery_router.config.model import RouterSettings
    from discovery_router.router import open_cache

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCOVERY_ROUTER_CACHE_DIR", "none")
    assert open_cache(RouterSettings()) is None
    assert not (tmp_path / "none").exists()
    monkeypatch.setenv("DISCOVERY_ROUTER_CACHE_DIR", str(tmp_path / "c"))
    assert open_cache(RouterSettings()).root == tmp_path / "c"
