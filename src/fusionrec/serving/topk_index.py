"""Top-K retrieval over item vectors by inner product: an exact index and FAISS indexes behind one interface.

``make_index(kind, vectors)`` builds one: ``exact`` (one matrix product per chunk of users, so the whole catalogue is
ranked exactly), ``faiss-flat`` (FAISS brute force: also exact), ``faiss-ivf`` (inverted lists, approximate) or
``faiss-hnsw`` (a navigable small-world graph, approximate); ``auto`` is exact up to ``AUTO_EXACT_MAX_ITEMS`` items
and HNSW above. FAISS is an optional extra (``pip install 'fusionrec[faiss]'``), imported only when a FAISS index is
built.

Every index answers ``search(queries, k, exclude, allowed)``: ``exclude`` a (B, n_items) sparse matrix whose
non-zeros are items to drop per query (the user's seen items), ``allowed`` a (n_items,) bool mask (candidates minus
excluded items). An approximate index cannot filter inside the search, so it over-fetches (``k`` plus the number of
items filtered out for that query, capped at the catalogue size), filters, and re-queries the rows that are still
short with twice as many; a filtered item is never returned. ``add(vectors)`` appends items (new ids follow the old
ones), so an index can grow while serving.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ConfigError, FusionrecError
from fusionrec.util.threads import heavy_work

INDEX_KINDS = ("auto", "exact", "faiss-flat", "faiss-ivf", "faiss-hnsw")
AUTO_EXACT_MAX_ITEMS = 100_000  # auto: exact up to this many items, HNSW above
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 40, 128  # faiss-hnsw defaults (see FaissIndex)
_CHUNK_SCORES = 1 << 24  # the exact index scores at most this many (query, item) pairs at once (64 MB of float32)

log = logging.getLogger("fusionrec.serving")


class TopKIndex:
    """Item vectors (n, d) float32 and top-K search by inner product. Subclasses implement ``_search_all``."""

    kind = ""

    def __init__(self, vectors: np.ndarray):
        vectors = _as_rows(vectors)
        self.dim = vectors.shape[1]
        self._buffer = vectors.copy()  # grows by doubling when items are added
        self._n = len(vectors)

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        """The (n, d) item vectors, in item index order (a view: do not modify)."""
        return self._buffer[: self._n]

    def add(self, vectors: np.ndarray) -> None:
        """Appends items (n_new, d); they get indices len(self) .. len(self) + n_new - 1."""
        vectors = _as_rows(vectors)
        if vectors.shape[1] != self.dim:
            raise FusionrecError(f"vectors of width {vectors.shape[1]} cannot join an index of width {self.dim}")
        needed = self._n + len(vectors)
        if needed > len(self._buffer):
            grown = np.zeros((max(needed, 2 * len(self._buffer)), self.dim), dtype=np.float32)
            grown[: self._n] = self.vectors
            self._buffer = grown
        self._buffer[self._n: needed] = vectors
        self._n = needed
        self._added(vectors)

    def _added(self, vectors: np.ndarray) -> None:
        """Hook for indexes that keep their own structure."""

    def search(self, queries: np.ndarray | torch.Tensor, k: int, exclude: sp.csr_matrix | None = None,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """queries (B, d) -> (scores (B, k) float32, items (B, k) int64), best first; rows with fewer than ``k``
        eligible items are padded with -inf / -1. ``exclude``: (B, n) sparse, non-zeros are dropped per row;
        ``allowed``: (n,) bool or None (all)."""
        q = _as_rows(queries.numpy() if isinstance(queries, torch.Tensor) else queries)
        if q.shape[1] != self.dim:
            raise FusionrecError(f"queries of width {q.shape[1]} for an index of width {self.dim}")
        if exclude is not None and exclude.shape != (len(q), self._n):
            raise FusionrecError(f"exclude has shape {exclude.shape}, expected {(len(q), self._n)}")
        if allowed is not None and len(allowed) != self._n:
            raise FusionrecError(f"allowed has {len(allowed)} entries, the index has {self._n} items")
        k = max(1, int(k))
        if len(q) == 0 or self._n == 0:
            return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        return self._search_all(q, k, exclude, allowed)

    def _search_all(self, q, k, exclude, allowed):  # pragma: no cover - subclasses implement
        raise NotImplementedError

    def _exact(self, q: np.ndarray, k: int, exclude: sp.csr_matrix | None,
               allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k: one product per chunk of queries, over the allowed items only."""
        items = None if allowed is None else np.flatnonzero(allowed)
        v = torch.from_numpy(self.vectors if items is None else self.vectors[items])  # (m, d)
        m = len(v)
        position = None
        if items is not None and exclude is not None:
            position = np.full(self._n, -1, dtype=np.int64)
            position[items] = np.arange(m)
        scores_out = np.full((len(q), k), -np.inf, np.float32)
        items_out = np.full((len(q), k), -1, np.int64)
        chunk = max(1, _CHUNK_SCORES // max(m, 1))
        kk = min(k, m)
        if kk == 0:
            return scores_out, items_out
        for start in range(0, len(q), chunk):
            stop = min(start + chunk, len(q))
            scores = torch.from_numpy(q[start:stop]) @ v.T  # (b, m)
            if exclude is not None:
                coo = exclude[start:stop].tocoo()
                rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
                if position is not None:
                    cols = position[cols]
                    rows, cols = rows[cols >= 0], cols[cols >= 0]
                scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
            top = torch.topk(scores, kk, dim=1)
            vals, idx = top.values.numpy(), top.indices.numpy()
            found = np.isfinite(vals)
            ids = idx if items is None else items[idx]
            scores_out[start:stop, :kk] = np.where(found, vals, -np.inf)
            items_out[start:stop, :kk] = np.where(found, ids, -1)
        return scores_out, items_out


class ExactIndex(TopKIndex):
    """Exact inner-product top-K: scores every allowed item (one matrix product per chunk of queries)."""

    kind = "exact"

    def _search_all(self, q, k, exclude, allowed):
        return self._exact(q, k, exclude, allowed)


class FaissIndex(TopKIndex):
    """A FAISS inner-product index: ``faiss-flat`` (exact brute force), ``faiss-ivf`` (``nlist`` inverted lists,
    ``nprobe`` searched; ``nlist`` defaults to 4 sqrt(n)) or ``faiss-hnsw`` (``hnsw_m`` links per node,
    ``ef_search`` candidates per search, ``ef_construction`` while adding).

    HNSW defaults (M 32, efConstruction 40, efSearch 128): on a million clustered synthetic vectors shaped like trained
    embeddings (bench/hnsw_recall.py, docs/benchmarks.md) M 32 raised recall@10 at efSearch 128 from .905 (M 16) to
    .983 for about the same search time, the build taking 49 s instead of 27 s on two cores; raising efConstruction
    to 100 instead gave .958 for a 73 s build. The index is built at every server start, so build time counts.

    When ``allowed`` leaves at most half of the catalogue (a candidate list), the allowed items are ranked exactly
    from the stored vectors instead: cheaper than over-fetching past every item that is not allowed."""

    def __init__(self, vectors: np.ndarray, kind: str = "faiss-hnsw", nlist: int | None = None, nprobe: int = 16,
                 hnsw_m: int = HNSW_M, ef_search: int = HNSW_EF_SEARCH, ef_construction: int = HNSW_EF_CONSTRUCTION):
        super().__init__(vectors)
        faiss = require_faiss(kind)
        self.kind = kind
        d, n = self.dim, len(self)
        if kind == "faiss-flat":
            self.index = faiss.IndexFlatIP(d)
        elif kind == "faiss-ivf":
            nlist = max(1, min(nlist or int(4 * np.sqrt(max(n, 1))), max(n, 1)))
            self._quantizer = faiss.IndexFlatIP(d)  # kept alive: the IVF index points at it
            self.index = faiss.IndexIVFFlat(self._quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            with _faiss_threads(faiss):
                self.index.train(self.vectors)
            self.index.nprobe = min(nprobe, nlist)
        elif kind == "faiss-hnsw":
            for key, value, least in (("hnsw_m", hnsw_m, 2), ("ef_search", ef_search, 1),
                                      ("ef_construction", ef_construction, 1)):
                if not isinstance(value, (int, np.integer)) or value < least:
                    raise ConfigError(f"{key} must be an integer >= {least}, not {value!r}", key=key)
            self.index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = ef_construction
            self.index.hnsw.efSearch = ef_search
        else:
            raise ConfigError(f"unknown FAISS index {kind!r}; use faiss-flat, faiss-ivf or faiss-hnsw", key="index")
        if n:
            with _faiss_threads(faiss):  # the build is worth every core; searches are one query
                self.index.add(self.vectors)

    def _added(self, vectors: np.ndarray) -> None:
        self.index.add(vectors)

    def _search_all(self, q, k, exclude, allowed):
        n = len(self)
        n_disallowed = 0 if allowed is None else int(n - allowed.sum())
        if allowed is not None and n_disallowed >= n / 2:
            return self._exact(q, k, exclude, allowed)
        excluded_keys = None
        per_row = np.zeros(len(q), dtype=np.int64)
        if exclude is not None and exclude.nnz:
            coo = exclude.tocoo()
            excluded_keys = np.unique(coo.row.astype(np.int64) * n + coo.col.astype(np.int64))
            per_row = np.diff(sp.csr_matrix(exclude).indptr).astype(np.int64)
        fetch = np.minimum(n, k + per_row + n_disallowed)  # (B,) how many to ask for, per query
        scores_out = np.full((len(q), k), -np.inf, np.float32)
        items_out = np.full((len(q), k), -1, np.int64)
        todo = np.arange(len(q))
        while len(todo):
            want = int(fetch[todo].max())
            scores, ids = self.index.search(q[todo], want)  # (t, want), -1 where nothing was found
            valid = ids >= 0
            if allowed is not None:
                valid &= allowed[np.maximum(ids, 0)]
            if excluded_keys is not None:
                valid &= ~np.isin(todo[:, None] * n + ids, excluded_keys)
            keep = valid & (np.cumsum(valid, axis=1) <= k)
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept hits first, in score order
            got_s = np.take_along_axis(np.where(keep, scores, -np.inf), order, axis=1)
            got_i = np.take_along_axis(np.where(keep, ids, -1), order, axis=1)
            width = got_s.shape[1]
            scores_out[todo, :width], items_out[todo, :width] = got_s, got_i
            short = (keep.sum(axis=1) < k) & (want < n)  # too few survived the filter: ask again for more
            todo = todo[short]
            fetch[todo] = np.minimum(n, 2 * want)
        return scores_out, items_out


def make_index(kind: str, vectors: np.ndarray, **options) -> TopKIndex:
    """The index ``kind`` names (one of ``INDEX_KINDS``) over ``vectors`` (n, d). ``auto``: exact up to
    ``AUTO_EXACT_MAX_ITEMS`` items, else ``faiss-hnsw`` (exact, with a warning, when FAISS is not installed).
    ``options`` go to :class:`FaissIndex`."""
    if kind not in INDEX_KINDS:
        raise ConfigError(f"unknown index {kind!r}; use one of {', '.join(INDEX_KINDS)}", key="index")
    if kind == "auto":
        if len(vectors) <= AUTO_EXACT_MAX_ITEMS:
            return ExactIndex(vectors)
        try:
            return FaissIndex(vectors, "faiss-hnsw", **options)
        except FusionrecError as exc:
            log.warning("index auto: %s; ranking %d items exactly instead", exc, len(vectors))
            return ExactIndex(vectors)
    if kind == "exact":
        return ExactIndex(vectors)
    return FaissIndex(vectors, kind, **options)


def require_faiss(kind: str):
    try:
        import faiss
    except ImportError:
        raise FusionrecError(f"index {kind!r} needs FAISS, which is not installed: pip install 'fusionrec[faiss]' "
                             "(or faiss-cpu), or use --index exact") from None
    return faiss


def _as_rows(vectors) -> np.ndarray:
    a = np.ascontiguousarray(vectors, dtype=np.float32)
    if a.ndim != 2:
        raise FusionrecError(f"expected a (n, d) array of vectors, got shape {a.shape}")
    return a


def _faiss_threads(faiss):
    """FAISS's OpenMP threads raised to :func:`~fusionrec.util.threads.heavy_work_threads` for the block (the process
    may run torch on one thread), then back; a user's own thread choice is left alone."""
    return heavy_work(faiss.omp_get_max_threads, faiss.omp_set_num_threads)
