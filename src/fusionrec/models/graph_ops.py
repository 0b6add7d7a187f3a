"""Sparse matrices kept as plain buffers, and the small checks models share.

A torch sparse tensor cannot be written with safetensors, so a model stores a sparse matrix as two dense buffers,
``indices`` (2, nnz) int64 and ``values`` (nnz,) float32, and rebuilds the sparse tensor when scoring. Those buffers
are sized by the data, so a freshly constructed model holds empty placeholders that :func:`data_sized_buffers` lets
``load_state_dict`` replace whatever their saved size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.util.sparse_ops import fixed_spmm



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


class BipartiteGraph(NamedTuple):
    """The two off-diagonal blocks of a symmetric user-item adjacency ``[[0, B], [B^T, 0]]``, each a CSR tensor:
    ``user_items`` B (n_users, n_items) and ``item_users`` B^T (n_items, n_users)."""

    user_items: torch.Tensor
    item_users: torch.Tensor


def bipartite_graph(indices: torch.Tensor, values: torch.Tensor, n_users: int, n_items: int) -> BipartiteGraph:
    """The blocks of the symmetric adjacency held as ``indices`` (2, nnz) / ``values`` over the nodes
    ``users + items`` (what :func:`normalized_bipartite_adjacency` builds). Raises ValueError when an entry joins two
    users or two items: such a graph is not bipartite and has no such blocks."""
    rows, cols = indices
    user_row = rows < n_users
    if bool((user_row == (cols < n_users)).any()):
        raise ValueError("the adjacency joins two users or two items: it is not a user-item (bipartite) graph")
    ui = torch.stack([rows[user_row], cols[user_row] - n_users])
    iu = torch.stack([rows[~user_row] - n_users, cols[~user_row]])
    return BipartiteGraph(sparse_from_buffers(ui, values[user_row], (n_users, n_items)),
                          sparse_from_buffers(iu, values[~user_row], (n_items, n_users)))


class _BipartiteSpMM(torch.autograd.Function):
    """One propagation step on a :class:`BipartiteGraph`: users <- B @ items, items <- B^T @ users. Each block is the
    other's transpose, so the backward is the same two products on the gradients: no sparse transpose per call."""

    @staticmethod
    def forward(ctx, user_items: torch.Tensor, item_users: torch.Tensor, users: torch.Tensor, items: torch.Tensor):
        ctx.blocks = (user_items, item_users)
        return torch.sparse.mm(user_items, items), torch.sparse.mm(item_users, users)

    @staticmethod
    def backward(ctx, grad_users: torch.Tensor, grad_items: torch.Tensor):
        user_items, item_users = ctx.blocks
        return None, None, torch.sparse.mm(user_items, grad_items), torch.sparse.mm(item_users, grad_users)


def bipartite_spmm(graph: BipartiteGraph, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``A @ [users; items]`` for ``A = [[0, B], [B^T, 0]]``, as (B @ items (n_users, d), B^T @ users (n_items, d)).
    Each product gathers rows of one side's table only: 1.1x (20k items) to 1.5x (100k items) faster on CPU than
    ``torch.sparse.mm`` on the whole adjacency, one thread (docs/benchmarks.md, "Real catalogues")."""
    return _BipartiteSpMM.apply(graph.user_items, graph.item_users, users, items)


@dataclass(frozen=True)
class SocialMix:
    """The friends' share of each user's next layer: ``matrix`` S (n_users, n_users) sparse, symmetric (the
    normalised friendship graph, :func:`normalized_social`), ``share`` (n_users, 1) b_u (0 for a user without
    friends)."""

    matrix: torch.Tensor
    share: torch.Tensor


def mean_over_layers(graph: BipartiteGraph, users: torch.Tensor, items: torch.Tensor,
                     n_layers: int, social: SocialMix | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """LightGCN's propagation: the mean of layers 0..``n_layers`` of (users, items) -> ((n_users, d), (n_items, d)).
    With ``social`` each user's next layer is ``(1 - b_u) (B items)_u + b_u (S users)_u`` (SocialLGN's social
    smoothing), the items' as LightGCN's."""
    total_u, total_i = users, items
    for _ in range(n_layers):
        from_items, next_items = bipartite_spmm(graph, users, items)
        if social is not None:  # S is symmetric: its own transpose in the backward pass
            from_items = (1 - social.share) * from_items + social.share * fixed_spmm(social.matrix, social.matrix,
                                                                                       users)
        users, items = from_items, next_items
        total_u, total_i = total_u + users, total_i + items
    return total_u / (n_layers + 1), total_i / (n_layers + 1)


def normalized_social(friends: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 F D^-1/2 of a symmetric 0/1 friendship matrix (n_users, n_users); a user without friends: zero row."""
    f = sp.csr_matrix(friends, dtype=np.float32)
    deg = np.asarray(f.sum(axis=1)).ravel()
    inv = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inv) @ f @ sp.diags(inv))


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

