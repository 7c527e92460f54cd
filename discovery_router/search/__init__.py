"""Finding tools by plain-language query: documents, retrievers, and the index that combines them."""

from discovery_router.search.base import Hit, Retriever, ToolDoc
from discovery_router.search.bm25 import BM25Retriever
from discovery_router.search.index import SearchIndex

__all__ = ["BM25Retriever", "Hit", "Retriever", "SearchIndex", "ToolDoc"]
