"""Sparse matrices kept as plain buffers, and the small checks models share.

A torch sparse tensor cannot be written with safetensors, so a model stores a sparse matrix as two dense buffers,
``indices`` (2, nnz) int64 and ``values`` (nnz,) float32, and rebuilds the sparse tensor when scoring. Those buffers
are sized by the data, so a freshly constructed model holds empty placeholders that :func:`data_sized_buffers` lets
``load_state_dict`` replace whatever their saved size.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.sparse_ops import fixed_spmm


def sparse_from_buffers(indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int],
                        layout: torch.layout = torch.sparse_csr) -> torch.Tensor:
    """Sparse (shape) tensor from ``indices`` (2, nnz) int64 and ``values`` (nnz,); repeated entries are summed.
    ``layout``: torch.sparse_csr (default; int32 indices when they fit, ~1.6x faster than int64 and ~4x faster than
    COO for ``sparse @ dense`` on CPU) or torch.sparse_coo (coalesced)."""
    coo = torch.sparse_coo_tensor(indices, values, size=shape, check_invariants=False).coalesce()
    if layout == torch.sparse_coo:
        return coo
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = coo.to_sparse_csr()
        if coo._nnz() < 2**31 - 1 and max(shape) < 2**31 - 1:
            csr = torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), shape,
                                          check_invariants=False)
    return csr


class _SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` whose backward reuses ``adj`` (adj^T = adj), sparing torch the transpose of a sparse matrix."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, torch.sparse.mm(ctx.adj, grad)


def symmetric_spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` for a SYMMETRIC sparse ``adj`` (N, N) (CSR is fastest) and dense ``x`` (N, d) -> (N, d).
    About 3x faster in training than ``torch.sparse.mm`` on CSR, whose backward transposes ``adj`` every call."""
    return _SymmetricSpMM.apply(adj, x)


def buffers_from_scipy(matrix: sp.spmatrix) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices (2, nnz) int64, values (nnz,) float32) of a scipy sparse matrix, in row-major order."""
    coo = sp.coo_matrix(matrix)
    coo.sum_duplicates()  # canonical: sorted by (row, col), no repeats
    indices = np.vstack([coo.row, coo.col]).astype(np.int64)
    return torch.from_numpy(indices), torch.from_numpy(coo.data.astype(np.float32))


def normalized_bipartite_adjacency(train: sp.csr_matrix) -> sp.csr_matrix:
    """The symmetric-normalised user-item graph of LightGCN/NGCF: ``D^-1/2 A D^-1/2`` with
    ``A = [[0, R], [R^T, 0]]`` over the nodes ``users + items``.

    ``train``: binary (n_users, n_items). Returns a csr of shape (n_users + n_items, n_users + n_items); a node without
    edges keeps a zero row instead of dividing by a zero degree."""
    r = sp.csr_matrix(train, dtype=np.float32)
    r.data[:] = 1.0
    n_users, n_items = r.shape
    adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    adj.resize(n_users + n_items, n_users + n_items)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(deg)
    nz = deg > 0
    inv_sqrt[nz] = deg[nz] ** -0.5
    d = sp.diags(inv_sqrt.astype(np.float32))
    return sp.csr_matrix(d @ adj @ d, dtype=np.float32)


def check_users(users: torch.Tensor, n_users: int) -> None:
    """Raises IndexError naming the first user index outside ``0..n_users-1`` (a tensor index of -1 would otherwise
    silently score the last user)."""
    if users.numel() and (int(users.min()) < 0 or int(users.max()) >= n_users):
        bad = users[(users < 0) | (users >= n_users)][0]
        raise IndexError(f"user index {int(bad)} is out of range: the model knows users 0..{n_users - 1}")


def data_sized_buffers(module: nn.Module, names: tuple[str, ...]) -> None:
    """Lets ``module.load_state_dict`` accept buffers ``names`` at any saved size (they hold data-sized arrays such as
    a graph or a similarity list) by resizing the placeholders before torch checks shapes."""

    def resize(mod, state_dict, prefix, *_):
        for name in names:
            saved = state_dict.get(prefix + name)
            if saved is not None:
                current = getattr(mod, name)
                setattr(mod, name, torch.empty(saved.shape, dtype=current.dtype, device=current.device))
        if hasattr(mod, "_cache"):
            mod._cache.clear()  # anything derived from the old buffers is stale

    module.register_load_state_dict_pre_hook(resize)


def optional_buffers(module: nn.Module, names: tuple[str, ...]) -> None:
    """Lets ``module.load_state_dict`` accept a state dict without buffers ``names`` (saved before they existed):
    they keep their current (empty) values."""

    def fill(mod, state_dict, prefix, *_):
        for name in names:
            state_dict.setdefault(prefix + name, getattr(mod, name))

    module.register_load_state_dict_pre_hook(fill)


def binary_csr(matrix: sp.spmatrix, dtype=np.float32) -> sp.csr_matrix:
    """A canonical 0/1 copy of ``matrix``: CSR, duplicates summed, indices sorted, every stored value 1."""
    out = sp.csr_matrix(matrix, dtype=dtype, copy=True)
    out.sum_duplicates()
    out.sort_indices()
    out.data[:] = 1
    return out


def history_buffers(train: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indptr (n_users + 1,), items (nnz,))`` int64 of the canonical CSR of ``train``: each user's training items,
    the form :func:`history_columns` reads."""
    return torch.from_numpy(train.indptr.astype(np.int64)), torch.from_numpy(train.indices.astype(np.int64))


def history_columns(indptr: torch.Tensor, items: torch.Tensor, users: torch.Tensor, n_items: int) -> torch.Tensor:
    """Dense (n_items, B) 0/1 matrix whose column b marks the training items of ``users[b]``; the histories are
    CSR-style: user u's items are ``items[indptr[u]:indptr[u + 1]]``."""
    start, end = indptr[users], indptr[users + 1]
    lengths = end - start
    column = torch.repeat_interleave(torch.arange(len(users)), lengths)
    first = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)  # where each user's run starts
    where = torch.arange(int(lengths.sum())) - first + torch.repeat_interleave(start, lengths)
    history_t = torch.zeros(n_items, len(users))
    history_t[items.index_select(0, where), column] = 1.0
    return history_t


def spmm(a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``a @ x`` for a sparse (M, N) ``a`` with its transpose ``a_t`` (N, M) built once, dense ``x`` (N, d) -> (M, d);
    the gradient reaches ``x`` only."""
    return fixed_spmm(a, a_t, x)
