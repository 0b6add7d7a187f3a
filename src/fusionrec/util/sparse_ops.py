"""Sparse-times-dense products with a cheap backward, shared by the models and the knowledge-graph layer.

``torch.sparse.mm`` on a CSR matrix transposes the matrix in every backward call; for a constant matrix that is waste.
These keep the gradient flowing to the dense operand only (the sparse matrix is a fixed graph)."""

from __future__ import annotations

import torch


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
