"""Settings of the HTTP service (a frozen dataclass: the CLI fills it from its flags)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fusionrec.serving.new_items import EmbeddingEndpoint


@dataclass(frozen=True)
class ServeSettings:
    """``db``: SQLite file of added interactions (None: kept in memory only, lost on restart).
    ``api_key``: required for writes as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (None: writes are open,
    and the service says so at startup). ``keyed_reads``: reads need the key too. ``index``: the top-K index for
    models served from vectors (``auto``: exact up to 100 000 items, FAISS HNSW above; or ``exact``, ``faiss-flat``,
    ``faiss-ivf``, ``faiss-hnsw``); ``hnsw_m`` / ``hnsw_ef_search``: links per node and candidates per search of a
    FAISS HNSW index (None: :data:`~fusionrec.serving.topk_index.HNSW_M` / ``HNSW_EF_SEARCH``). The limits bound
    each request. ``freeze_gc``: once the model is loaded, move
    every object to the garbage collector's permanent generation (``gc.freeze()``), so its full collections no longer
    scan the objects loaded at startup (its effect on the tail was not measured on its own); a process-wide setting,
    so only ``fusionrec serve``, whose process serves one app, turns it on. ``embeddings_url`` / ``embeddings_key_env``:
    the OpenAI-compatible embeddings server that encodes new items' text for a model trained on such a server's
    vectors, and the environment variable whose value is sent to it as the Bearer token (None: none sent)."""

    host: str = "127.0.0.1"
    port: int = 8000
    db: Path | None = None
    api_key: str | None = None
    keyed_reads: bool = False
    index: str = "auto"  # auto | exact | faiss-flat | faiss-ivf | faiss-hnsw
    hnsw_m: int | None = None  # >= 2; HNSW links per node (build time and memory grow with it)
    hnsw_ef_search: int | None = None  # >= 1; HNSW candidates per search (recall and search time grow with it)
    max_k: int = 1000  # largest k a request may ask for
    max_body_bytes: int = 1_000_000  # larger request bodies get 413
    max_batch_users: int = 1000  # users per POST /recommend/batch
    max_interactions: int = 10_000  # rows per POST /interactions
    max_id_list: int = 100_000  # ids in candidates / exclude
    max_new_items: int = 1000  # items per POST /items
    freeze_gc: bool = False
    # where new items' text is encoded when the model was trained on an embeddings server's vectors: the server's
    # URL and the environment variable holding its key (the model folder's own are never used; docs/serving.md)
    embeddings_url: str | None = None
    embeddings_key_env: str | None = None

    def k_problem(self, k: int) -> str | None:
        """Why ``k`` is out of bounds (a 422 message), or None when it is fine."""
        return None if 1 <= k <= self.max_k else f"k must be between 1 and {self.max_k}, got {k}"

    def id_list_problem(self, *lists: list | tuple | None) -> str | None:
        """Why one of the id lists is too long (a 413 message), or None when none is."""
        for ids in lists:
            if ids is not None and len(ids) > self.max_id_list:
                return f"at most {self.max_id_list} ids per list, got {len(ids)}"
        return None

    def embedding_endpoint(self) -> EmbeddingEndpoint | None:
        """The configured embeddings server (None when no URL is set)."""
        if self.embeddings_url is None:
            return None
        return EmbeddingEndpoint(self.embeddings_url, self.embeddings_key_env)
