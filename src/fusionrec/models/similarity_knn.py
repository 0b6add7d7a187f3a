"""The scoring shared by the untrained neighbourhood baselines that rank items by a fixed item-item similarity
(``content-knn`` by text, ``kg-knn`` by linked entities)::

    score(u, j) = sum (or mean) over the items i of u's training history of sim(i, j)

where ``sim(., j)`` keeps only target ``j``'s ``k`` most similar items (positive similarities only, never ``j``
itself). A target item needs no interactions of its own, so a cold item is scored as soon as its content is known.
A subclass defines :meth:`SimilarityKNN.similarity` and registers itself; this module registers no model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fusionrec.errors import FusionrecError
from fusionrec.models.base import HistoryReader, Model, ModelInputs, checked_history
from fusionrec.models.graph_ops import (check_users, data_sized_buffers, history_buffers, history_columns,
                                        sparse_from_buffers)
from fusionrec.util.sparse_ops import binary_csr

_BLOCK_CELLS = 1 << 24  # item x target-item similarities held at once while selecting neighbours (64 MiB float32)

SimilarityBlock = Callable[[int, int], torch.Tensor]  # (lo, hi) -> sim(i, j) for every i and j in lo..hi-1


def top_k_neighbours(block: SimilarityBlock, n_items: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target item j, its ``k`` most similar items i != j with sim(i, j) > 0; ties go to the lower index.

    ``block(lo, hi)`` returns the dense similarities (n_items, hi - lo) of every item to the targets lo..hi-1; targets
    are taken in blocks of about ``_BLOCK_CELLS`` cells. Returns ``indices`` LongTensor (2, nnz) (row 0: neighbour i,
    row 1: target j, sorted by target) and ``values`` FloatTensor (nnz,)."""
    rows, cols, vals = [], [], []
    step = max(1, _BLOCK_CELLS // max(1, n_items))
    keep = min(k, n_items)
    for lo in range(0, n_items, step):
        hi = min(lo + step, n_items)
        sim = block(lo, hi).float().clone()  # (n_items, b)
        targets = torch.arange(lo, hi)
        sim[targets, targets - lo] = 0.0  # an item is not its own neighbour
        values, order = torch.sort(sim, dim=0, descending=True, stable=True)  # stable: lower index first on ties
        values, order = values[:keep], order[:keep]  # (keep, b)
        positive = values > 0
        rows.append(order[positive])
        cols.append(targets.expand(keep, -1)[positive])
        vals.append(values[positive])
    if not rows:
        return torch.zeros(2, 0, dtype=torch.long), torch.zeros(0)
    rows_t, cols_t, vals_t = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    by_target = torch.argsort(cols_t, stable=True)
    return torch.stack([rows_t[by_target], cols_t[by_target]]), vals_t[by_target].contiguous()


class SimilarityKNN(Model, HistoryReader):
    """Base of the untrained neighbourhood models: ``prepare`` stores the users' training histories and the top-k
    similarity lists that :meth:`similarity` defines; ``score_all`` sums (or averages) over a user's history.

    Buffers (data-sized, restored by ``load_state_dict``): ``sim_indices`` (2, nnz) row 0 = neighbour i, row 1 =
    target j; ``sim_values`` (nnz,); ``hist_indptr`` (n_users + 1,) and ``hist_items`` (n_train,): each user's
    training items, CSR-style. Subclasses' ``Params`` need ``k`` and ``aggregate``."""

    trainable = False

    def __init__(self, n_users: int, n_items: int, params=None):
        super().__init__(n_users, n_items, params)
        self.register_buffer("sim_indices", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("sim_values", torch.zeros(0))
        self.register_buffer("hist_indptr", torch.zeros(0, dtype=torch.long))  # empty until prepared
        self.register_buffer("hist_items", torch.zeros(0, dtype=torch.long))
        data_sized_buffers(self, ("sim_indices", "sim_values", "hist_indptr", "hist_items"))

    def similarity(self, inputs: ModelInputs) -> SimilarityBlock:
        """The item-item similarity of this model as a block function (see :func:`top_k_neighbours`)."""
        raise NotImplementedError

    def prepare(self, inputs: ModelInputs) -> None:
        block = self.similarity(inputs)
        self.sim_indices, self.sim_values = top_k_neighbours(block, self.n_items, self.params.k)
        self.hist_indptr, self.hist_items = history_buffers(binary_csr(inputs.train))
        self._cache.clear()

    def use_history(self, history) -> None:
        """Aggregate sim(i, j) over the users' items in ``history`` (scipy CSR (n_users, n_items)); the top-k
        similarity lists stay as prepared."""
        self.hist_indptr, self.hist_items = history_buffers(checked_history(history, self.n_users, self.n_items))
        self._cache.clear()

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items): sum (or mean) of sim(i, j) over the user's history items i."""
        check_users(users, self.n_users)
        if self.hist_indptr.numel() == 0:
            raise FusionrecError(f"{self.name} has no similarities yet: call prepare(inputs) or load a saved state "
                                 "dict")
        sim_t = self.cached("sim_t", lambda: sparse_from_buffers(self.sim_indices.flip(0), self.sim_values,
                                                                 (self.n_items, self.n_items)))
        history_t = history_columns(self.hist_indptr, self.hist_items, users, self.n_items)  # (n_items, B)
        scores = torch.sparse.mm(sim_t, history_t).T.contiguous()  # (B, n_items)
        if self.params.aggregate == "mean":
            scores /= history_t.sum(0).clamp(min=1.0).unsqueeze(1)
        return scores
