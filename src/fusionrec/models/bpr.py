"""BPR-MF (Rendle et al. 2009): matrix factorisation trained on (user, positive, negative) triples."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fusionrec.models.base import Batch, ForwardOut, HyperParameters, Model
from fusionrec.models.graph_ops import check_users
from fusionrec.models.registry import register
from fusionrec.models.similarity import Similarity, catalogue_out, finish
from fusionrec.typed_config import PositiveInt


@dataclass(frozen=True)
class BPRParams(HyperParameters):
    embedding_size: PositiveInt = 64  # d, width of user and item vectors; 16..256
    similarity: Similarity = "dot"  # dot | cosine (vectors L2-normalised before the product)


@register
class BPR(Model):
    """score(u, i) = <e_u, e_i> (or their cosine) with free user and item embeddings (xavier-normal init)."""

    name = "bpr"
    Params = BPRParams

    def __init__(self, n_users: int, n_items: int, params: BPRParams | None = None):
        super().__init__(n_users, n_items, params)
        d = self.params.embedding_size
        self.user_emb = nn.Embedding(self.n_users, d)  # (n_users, d)
        self.item_emb = nn.Embedding(self.n_items, d)  # (n_items, d)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)

    def forward(self, batch: Batch) -> ForwardOut:
        """users, pos (B,), neg (B, n_neg) -> pos scores (B,), neg scores (B, n_neg); no extra terms."""
        sim = self.params.similarity
        items = self.item_emb.weight
        u = finish(self.user_emb.weight.index_select(0, batch.users), sim)  # (B, d); index_select: cheap backward
        pos = (u * finish(items.index_select(0, batch.pos), sim)).sum(-1)  # (B,)
        neg_vecs = finish(items.index_select(0, batch.neg.reshape(-1)), sim).view(*batch.neg.shape, -1)
        neg = (neg_vecs * u.unsqueeze(1)).sum(-1)  # (B, n_neg); a mul-sum is far faster than bmm here
        return ForwardOut(pos, neg)

    def forward_catalogue(self, batch: Batch) -> ForwardOut:
        """users, pos (B,) -> pos scores (B,) and every item's scores (B, n_items), or the scores (B, C) of
        ``batch.candidates``."""
        sim = self.params.similarity
        u = finish(self.user_emb.weight.index_select(0, batch.users), sim)
        return catalogue_out(u, finish(self.item_emb.weight, sim), batch.pos, candidates=batch.candidates)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items)."""
        check_users(users, self.n_users)
        sim = self.params.similarity
        return finish(self.user_emb(users), sim) @ finish(self.item_emb.weight, sim).T

    def serving_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_users, d), (n_items, d): the embeddings themselves (unit length under ``cosine``)."""
        sim = self.params.similarity
        return finish(self.user_emb.weight.detach(), sim), finish(self.item_emb.weight.detach(), sim)
