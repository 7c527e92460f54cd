"""Where the labelled tool corpora live: ``../shared/data`` beside the checkout, or ``$ETOM_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CORPUS = Path(os.environ.get("ETOM_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "etom")
"""The ETOM corpus (tools.jsonl + queries.jsonl) the retrieval benchmarks and tests default to."""
