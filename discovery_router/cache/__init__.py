"""The router's persistent index store: last tool lists and embedding vectors, on disk.

    from discovery_router.cache import IndexCache
    cache = IndexCache()                      # platformdirs.user_cache_dir("discovery-router")
    cache.save_tools("github", tools)         # after a successful tools/list
    tools = cache.load_tools("github")        # at start-up, before the server answers
    result = cache.get_or_embed(embedder, texts)   # only unseen texts are encoded
    result.matrix, result.encoded

Everything is tool data only (never env, headers or secrets); files are written
atomically and carry a format version; a damaged or unknown file is logged and
rebuilt, never raised.
"""

from discovery_router.cache.embeddings import EmbedResult, EmbeddingStore
from discovery_router.cache.store import FORMAT_VERSION, IndexCache
from discovery_router.cache.tools import TOOL_FIELDS, ToolStore, clean_tool

__all__ = [
    "FORMAT_VERSION",
    "TOOL_FIELDS",
    "EmbedResult",
    "EmbeddingStore",
    "IndexCache",
    "ToolStore",
    "clean_tool",
]
