"""A learned mapping from frozen language-model text vectors to an item vector: UniSRec's (Hou et al., KDD 2022)
mixture of parametric-whitening experts. Each expert k whitens the text vector with its own shift and projection,
``W_k^T (x - b_k)``; a softmax gate over ``x`` mixes them. The text vectors stay frozen: only the adapter learns, so
an item never seen in training gets a vector from its text alone."""

from __future__ import annotations

import torch
from torch import nn


class MoEAdapter(nn.Module):
    """x (N, d_in) -> sum_k g_k(x) W_k^T (x - b_k), (N, d_out), with g = softmax(x W_g)."""

    def __init__(self, d_in: int, d_out: int, n_experts: int, dropout: float):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(n_experts, d_in))  # b_k
        self.proj = nn.Parameter(torch.empty(n_experts, d_in, d_out))  # W_k
        self.gate = nn.Linear(d_in, n_experts, bias=False)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.proj, std=0.02)
        nn.init.zeros_(self.gate.weight)  # the experts start equally weighted

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        x = self.drop(text)
        experts = torch.einsum("nd,kde->nke", x, self.proj) - torch.einsum("kd,kde->ke", self.shift, self.proj)
        weights = torch.softmax(self.gate(x), dim=-1)  # (N, K)
        return (weights.unsqueeze(-1) * experts).sum(1)


def text_pca(text: torch.Tensor, mask: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A frozen PCA of the text vectors of the items that have text: ``(mean (d_text,), basis (d_text,
    components))``, the top right singular vectors as columns; with fewer items than components the rest of the
    basis stays zero, with no item with text both are zeros. Features are ``(text - mean) @ basis``."""
    mean, basis = torch.zeros(text.shape[1]), torch.zeros(text.shape[1], components)
    x = text[mask].float()
    if len(x) == 0:
        return mean, basis
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd((x - mean).double(), full_matrices=False)
    k = min(components, vh.shape[0])
    basis[:, :k] = vh[:k].T.float()
    return mean, basis
