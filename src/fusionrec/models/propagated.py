"""Training and scoring shared by the models whose final vectors are free layer-0 embeddings propagated over a graph
(``lightgcn``, ``social-lightgcn``): each defines ``propagate()`` -> (users (n_users, d), items (n_items, d)) and has
``user_emb`` / ``item_emb`` tables and ``reg_weight`` / ``similarity`` hyper-parameters; this mixin does the rest."""

from __future__ import annotations

import torch

from fusionrec.models.base import Batch, ForwardOut
from fusionrec.models.similarity import ScoredByFinalVectors, catalogue_out, finish


class PropagatedEmbeddings(ScoredByFinalVectors):
    """``forward`` / ``forward_catalogue`` on the propagated vectors, 'reg' on the batch's layer-0 vectors, and
    ``final_vectors`` (unit length under ``cosine``) for :class:`ScoredByFinalVectors`. Listed before ``Model``."""

    def layer0_reg(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """reg_weight * (|e_users|^2 + |e_items|^2) / (2 B) over the layer-0 rows, B = len(users)."""
        ego = self.user_emb.weight.index_select(0, users).square().sum() \
            + self.item_emb.weight.index_select(0, items).square().sum()
        return self.params.reg_weight * ego / (2 * len(users))

    def forward(self, batch: Batch) -> ForwardOut:
        """users, pos (B,), neg (B, n_neg) -> scores (B,), (B, n_neg) and 'reg' over the batch's users, positives
        and negatives."""
        sim = self.params.similarity
        users, items = self.propagate()
        u = finish(users.index_select(0, batch.users), sim)  # (B, d)
        pos = (u * finish(items.index_select(0, batch.pos), sim)).sum(-1)  # (B,)
        neg_vecs = finish(items.index_select(0, batch.neg.reshape(-1)), sim).view(*batch.neg.shape, -1)
        neg = (neg_vecs * u.unsqueeze(1)).sum(-1)  # (B, n_neg)
        reg = self.layer0_reg(batch.users, torch.cat([batch.pos, batch.neg.reshape(-1)]))
        return ForwardOut(pos, neg, {"reg": reg})

    def forward_catalogue(self, batch: Batch) -> ForwardOut:
        """users, pos (B,) -> pos scores (B,), every item's scores (B, n_items) (or those (B, C) of
        ``batch.candidates``) and 'reg' on the layer-0 vectors of the batch's users and positives."""
        sim = self.params.similarity
        users, items = self.propagate()
        return catalogue_out(finish(users.index_select(0, batch.users), sim), finish(items, sim), batch.pos,
                             {"reg": self.layer0_reg(batch.users, batch.pos)}, batch.candidates)

    def final_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The propagated vectors as scored (unit length under ``cosine``)."""
        users, items = self.propagate()
        return finish(users, self.params.similarity), finish(items, self.params.similarity)
