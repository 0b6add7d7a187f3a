"""Sparse helpers shared by the models, the knowledge-graph layer and the evaluator: canonical 0/1 CSR matrices, and
sparse-times-dense products with a cheap backward.

``torch.sparse.mm`` on a CSR matrix transposes the matrix in every backward call; for a constant matrix that is waste.
These keep the gradient flowing to the dense operand only (the sparse matrix is a fixed graph)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def binary_csr(matrix: sp.spmatrix, dtype=np.float32) -> sp.csr_matrix:
    """A canonical 0/1 copy of ``matrix``: CSR, duplicates summed, explicit zeros dropped, indices sorted, every
    stored value 1 (an interaction matrix as the models and the evaluator read it)."""
    out = sp.csr_matrix(matrix, dtype=dtype, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    out.data[:] = 1
    return out


class _FixedSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, torch.sparse.mm(ctx.a_t, grad)


def fixed_spmm(a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``a @ x`` for a constant sparse ``a`` (M, N) whose transpose ``a_t`` (N, M) was built once, and dense ``x``
    (N, d) -> (M, d). Pass ``a`` as ``a_t`` when ``a`` is symmetric."""
    return _FixedSpMM.apply(a, a_t, x)
