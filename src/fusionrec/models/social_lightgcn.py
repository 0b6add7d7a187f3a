"""Social LightGCN: LightGCN whose user side also listens to the users' friends, the propagation scheme of the
social recommenders that smooth user vectors over a social graph beside the user-item graph (SocialLGN, Liao et
al. 2022; DiffNet's social diffusion without its feature MLPs). Per layer::

    users^(l+1) = (1 - b_u) B items^(l) + b_u S users^(l)        items^(l+1) = B^T users^(l)

with B the normalised user-item blocks (as LightGCN), S = D^-1/2 F D^-1/2 the normalised friendship matrix and
``b_u = social_weight`` for a user with friends, 0 without (such a user is a LightGCN user). The final vectors are
the mean of every layer's; score(u, i) = <u, i>. A friend's taste reaches a user whose own history is short."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.errors import DataError, FusionrecError
from fusionrec.models.base import HyperParameters, Model, ModelInputs
from fusionrec.models.graph_ops import (BipartiteGraph, SocialMix, bipartite_graph, buffers_from_scipy,
                                        data_sized_buffers, mean_over_layers, normalized_bipartite_adjacency,
                                        normalized_social, sparse_from_buffers)
from fusionrec.models.propagated import PropagatedEmbeddings
from fusionrec.models.registry import register
from fusionrec.models.similarity import Similarity
from fusionrec.typed_config import NonNegativeFloat, NonNegativeInt, PositiveInt, Range


@dataclass(frozen=True)
class SocialLightGCNParams(HyperParameters):
    embedding_size: PositiveInt = 64  # d, width of the layer-0 user and item vectors; 16..256
    n_layers: NonNegativeInt = 2  # propagation steps; 1..4
    social_weight: Annotated[float, Range(0, 1)] = 0.5  # b: a user's share of friends' vectors per layer; 0: LightGCN
    reg_weight: NonNegativeFloat = 1e-5  # L2 on the batch's layer-0 vectors ('reg' term); 0..1e-2
    similarity: Similarity = "dot"  # dot | cosine (final vectors L2-normalised before the product)


@register
class SocialLightGCN(PropagatedEmbeddings, Model):
    """See the module docstring. Buffers (data-sized, restored by ``load_state_dict``): ``adj_indices`` /
    ``adj_values`` the normalised user-item graph, ``social_indices`` / ``social_values`` S, ``has_friends``
    (n_users,) bool."""

    name = "social-lightgcn"
    Params = SocialLightGCNParams

    @classmethod
    def required_inputs(cls, params: SocialLightGCNParams) -> set[str]:
        return {"social"}

    def __init__(self, n_users: int, n_items: int, params: SocialLightGCNParams | None = None):
        super().__init__(n_users, n_items, params)
        d = self.params.embedding_size
        self.user_emb = nn.Embedding(self.n_users, d)
        self.item_emb = nn.Embedding(self.n_items, d)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        for name, dtype in (("adj_indices", torch.long), ("adj_values", torch.float32),
                            ("social_indices", torch.long), ("social_values", torch.float32)):
            self.register_buffer(name, torch.zeros((2, 0) if name.endswith("indices") else (0,), dtype=dtype))
        self.register_buffer("has_friends", torch.zeros(self.n_users, dtype=torch.bool))
        data_sized_buffers(self, ("adj_indices", "adj_values", "social_indices", "social_values"))

    def prepare(self, inputs: ModelInputs) -> None:
        if inputs.social is None or inputs.social.shape != (self.n_users, self.n_users):
            raise DataError("social-lightgcn needs the users' social graph (RecBole's NAME.net)", field="social")
        self.adj_indices, self.adj_values = buffers_from_scipy(normalized_bipartite_adjacency(inputs.train))
        self.social_indices, self.social_values = buffers_from_scipy(normalized_social(inputs.social))
        self.has_friends = torch.from_numpy(np.diff(sp.csr_matrix(inputs.social).indptr) > 0)
        self._cache.clear()

    def _graphs(self) -> tuple[BipartiteGraph, torch.Tensor]:
        if "graphs" not in self._cache:  # constant: kept in train mode too
            if self.adj_values.numel() == 0:
                raise FusionrecError("social-lightgcn has no graph yet: call prepare(inputs) or load a state dict")
            self._cache["graphs"] = (
                bipartite_graph(self.adj_indices, self.adj_values, self.n_users, self.n_items),
                sparse_from_buffers(self.social_indices, self.social_values, (self.n_users, self.n_users)))
        return self._cache["graphs"]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (n_users, d) and (n_items, d) vectors: the mean over layers 0..n_layers (module docstring)."""
        graph, social = self._graphs()
        share = self.params.social_weight * self.has_friends.float().unsqueeze(1)  # (n_users, 1)
        return mean_over_layers(graph, self.user_emb.weight, self.item_emb.weight, self.params.n_layers,
                                SocialMix(social, share))
