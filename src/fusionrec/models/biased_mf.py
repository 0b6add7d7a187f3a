"""Biased matrix factorisation (Koren, Bell & Volinsky 2009; Funk's SVD as Surprise ships it) for explicit ratings:

    r(u, i) = mu + b_u + b_i + <p_u, q_i>

``mu`` is the training ratings' mean (fixed), ``b_u``, ``b_i`` the user and item biases and ``p``, ``q`` the factors,
trained by the ``mse`` loss on the rated training pairs with an L2 term on what a batch touches (``reg``). Items are
ranked by their predicted rating, so the model is also evaluated on top-k lists; it may train on a ranking loss too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fusionrec.errors import DataError
from fusionrec.models.base import Batch, ForwardOut, HyperParameters, Model, ModelInputs
from fusionrec.models.capabilities import RatingPredictor
from fusionrec.models.graph_ops import check_users
from fusionrec.models.registry import register
from fusionrec.typed_config import NonNegativeFloat, PositiveFloat, PositiveInt


@dataclass(frozen=True)
class BiasedMFParams(HyperParameters):
    embedding_size: PositiveInt = 64  # factors per user and item; 8..256
    reg_weight: NonNegativeFloat = 0.02  # L2 on the batch's factors and biases ('reg' term), per pair; 0..0.2
    init_std: PositiveFloat = 0.1  # normal init of the factors (biases start at 0); 0.01..0.2


@register
class BiasedMF(Model, RatingPredictor):
    """See the module docstring. Buffer ``mean`` (): mu, set by :meth:`prepare` from the training ratings."""

    name = "biased-mf"
    Params = BiasedMFParams

    @classmethod
    def required_inputs(cls, params) -> set[str]:
        return {"ratings"}

    def __init__(self, n_users: int, n_items: int, params: BiasedMFParams | None = None):
        super().__init__(n_users, n_items, params)
        p = self.params
        self.user_factors = nn.Embedding(self.n_users, p.embedding_size)
        self.item_factors = nn.Embedding(self.n_items, p.embedding_size)
        self.user_bias = nn.Embedding(self.n_users, 1)
        self.item_bias = nn.Embedding(self.n_items, 1)
        for table in (self.user_factors, self.item_factors):
            nn.init.normal_(table.weight, std=p.init_std)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)
        self.register_buffer("mean", torch.zeros(()))

    def prepare(self, inputs: ModelInputs) -> None:
        if inputs.ratings is None or inputs.ratings.nnz == 0:
            raise DataError("biased-mf needs explicit ratings (a rating field in NAME.inter)", field="rating")
        self.mean.fill_(float(np.mean(inputs.ratings.data)))

    # -- RatingPredictor ----------------------------------------------------------------------------------------------
    def predicts_ratings(self) -> bool:
        return True

    def predict_ratings(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """users, items (B,) -> mu + b_u + b_i + <p_u, q_i> (B,)."""
        return (self.mean + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
                + (self.user_factors(users) * self.item_factors(items)).sum(-1))

    def forward_ratings(self, batch: Batch) -> ForwardOut:
        """Predicted ratings (B,) of the batch's pairs; ``reg`` = reg_weight x the mean over pairs of
        |p_u|^2 + |q_i|^2 + b_u^2 + b_i^2."""
        pred = self.predict_ratings(batch.users, batch.pos)
        return ForwardOut(pred, pred.new_zeros(len(pred), 0), {"reg": self._reg(batch.users, batch.pos)})

    def _reg(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        touched = (self.user_factors(users).square().sum() + self.item_factors(items).square().sum()
                   + self.user_bias(users).square().sum() + self.item_bias(items).square().sum())
        return self.params.reg_weight * touched / max(len(users), 1)

    # -- ranking ------------------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> ForwardOut:
        """A ranking loss's step: the predicted ratings of the positives (B,) and negatives (B, n_neg); ``reg`` on
        the users and positives."""
        pos = self.predict_ratings(batch.users, batch.pos)
        users = batch.users.unsqueeze(1).expand_as(batch.neg)
        neg = self.predict_ratings(users.reshape(-1), batch.neg.reshape(-1)).view(batch.neg.shape)
        return ForwardOut(pos, neg, {"reg": self._reg(batch.users, batch.pos)})

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> every item's predicted rating (B, n_items)."""
        check_users(users, self.n_users)
        return (self.mean + self.user_bias(users) + self.item_bias.weight.T
                + self.user_factors(users) @ self.item_factors.weight.T)

    def serving_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[p_u, mu + b_u, 1]`` and ``[q_i, 1, b_i]``: their dot product is the predicted rating."""
        ones_u, ones_i = torch.ones(self.n_users, 1), torch.ones(self.n_items, 1)
        users = torch.cat([self.user_factors.weight, self.mean + self.user_bias.weight, ones_u], 1)
        items = torch.cat([self.item_factors.weight, ones_i, self.item_bias.weight], 1)
        return users.detach(), items.detach()
