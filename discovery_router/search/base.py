"""The search contract: what a tool looks like to an index, and what a retriever must do."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ToolDoc:
    """Tool data an index may see: never config, env or headers."""

    server: str
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    server_description: str = ""

    @property
    def id(self) -> str:
        return f"{self.server}/{self.name}"


@dataclass(frozen=True)
class Hit:
    doc: ToolDoc
    score: float
    weak: bool = False
    """The best hit of its search barely matches (see ``SearchIndex._weak``): the client is told so."""


class Retriever(ABC):
    """Scores every document of a fixed catalog against a query.

    Returning a dense score vector (rather than a top-k) keeps fusion and
    server filtering in one place: :class:`~discovery_router.search.index.SearchIndex`.
    """

    @abstractmethod
    def build(self, docs: Sequence[ToolDoc]) -> None:
        """Index ``docs``; later scores are in this order."""

    @abstractmethod
    def scores(self, query: str) -> np.ndarray:
        """One float per document, higher is better; zeros mean no evidence."""
