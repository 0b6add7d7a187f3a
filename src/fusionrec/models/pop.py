"""Most popular: every user gets the items ranked by how often they were interacted with in training."""

from __future__ import annotations

import numpy as np
import torch

from fusionrec.models.base import Model, ModelInputs, NoParams
from fusionrec.models.graph_ops import check_users
from fusionrec.models.registry import register


@register
class Pop(Model):
    """Score of item i = number of training interactions of i, the same for every user (a non-personal baseline)."""

    name = "pop"
    Params = NoParams  # no hyper-parameters
    trainable = False

    def __init__(self, n_users: int, n_items: int, params: NoParams | None = None):
        super().__init__(n_users, n_items, params)
        self.register_buffer("counts", torch.zeros(self.n_items))  # (n_items,) float32

    def prepare(self, inputs: ModelInputs) -> None:
        counts = np.asarray(inputs.train.sum(axis=0), dtype=np.float32).ravel()
        self.counts = torch.from_numpy(counts)
        self._cache.clear()

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items), a fresh tensor (callers may mask it in place)."""
        check_users(users, self.n_users)
        return self.counts.unsqueeze(0).repeat(len(users), 1)
