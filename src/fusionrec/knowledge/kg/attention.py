"""KGAT's knowledge-aware attention and bi-interaction propagation over a collaborative knowledge graph.

Attention (Wang et al. 2019, eq. 4-5), for every edge (h, r, t)::

    pi(h, r, t) = (W_r e_t)^T tanh(W_r e_h + e_r)
    alpha(h, r, t) = exp(pi(h, r, t)) / sum over h's out-edges (h, r', t') of exp(pi(h, r', t'))

The weights form a sparse (n_nodes x n_nodes) matrix A (A[h, t] = alpha, summed over parallel edges), recomputed
without gradient once per epoch (:meth:`KGATAttention.update_attention`) and held fixed within it, as KGAT does.

Propagation: ``e_N = A e`` (a node without out-edges gets e_N = 0), then per layer l the bi-interaction aggregator::

    e^(l) = LeakyReLU(W1 (e^(l-1) + e_N)) + LeakyReLU(W2 (e^(l-1) * e_N))

followed by message dropout and (``normalize``) row-wise L2 normalisation. The output is the concatenation
``[e^(0), e^(1), ..., e^(L)]`` (``combine="concat"``, KGAT's choice) or the sum (``combine="sum"``, all layer sizes
equal to the input size).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.knowledge.kg.collaborative import CKG
from fusionrec.util.sparse_ops import fixed_spmm


@dataclass(frozen=True, eq=False)
class RelationGroups:
    """The edges of a graph grouped by relation, for :func:`attention_logits`. For relation r: ``edges[r]``
    LongTensor (E_r,), its edge numbers; ``nodes[r]`` LongTensor (U_r,), the distinct nodes its edges touch;
    ``head_at[r]`` / ``tail_at[r]`` LongTensor (E_r,), each edge's head / tail as a position in ``nodes[r]``; ``order``
    LongTensor (E,), all edges in relation order (the concatenation of ``edges``)."""

    edges: list[torch.Tensor]
    nodes: list[torch.Tensor]
    head_at: list[torch.Tensor]
    tail_at: list[torch.Tensor]
    order: torch.Tensor

    def to(self, device: torch.device | str) -> "RelationGroups":
        move = (lambda ts: [t.to(device) for t in ts])
        return RelationGroups(move(self.edges), move(self.nodes), move(self.head_at), move(self.tail_at),
                              self.order.to(device))


def relation_groups(heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor, n_relations: int,
                    n_nodes: int) -> RelationGroups:
    """Groups edges (``heads``, ``relations``, ``tails``: LongTensor (E,)) by relation, vectorised: one sort of the
    edges and one ``unique`` over (relation, node) keys, then slicing."""
    order = torch.argsort(relations, stable=True)
    counts = torch.bincount(relations, minlength=n_relations).tolist()
    r_sorted = relations[order]
    keys = torch.cat([r_sorted * n_nodes + heads[order], r_sorted * n_nodes + tails[order]])
    uniq, inverse = torch.unique(keys, return_inverse=True)  # sorted: relation-major
    node_counts = torch.bincount(uniq // n_nodes, minlength=n_relations).tolist()
    node_start = [0, *itertools.accumulate(node_counts)]
    edge_start = [0, *itertools.accumulate(counts)]
    n_edges = len(order)
    edges, nodes, head_at, tail_at = [], [], [], []
    for r in range(n_relations):
        lo, hi, base = edge_start[r], edge_start[r + 1], node_start[r]
        edges.append(order[lo:hi])
        nodes.append(uniq[base:node_start[r + 1]] % n_nodes)
        head_at.append(inverse[lo:hi] - base)
        tail_at.append(inverse[n_edges + lo:n_edges + hi] - base)
    return RelationGroups(edges, nodes, head_at, tail_at, order)


def attention_logits(node_emb: torch.Tensor, relation_emb: torch.Tensor, w_r: torch.Tensor,
                     groups: RelationGroups) -> torch.Tensor:
    """``pi(h, r, t) = (W_r e_t)^T tanh(W_r e_h + e_r)`` for every edge -> (E,), differentiable.

    ``node_emb``: (n_nodes, d); ``relation_emb``: (n_relations, d_r); ``w_r``: (n_relations, d_r, d); ``groups``:
    from :func:`relation_groups`. Per relation (a loop over relations, never over edges) each distinct node is
    projected once, ``W_r e`` and ``tanh(W_r e + e_r)`` for the U_r nodes the relation touches, and each edge takes
    the dot product of its head's and its tail's row."""
    pieces = []
    for r, nodes in enumerate(groups.nodes):
        if len(groups.edges[r]) == 0:
            continue
        projected = node_emb.index_select(0, nodes) @ w_r[r].t()  # (U_r, d_r): W_r e for each node
        query = torch.tanh(projected + relation_emb[r])  # (U_r, d_r): tanh(W_r e_h + e_r), per node not per edge
        pieces.append((query.index_select(0, groups.head_at[r])
                       * projected.index_select(0, groups.tail_at[r])).sum(-1))
    if not pieces:
        return node_emb.new_zeros(0)
    grouped = torch.cat(pieces)  # edges in ``groups.order``
    inverse = torch.empty_like(groups.order)
    inverse[groups.order] = torch.arange(len(groups.order), device=groups.order.device)
    return grouped[inverse]


def segment_softmax(logits: torch.Tensor, index: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax of ``logits`` (E,) within each group of equal ``index`` (E,) in ``0..n_segments-1`` -> (E,).
    Stable (the group's max is subtracted) and differentiable."""
    if len(logits) == 0:
        return logits
    group_max = logits.new_full((n_segments,), float("-inf"))
    group_max = group_max.scatter_reduce(0, index, logits.detach(), reduce="amax", include_self=True)
    ex = torch.exp(logits - group_max[index])
    denom = ex.new_zeros(n_segments).index_add(0, index, ex)
    return ex / denom[index]


def edge_attention(graph: CKG, node_emb: torch.Tensor, relation_emb: torch.Tensor, w_r: torch.Tensor
                   ) -> torch.Tensor:
    """alpha(h, r, t) for every edge of ``graph`` -> (E,), summing to 1 over each head's out-edges; differentiable.
    Shapes as in :func:`attention_logits`."""
    groups = relation_groups(graph.heads, graph.relations, graph.tails, graph.n_relations, graph.n_nodes)
    logits = attention_logits(node_emb, relation_emb, w_r, groups.to(node_emb.device))
    return segment_softmax(logits, graph.heads.to(node_emb.device), graph.n_nodes)


class SparsePattern:
    """The CSR layout of an (n, n) matrix with entries at (``rows``, ``cols``) (LongTensor (E,) each), computed once,
    so that a matrix with new per-edge values is built without sorting: repeated (row, col) pairs are summed."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, n: int):
        self.n = int(n)
        uniq, self.slot = torch.unique(rows * n + cols, return_inverse=True)  # row-major order
        self.n_slots = len(uniq)
        self.crow = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
        self.crow[1:] = torch.cumsum(torch.bincount(uniq // n, minlength=n), 0)
        self.col = uniq % n

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """Sparse CSR (n, n) holding ``values`` (E,), one per edge given at construction."""
        summed = values.new_zeros(self.n_slots).index_add_(0, self.slot.to(values.device), values)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(self.crow.to(values.device), self.col.to(values.device), summed,
                                           (self.n, self.n), check_invariants=False)


class BiInteraction(nn.Module):
    """One KGAT bi-interaction layer: ``LeakyReLU(W1 (e + e_N)) + LeakyReLU(W2 (e * e_N))``.
    ``e``, ``e_n``: (N, in_dim) -> (N, out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, negative_slope: float = 0.2):
        super().__init__()
        self.w1 = nn.Linear(in_dim, out_dim)
        self.w2 = nn.Linear(in_dim, out_dim)
        self.negative_slope = negative_slope

    def forward(self, e: torch.Tensor, e_n: torch.Tensor) -> torch.Tensor:
        slope = self.negative_slope
        return F.leaky_relu(self.w1(e + e_n), slope) + F.leaky_relu(self.w2(e * e_n), slope)


class KGATAttention(nn.Module):
    """KGAT's attentive propagation over a :class:`CKG` (see the module docstring for the formulas).

    The module owns only the aggregator weights; node embeddings (n_nodes, dim), relation embeddings
    (n_relations, d_r) and ``W_r`` (n_relations, d_r, dim) belong to the model (typically a shared
    :class:`~fusionrec.knowledge.kg.embedding.TransR`). The graph is given at construction or with :meth:`set_graph`
    and is not saved in the state dict (rebuild it from the data); the attention matrix is derived state too.

    ``layer_dims``: output size of each of the L layers; ``dropout``: message dropout after each layer (training
    only); ``combine``: "concat" (output size ``dim + sum(layer_dims)``) or "sum" (all sizes equal to ``dim``)."""

    def __init__(self, dim: int, layer_dims: Sequence[int] = (64, 32, 16), dropout: float = 0.1,
                 combine: str = "concat", normalize: bool = True, graph: CKG | None = None):
        super().__init__()
        if combine not in ("concat", "sum"):
            raise ValueError(f"combine must be 'concat' or 'sum', not {combine!r}")
        if combine == "sum" and any(d != dim for d in layer_dims):
            raise ValueError(f"combine='sum' needs every layer size equal to dim={dim}, got {list(layer_dims)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        sizes = [dim, *layer_dims]
        self.dim, self.combine, self.normalize = dim, combine, normalize
        self.layers = nn.ModuleList(BiInteraction(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        self.graph: CKG | None = None
        self._adj: torch.Tensor | None = None
        self._adj_t: torch.Tensor | None = None
        if graph is not None:
            self.set_graph(graph)

    @property
    def out_dim(self) -> int:
        return self.dim + sum(layer.w1.out_features for layer in self.layers) if self.combine == "concat" else self.dim

    def set_graph(self, graph: CKG) -> None:
        """Use ``graph``'s edges from now on; the attention must be updated before the next forward."""
        self.graph = graph
        self._groups = relation_groups(graph.heads, graph.relations, graph.tails, graph.n_relations, graph.n_nodes)
        self._pattern = SparsePattern(graph.heads, graph.tails, graph.n_nodes)
        self._pattern_t = SparsePattern(graph.tails, graph.heads, graph.n_nodes)
        self._adj = self._adj_t = None

    def set_attention(self, weights: torch.Tensor) -> torch.Tensor:
        """Use per-edge weights (E,) as the fixed propagation matrix; returns it as sparse CSR (n_nodes, n_nodes)."""
        g = self._require_graph()
        if weights.shape != (g.n_edges,):
            raise ValueError(f"attention weights must have shape ({g.n_edges},), got {tuple(weights.shape)}")
        weights = weights.detach().float()
        self._adj = self._pattern.matrix(weights)
        self._adj_t = self._pattern_t.matrix(weights)
        return self._adj

    @torch.no_grad()
    def update_attention(self, entity_emb: torch.Tensor, relation_emb: torch.Tensor, W_r: torch.Tensor  # noqa: N803
                         ) -> torch.Tensor:
        """Recomputes alpha for every edge from ``entity_emb`` (n_nodes, dim) (every CKG node: entities, fresh item
        nodes, users), ``relation_emb`` (n_relations, d_r) and ``W_r`` (n_relations, d_r, dim), without gradient, and
        keeps it as the propagation matrix. Returns the sparse CSR (n_nodes, n_nodes), rows summing to 1 for nodes
        with out-edges and 0 otherwise."""
        g = self._require_graph()
        if entity_emb.shape[0] != g.n_nodes:
            raise ValueError(f"entity_emb has {entity_emb.shape[0]} rows for a graph of {g.n_nodes} nodes")
        dev = entity_emb.device
        logits = attention_logits(entity_emb, relation_emb, W_r, self._groups.to(dev))
        return self.set_attention(segment_softmax(logits, g.heads.to(dev), g.n_nodes))

    def forward(self, node_emb: torch.Tensor) -> torch.Tensor:
        """``node_emb``: (n_nodes, dim) -> (n_nodes, out_dim), propagated with the current attention matrix."""
        if self._adj is None:
            raise RuntimeError("no attention yet: call update_attention (or set_attention) before propagating")
        if node_emb.shape != (self._adj.shape[0], self.dim):
            raise ValueError(f"node_emb must have shape ({self._adj.shape[0]}, {self.dim}), "
                             f"got {tuple(node_emb.shape)}")
        outputs = [node_emb]
        e = node_emb
        for layer in self.layers:
            e_n = fixed_spmm(self._adj, self._adj_t, e)
            e = self.dropout(layer(e, e_n))
            outputs.append(F.normalize(e, dim=1) if self.normalize else e)
        return torch.cat(outputs, dim=1) if self.combine == "concat" else torch.stack(outputs).sum(0)

    def _require_graph(self) -> CKG:
        if self.graph is None:
            raise RuntimeError("no graph: pass one to KGATAttention(...) or call set_graph")
        return self.graph
