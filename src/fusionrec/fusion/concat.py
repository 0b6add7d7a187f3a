"""``concat``: concatenate the sources (missing ones zeroed, with presence flags appended) and map through an MLP."""

from __future__ import annotations

import torch
from torch import nn

from fusionrec.fusion.base import Fusion, FusionOut, register_fusion


@register_fusion
class ConcatFusion(Fusion):
    name = "concat"

    def __init__(self, n_sources: int, dim: int, hidden: int | None = None, dropout: float = 0.0):
        super().__init__(n_sources, dim)
        hidden = hidden or dim
        # The presence flags let the MLP tell "source missing" apart from "source is the zero vector".
        self.mlp = nn.Sequential(nn.Linear(n_sources * dim + n_sources, hidden), nn.Tanh(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))

    def forward(self, sources: torch.Tensor, mask: torch.Tensor) -> FusionOut:
        """sources (N, S, d), mask (N, S) -> vectors (N, d); no per-source weights."""
        present = mask.to(sources.dtype)
        flat = (sources * present.unsqueeze(-1)).flatten(1)
        return FusionOut(self.mlp(torch.cat([flat, present], dim=1)), None)
