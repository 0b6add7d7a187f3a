"""A rating head for a model whose scores are user-item dot products: explicit ratings predicted from the score,

    r(u, i) = mu + b_u + b_i + s * score(u, i)

with ``mu`` the training ratings' mean (fixed), learned biases and a learned scale ``s`` (a cosine score lives in
[-1, 1], a rating on the data's own scale). Trained alone by the ``mse`` loss, or beside a ranking loss as the
model's ``rating`` term (multi-task, weighed by ``training.term_weights.rating``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.errors import DataError


class RatingHead(nn.Module):
    def __init__(self, n_users: int, n_items: int):
        super().__init__()
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.scale = nn.Parameter(torch.ones(()))
        self.register_buffer("mean", torch.zeros(()))

    def fit_mean(self, ratings: sp.csr_matrix | None, model: str) -> None:
        """``mu`` from the training ratings; a :class:`DataError` naming ``model`` when there are none."""
        if ratings is None or ratings.nnz == 0:
            raise DataError(f"{model} with rating_head needs explicit ratings (a rating field in NAME.inter)",
                            field="rating")
        self.mean.fill_(float(np.mean(ratings.data)))

    def forward(self, users: torch.Tensor, items: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """users, items (B,), the model's scores of those pairs (B,) -> predicted ratings (B,)."""
        return (self.mean + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
                + self.scale * scores)

    def loss(self, users: torch.Tensor, items: torch.Tensor, scores: torch.Tensor,
             ratings: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the predicted ratings against ``ratings`` (B,)."""
        return (self(users, items, scores) - ratings).square().mean()
