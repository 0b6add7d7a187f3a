"""``attention``: one softmax weight per source and item, over the sources the item has (kept for explanations)."""

from __future__ import annotations

import torch
from torch import nn

from fusionrec.fusion.base import Fusion, FusionOut, masked_softmax, register_fusion


@register_fusion
class AttentionFusion(Fusion):
    name = "attention"

    def __init__(self, n_sources: int, dim: int, hidden: int | None = None):
        super().__init__(n_sources, dim)
        hidden = hidden or dim
        self.key = nn.Linear(dim, hidden)
        self.query = nn.Parameter(torch.zeros(hidden))  # zero: starts as the plain mean over present sources
        self.source_bias = nn.Parameter(torch.zeros(n_sources))

    def forward(self, sources: torch.Tensor, mask: torch.Tensor) -> FusionOut:
        """sources (N, S, d), mask (N, S) -> vectors (N, d) = sum_s a_s x_s, weights a (N, S):
        a = softmax_s(q . tanh(W x_s + b) + bias_s) over present sources."""
        return self.forward_views(sources, [mask])[0]

    def forward_views(self, sources: torch.Tensor, masks: list[torch.Tensor]) -> list[FusionOut]:
        """The logits depend on each source's vector alone: computed once, then normalised per mask."""
        logits = torch.tanh(self.key(sources)) @ self.query + self.source_bias  # (N, S)
        out = []
        for mask in masks:
            weights = masked_softmax(logits, mask, dim=1)
            out.append(FusionOut((weights.unsqueeze(-1) * sources).sum(dim=1), weights))
        return out
