"""``gate``: a learned per-dimension gate over the sources, normalised over the sources each item has."""

from __future__ import annotations

import torch
from torch import nn

from fusionrec.fusion.base import Fusion, FusionOut, masked_softmax, register_fusion


@register_fusion
class GateFusion(Fusion):
    name = "gate"

    def __init__(self, n_sources: int, dim: int):
        super().__init__(n_sources, dim)
        # One gate logit per (source, dimension), computed from that source's own vector.
        self.gate = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_sources))

    def forward(self, sources: torch.Tensor, mask: torch.Tensor) -> FusionOut:
        """sources (N, S, d), mask (N, S) -> vectors (N, d) = sum_s g_s * x_s with g (N, S, d) a softmax over the
        present sources per dimension; weights (N, S) = the gate averaged over dimensions."""
        return self.forward_views(sources, [mask])[0]

    def forward_views(self, sources: torch.Tensor, masks: list[torch.Tensor]) -> list[FusionOut]:
        """The gate logits depend on each source's vector alone: computed once, then normalised per mask."""
        logits = torch.stack([lin(sources[:, s]) for s, lin in enumerate(self.gate)], dim=1)  # (N, S, d)
        out = []
        for mask in masks:
            g = masked_softmax(logits, mask.unsqueeze(-1), dim=1)
            out.append(FusionOut((g * sources).sum(dim=1), g.mean(dim=2)))
        return out
