"""LightGCN (He et al., SIGIR 2020): embeddings smoothed over the normalised user-item graph, no weights between
layers, the final vector the mean of every layer's."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fusionrec.errors import FusionrecError
from fusionrec.models.base import HistoryReader, HyperParameters, Model, ModelInputs, checked_history
from fusionrec.models.graph_ops import (BipartiteGraph, bipartite_graph, buffers_from_scipy,
                                        data_sized_buffers, mean_over_layers, normalized_bipartite_adjacency)
from fusionrec.models.propagated import PropagatedEmbeddings
from fusionrec.models.registry import register
from fusionrec.models.similarity import Similarity
from fusionrec.typed_config import NonNegativeFloat, NonNegativeInt, PositiveInt


@dataclass(frozen=True)
class LightGCNParams(HyperParameters):
    embedding_size: PositiveInt = 64  # d, width of the layer-0 user and item vectors; 16..256
    n_layers: NonNegativeInt = 2  # propagation steps over the graph; 1..4 (more over-smooths)
    reg_weight: NonNegativeFloat = 1e-5  # L2 on the batch's layer-0 vectors, returned as the 'reg' term; 0..1e-2
    similarity: Similarity = "dot"  # dot | cosine (final vectors L2-normalised before the product)


@register
class LightGCN(PropagatedEmbeddings, Model, HistoryReader):
    """E^(l+1) = A_hat E^(l) over the nodes [users; items] with A_hat = D^-1/2 [[0, R], [R^T, 0]] D^-1/2;
    final E = mean(E^(0..L)); score(u, i) = <E_u, E_i>.

    Buffers ``adj_indices`` (2, nnz) and ``adj_values`` (nnz,) hold A_hat, built by :meth:`prepare` from the training
    matrix; a model loaded from a state dict needs no ``prepare``."""

    name = "lightgcn"
    Params = LightGCNParams

    def __init__(self, n_users: int, n_items: int, params: LightGCNParams | None = None):
        super().__init__(n_users, n_items, params)
        d = self.params.embedding_size
        self.user_emb = nn.Embedding(self.n_users, d)  # (n_users, d), layer 0
        self.item_emb = nn.Embedding(self.n_items, d)  # (n_items, d), layer 0
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        self.register_buffer("adj_indices", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("adj_values", torch.zeros(0))
        data_sized_buffers(self, ("adj_indices", "adj_values"))

    def prepare(self, inputs: ModelInputs) -> None:
        self.adj_indices, self.adj_values = buffers_from_scipy(normalized_bipartite_adjacency(inputs.train))
        self._cache.clear()

    def use_history(self, history) -> None:
        """Propagate the trained layer-0 vectors over the graph of ``history`` (scipy CSR (n_users, n_items)),
        normalised afresh; no weight changes."""
        graph = normalized_bipartite_adjacency(checked_history(history, self.n_users, self.n_items))
        self.adj_indices, self.adj_values = buffers_from_scipy(graph)
        self._cache.clear()

    def _graph(self) -> BipartiteGraph:
        if "graph" not in self._cache:  # the graph never changes with the weights: keep it in train mode too
            if self.adj_values.numel() == 0:
                raise FusionrecError("lightgcn has no graph yet: call prepare(inputs) or load a saved state dict")
            self._cache["graph"] = bipartite_graph(self.adj_indices, self.adj_values, self.n_users, self.n_items)
        return self._cache["graph"]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (n_users, d) and (n_items, d) vectors: the mean over layers 0..n_layers."""
        return mean_over_layers(self._graph(), self.user_emb.weight, self.item_emb.weight, self.params.n_layers)
