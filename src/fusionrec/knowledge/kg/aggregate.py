"""A fixed sparse mix of embedding-table rows, ``W @ E``, at the price of a lookup.

The KG source of an item is a weighted sum of entity rows (its linked entity and, optionally, the entity's one-hop
neighbours): ``W @ E`` for a constant sparse ``W`` (n_rows, n_entities) and the trained entity table ``E``
(n_entities, d). ``torch.sparse.mm`` on CSR computes it, but on one CPU thread its forward is ~5x slower than a
gather-and-sum over the same non-zeros (``F.embedding_bag`` with per-sample weights). :class:`RowMix` keeps the
layout of ``W`` once, runs the forward as an embedding bag and the backward as one sparse product with the
transpose ``W^T`` (built once): the same values and the same gradient as ``W @ E``.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


class RowMix:
    """``W @ table`` for a constant sparse ``W`` of shape ``shape`` = (n_rows, n_cols) given as ``indices`` (2, nnz)
    LongTensor (row, col) and ``values`` (nnz,); repeated (row, col) entries are summed. A row without entries
    gives a zero vector."""

    def __init__(self, indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]):
        n_rows, n_cols = int(shape[0]), int(shape[1])
        coo = torch.sparse_coo_tensor(indices, values.float(), (n_rows, n_cols), check_invariants=False).coalesce()
        rows, self.cols = coo.indices()  # row-major after coalesce
        self.weights = coo.values()
        self.offsets = torch.zeros(n_rows, dtype=torch.long)  # start of each row's entries (embedding_bag's bags)
        self.offsets[1:] = torch.cumsum(torch.bincount(rows, minlength=n_rows), 0)[:-1]
        self.shape = (n_rows, n_cols)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            t = torch.sparse_coo_tensor(torch.stack([self.cols, rows]), self.weights, (n_cols, n_rows),
                                        check_invariants=False).coalesce().to_sparse_csr()
            self.transpose = torch.sparse_csr_tensor(t.crow_indices().int(), t.col_indices().int(), t.values(),
                                                     (n_cols, n_rows), check_invariants=False)

    @property
    def nnz(self) -> int:
        return int(self.weights.numel())

    def __call__(self, table: torch.Tensor) -> torch.Tensor:
        """``table`` (n_cols, d) -> (n_rows, d) = W @ table, differentiable in ``table``."""
        if table.shape[0] != self.shape[1]:
            raise ValueError(f"the mix reads a table of {self.shape[1]} rows, got {table.shape[0]}")
        return _MixRows.apply(table, self)


class _MixRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: torch.Tensor, mix: RowMix) -> torch.Tensor:
        ctx.mix = mix
        return F.embedding_bag(mix.cols, table, mix.offsets, mode="sum", per_sample_weights=mix.weights)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return torch.sparse.mm(ctx.mix.transpose, grad.contiguous()), None
