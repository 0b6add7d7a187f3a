"""Sparse EASE: EASE's item-item ridge regression with each item regressed only on its top-k neighbours, so it
fits catalogues of 100,000 items in memory O(n_items x k).

EASE (:mod:`fusionrec.models.ease`) regresses every item column ``x_j`` of the binary training matrix X on all the
other items at once, through a dense n_items x n_items inverse. Restricting item j's regressors to a neighbourhood
N(j) of at most ``k`` items (its top-k by co-occurrence, or by cosine) turns that into one small ridge regression per
item, the feature-selection step of fsSLIM (Ning & Karypis, 2011) applied to EASE's closed form::

    b_j[N(j)] = (G[N(j), N(j)] + l2 I)^-1 G[N(j), j],   B[i, j] = 0 for i outside N(j) (so B[j, j] = 0)

with G = X^T X the sparse item co-occurrence Gram matrix. When N(j) holds every other item this is exactly EASE's
column j; with k >= n_items - 1, N(j) is every item that co-occurs with j, and the weights EASE gives the items that
never co-occur with j (through the items they share) are left out.

Side information: ``text_weight`` adds ``text_weight * T T^T`` (T the centred, L2-normalised item text rows, as in
EASE) to G inside each neighbourhood, the collective-EASE trick, at b k^2 d extra flops per batch; neighbourhoods are
still chosen from co-occurrence, so an item without interactions gets no weights (no neighbours).

Cost: the sparse Gram (about 12 bytes per non-zero; its non-zeros are bounded by sum over users of |H(u)|^2), the
neighbour table and the weights (about 28 bytes x n_items x k), and per batch of items a few k x k systems solved
by batched Cholesky: time about n_items x (k^3 / 3 flops + k^2 sparse lookups) plus the Gram. Scoring a history is
the sparse product h B; nothing dense of n_items x n_items is ever built.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import FusionrecError
from fusionrec.models.base import HistoryReader, HyperParameters, Model, ModelInputs, checked_history
from fusionrec.models.ease_shared import duration_text, text_rows
from fusionrec.models.graph_ops import (buffers_from_scipy, check_users, data_sized_buffers, history_buffers,
                                        history_columns, sparse_from_buffers)
from fusionrec.models.registry import register
from fusionrec.typed_config import NonNegativeFloat, PositiveFloat, PositiveInt
from fusionrec.util.sparse_ops import binary_csr

_BLOCK_NNZ = 1 << 23  # Gram non-zeros ranked per block when choosing neighbourhoods (bounds that step's memory)
_BATCH_CELLS = 1 << 21  # k x k system cells solved per batch (float64: 16 MB per copy)

# Rough one-core cost model for the estimate logged before fitting (tqdm's rate then shows the real pace; rerun
# bench/ease_scale.py to recalibrate): seconds per Gram product term, per k x k cell looked up in the sparse Gram,
# per Cholesky flop.
SECONDS_PER_GRAM_TERM = 4e-8
SECONDS_PER_LOOKUP = 1.5e-7
SECONDS_PER_FLOP = 1e-9


@dataclass(frozen=True)
class SparseEASEParams(HyperParameters):
    l2: PositiveFloat = 400.0  # > 0, added to each neighbourhood's Gram diagonal (as EASE's l2)
    k: PositiveInt = 200  # >= 1, neighbours each item is regressed on; memory and time grow as n_items x k and x k^3
    neighbours: Literal["cooccurrence", "cosine"] = "cooccurrence"  # how N(j) is ranked: raw count or cosine
    # >= 0, item text similarity added to G inside each neighbourhood (needs item text)
    text_weight: NonNegativeFloat = 0.0


@register
class SparseEASE(Model, HistoryReader):
    """Buffers (data-sized, restored by ``load_state_dict``): ``w_indices`` (2, nnz) rows = neighbour i, cols =
    target j and ``w_values`` (nnz,): the sparse B, at most k non-zeros per column; ``hist_indptr`` (n_users + 1,)
    and ``hist_items`` (n_train,): each user's scoring history, CSR-style."""

    name = "sparse-ease"
    Params = SparseEASEParams
    trainable = False

    @classmethod
    def required_inputs(cls, params: SparseEASEParams) -> set[str]:
        return {"text"} if params.text_weight > 0 else set()

    def __init__(self, n_users: int, n_items: int, params: SparseEASEParams | None = None):
        super().__init__(n_users, n_items, params)
        self.register_buffer("w_indices", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("w_values", torch.zeros(0))
        self.register_buffer("hist_indptr", torch.zeros(0, dtype=torch.long))  # empty until prepared
        self.register_buffer("hist_items", torch.zeros(0, dtype=torch.long))
        data_sized_buffers(self, ("w_indices", "w_values", "hist_indptr", "hist_items"))

    @property
    def mixed_sources_in(self) -> str | None:
        """Text folded into B leaves no per-source split of a score (see Model)."""
        return "one item-item weight matrix" if self.params.text_weight > 0 else None

    def prepare(self, inputs: ModelInputs) -> None:
        x = binary_csr(inputs.train, dtype=np.float64)
        k = min(self.params.k, max(self.n_items - 1, 1))
        degrees = np.diff(x.indptr).astype(np.float64)
        gram_terms = float((degrees ** 2).sum())
        memory, seconds = sparse_ease_cost(self.n_items, k, gram_terms)
        inputs.report(f"sparse-ease: {self.n_items:,} items, k {k}: about {memory / 1e9:.2f} GB (sparse Gram of at "
                      f"most {gram_terms:,.0f} entries, neighbours and weights {self.n_items:,} x {k}) and about "
                      f"{duration_text(seconds)} on one core (a rough flop model; the progress bar shows the pace)")
        gram = sp.csr_matrix(x.T @ x)  # (n_items, n_items) symmetric, sorted indices
        gram.sort_indices()
        text = text_rows(inputs, self.n_items) if self.params.text_weight > 0 else None
        neighbours = top_k_neighbours(gram, k, self.params.neighbours)
        weights = neighbourhood_weights(gram, neighbours, self.params.l2, text, self.params.text_weight,
                                        progress=inputs.progress)
        self.w_indices, self.w_values = buffers_from_scipy(weights)
        self.hist_indptr, self.hist_items = history_buffers(x)
        self._cache.clear()

    def use_history(self, history: sp.csr_matrix) -> None:
        """Score X' @ B with the users' rows of ``history`` (n_users, n_items) as X'; B stays as fitted."""
        self.hist_indptr, self.hist_items = history_buffers(checked_history(history, self.n_users, self.n_items))
        self._cache.clear()

    def _check_fitted(self) -> None:
        if self.hist_indptr.numel() == 0:
            raise FusionrecError("sparse-ease has no weights yet: call prepare(inputs) or load a saved state dict")

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items) = X[users] @ B, B sparse."""
        check_users(users, self.n_users)
        self._check_fitted()
        b_t = self.cached("b_t", lambda: sparse_from_buffers(self.w_indices.flip(0), self.w_values,
                                                             (self.n_items, self.n_items)))  # (target, neighbour)
        history_t = history_columns(self.hist_indptr, self.hist_items, users, self.n_items)  # (n_items, B)
        return torch.sparse.mm(b_t, history_t).T.contiguous()

    def score_histories(self, histories: sp.csr_matrix, chunk_users: int = 512) -> torch.Tensor:
        """The native fold-in: histories (B, n_items) of weights score ``h @ B``, a sparse product, exactly as a
        trained user does."""
        self._check_fitted()
        h = sp.csr_matrix(histories, dtype=np.float32)
        if h.shape[1] != self.n_items:
            raise ValueError(f"histories have {h.shape[1]} item columns, the model has {self.n_items}")
        b = self.cached("b_scipy", lambda: sp.csr_matrix(
            (self.w_values.numpy(), (self.w_indices[0].numpy(), self.w_indices[1].numpy())),
            shape=(self.n_items, self.n_items)))
        return torch.from_numpy(np.asarray((h @ b).todense(), dtype=np.float32))


def sparse_ease_cost(n_items: int, k: int, gram_terms: float) -> tuple[float, float]:
    """(bytes, seconds) estimate of :meth:`SparseEASE.prepare`: the sparse Gram (``gram_terms`` = sum over users of
    |H(u)|^2 bounds its non-zeros; 12 bytes each, twice while scipy builds it), the neighbour table, the weights
    (indices and values, about 28 bytes per (item, neighbour)) and the batch workspace; time from the one-core
    constants above."""
    nnz = min(gram_terms, float(n_items) ** 2)
    memory = 24 * nnz + 28 * n_items * k + 8 * _BATCH_CELLS * 6
    seconds = (SECONDS_PER_GRAM_TERM * gram_terms + SECONDS_PER_LOOKUP * n_items * k * k
               + SECONDS_PER_FLOP * n_items * (k ** 3 / 3 + 2 * k ** 2))
    return memory, seconds


def top_k_neighbours(gram: sp.csr_matrix, k: int, rank_by: str) -> np.ndarray:
    """(n_items, k) int64: each item's neighbours, best first, -1 where it co-occurs with fewer than k items. Ranked
    by the co-occurrence count G[i, j] or by its cosine G[i, j] / sqrt(G[i, i] G[j, j]); ties go to the lower index;
    an item is never its own neighbour. ``gram``: the symmetric (n_items, n_items) CSR Gram matrix."""
    n = gram.shape[0]
    out = np.full((n, k), -1, dtype=np.int64)
    diag = np.sqrt(np.maximum(gram.diagonal(), 1e-12))
    lo = 0
    while lo < n:  # blocks of rows holding about _BLOCK_NNZ non-zeros
        hi = int(np.searchsorted(gram.indptr, gram.indptr[lo] + _BLOCK_NNZ, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        start, end = gram.indptr[lo], gram.indptr[hi]
        rows = np.repeat(np.arange(lo, hi), np.diff(gram.indptr[lo:hi + 1]))
        cols = gram.indices[start:end].astype(np.int64)
        score = gram.data[start:end].astype(np.float64)
        if rank_by == "cosine":
            score = score / (diag[rows] * diag[cols])
        keep = rows != cols
        rows, cols, score = rows[keep], cols[keep], score[keep]
        order = np.lexsort((cols, -score, rows))  # by row, then best first, then lower index
        rows, cols = rows[order], cols[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        top = rank < k
        out[rows[top], rank[top]] = cols[top]
        lo = hi
    return out


def neighbourhood_weights(gram: sp.csr_matrix, neighbours: np.ndarray, l2: float, text: np.ndarray | None = None,
                          text_weight: float = 0.0, progress: bool = False) -> sp.csr_matrix:
    """The sparse B (n_items neighbour rows x n_items target columns): for each target j with neighbours
    N = neighbours[j] (-1 = none), ``B[N, j] = (G[N, N] + text_weight T_N T_N^T + l2 I)^-1 (G[N, j] + text_weight
    T_N t_j)``. Targets are solved in batches of (batch, k, k) float64 systems by Cholesky; padded slots are an
    identity row with a zero right-hand side, so they solve to 0 and are dropped."""
    from tqdm import tqdm

    n, k = neighbours.shape
    batch = max(1, _BATCH_CELLS // (k * k))
    rows_out, cols_out, vals_out = [], [], []
    bar = tqdm(total=n, desc="sparse-ease: item regressions", unit="item", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, smoothing=0.05)
    for lo in range(0, n, batch):
        targets = np.arange(lo, min(lo + batch, n))
        nb = neighbours[targets]  # (b, k)
        valid = nb >= 0
        if valid.any():
            a, rhs = _systems(gram, targets, nb, valid, l2, text, text_weight)
            chol, info = torch.linalg.cholesky_ex(a)
            if bool((info != 0).any()):  # cannot happen for l2 > 0 (PSD + l2 I); say so rather than guess
                raise FusionrecError("sparse-ease: a neighbourhood system is not positive definite; raise l2")
            solution = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1).numpy()  # (b, k)
            t_idx, slot = np.nonzero(valid)
            rows_out.append(nb[t_idx, slot])
            cols_out.append(targets[t_idx])
            vals_out.append(solution[t_idx, slot].astype(np.float32))
        bar.update(len(targets))
    bar.close()
    if not rows_out:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals_out), (np.concatenate(rows_out), np.concatenate(cols_out))),
                         shape=(n, n))


def _systems(gram: sp.csr_matrix, targets: np.ndarray, nb: np.ndarray, valid: np.ndarray, l2: float,
             text: np.ndarray | None, text_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's left-hand sides (b, k, k) and right-hand sides (b, k), float64. Entries of G are looked up in
    the sub-matrix G[U, U] over the union U of the batch's neighbours and targets (sorted (row, col) keys,
    binary search), so nothing of size n_items x n_items or |U| x |U| is densified."""
    b, k = nb.shape
    union = np.unique(np.concatenate([nb[valid], targets]))
    sub = gram[union][:, union].tocsr()
    sub.sort_indices()
    width = len(union)
    keys = np.repeat(np.arange(width, dtype=np.int64), np.diff(sub.indptr)) * width + sub.indices
    local = np.where(valid, np.searchsorted(union, np.where(valid, nb, 0)), 0)  # (b, k) positions in union
    local_t = np.searchsorted(union, targets)  # (b,)

    def lookup(query: np.ndarray) -> np.ndarray:
        if len(keys) == 0:
            return np.zeros(query.shape)
        pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where(keys[pos] == query, sub.data[pos], 0.0)

    a = lookup(local[:, :, None] * width + local[:, None, :])  # (b, k, k)
    rhs = lookup(local * width + local_t[:, None])  # (b, k)
    if text is not None and text_weight > 0:
        t_nb = text[np.where(valid, nb, 0)]  # (b, k, d)
        a += text_weight * np.einsum("bid,bjd->bij", t_nb, t_nb)
        rhs += text_weight * np.einsum("bid,bd->bi", t_nb, text[targets])
    pair = valid[:, :, None] & valid[:, None, :]
    a = np.where(pair, a, 0.0)
    rhs = np.where(valid, rhs, 0.0)
    diagonal = np.arange(k)
    a[:, diagonal, diagonal] += np.where(valid, l2, 1.0)  # padded slots: identity rows
    return torch.from_numpy(a), torch.from_numpy(rhs)


