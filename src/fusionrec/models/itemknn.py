"""Item-based k-nearest neighbours on the training matrix (cosine similarity with shrinkage, top-k per item)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import FusionrecError
from fusionrec.models.base import HistoryReader, HyperParameters, Model, ModelInputs, checked_history
from fusionrec.models.graph_ops import (buffers_from_scipy, check_users, data_sized_buffers, history_buffers,
                                        history_columns, sparse_from_buffers)
from fusionrec.models.registry import register
from fusionrec.typed_config import NonNegativeFloat, PositiveInt
from fusionrec.util.sparse_ops import binary_csr

_BLOCK_CELLS = 1 << 26  # item x target-item cells per block of the similarity computation (bounds its memory)


@dataclass(frozen=True)
class ItemKNNParams(HyperParameters):
    k: PositiveInt = 100  # neighbours kept per item (>= 1); bigger smooths, smaller sharpens
    # >= 0, added to the cosine denominator; damps similarities built on few co-occurrences
    shrink: NonNegativeFloat = 0.0


@register
class ItemKNN(Model, HistoryReader):
    """sim(i, j) = <r_i, r_j> / (|r_i| |r_j| + shrink + 1e-6) over item columns r of the binary training matrix
    (RecBole's ItemKNN), a zero diagonal, and for each target item j only its ``k`` most similar items i.
    score(u, j) = sum_i R[u, i] sim(i, j).

    Buffers: ``sim_indices`` (2, nnz) rows = neighbour i, cols = target j; ``sim_values`` (nnz,);
    ``hist_indptr`` (n_users + 1,) and ``hist_items`` (n_train,): the users' training items, CSR-style."""

    name = "itemknn"
    Params = ItemKNNParams
    trainable = False

    def __init__(self, n_users: int, n_items: int, params: ItemKNNParams | None = None):
        super().__init__(n_users, n_items, params)
        self.register_buffer("sim_indices", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("sim_values", torch.zeros(0))
        self.register_buffer("hist_indptr", torch.zeros(self.n_users + 1, dtype=torch.long))
        self.register_buffer("hist_items", torch.zeros(0, dtype=torch.long))
        data_sized_buffers(self, ("sim_indices", "sim_values", "hist_items"))

    def prepare(self, inputs: ModelInputs) -> None:
        r = binary_csr(inputs.train)
        self.sim_indices, self.sim_values = buffers_from_scipy(top_k_cosine(r, self.params.k, self.params.shrink))
        self.hist_indptr, self.hist_items = history_buffers(r)
        self._cache.clear()

    def use_history(self, history: sp.csr_matrix) -> None:
        """Sum sim(i, j) over the users' items in ``history`` (n_users, n_items); the similarities stay as fitted."""
        self.hist_indptr, self.hist_items = history_buffers(checked_history(history, self.n_users, self.n_items))
        self._cache.clear()

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items) = (sim^T @ history^T)^T with a sparse sim."""
        check_users(users, self.n_users)
        if self.hist_items.numel() == 0:
            raise FusionrecError("itemknn has no similarities yet: call prepare(inputs) or load a saved state dict")
        sim_t = self.cached("sim_t", lambda: sparse_from_buffers(self.sim_indices.flip(0), self.sim_values,
                                                                 (self.n_items, self.n_items)))
        history_t = history_columns(self.hist_indptr, self.hist_items, users, self.n_items)  # (n_items, B)
        return torch.sparse.mm(sim_t, history_t).T.contiguous()


def top_k_cosine(r: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """(n_items, n_items) sparse similarity with at most ``k`` non-zeros per column (the target item's nearest
    neighbours, ties broken by the lower index). ``r``: binary (n_users, n_items)."""
    n_items = r.shape[1]
    norms = np.sqrt(np.asarray(r.sum(axis=0), dtype=np.float64).ravel())
    rt = sp.csr_matrix(r.T)
    rc = sp.csc_matrix(r)
    rows, cols, vals = [], [], []
    block = max(1, _BLOCK_CELLS // max(1, n_items))
    for lo in range(0, n_items, block):
        hi = min(lo + block, n_items)
        dot = sp.coo_matrix(rt @ rc[:, lo:hi])  # (n_items, hi - lo) co-occurrence counts
        i, j = dot.row.astype(np.int64), dot.col.astype(np.int64) + lo
        keep = i != j  # an item is not its own neighbour
        i, j = i[keep], j[keep]
        sim = dot.data[keep] / (norms[i] * norms[j] + shrink + 1e-6)
        order = np.lexsort((i, -sim, j))  # by target, then most similar first, then lower index
        i, j, sim = i[order], j[order], sim[order]
        starts = np.searchsorted(j, j, side="left")
        top = (np.arange(len(j)) - starts) < k
        rows.append(i[top])
        cols.append(j[top])
        vals.append(sim[top].astype(np.float32))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_items, n_items))
