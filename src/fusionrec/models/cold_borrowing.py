"""How an item without training interactions borrows a vector from warm items of similar text (FusionRec's
``cold_path: neighbours``): its ``k`` nearest warm items by text cosine, softmax-weighted, their final vectors
mixed and rescaled to the neighbours' typical norm. Functions of tensors; the model supplies its own."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def text_neighbours(text: torch.Tensor, mask: torch.Tensor, catalogue_text: torch.Tensor, warm: torch.Tensor,
                    k: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For items with ``text`` (N, text_dim) and ``mask`` (N,) bool: the ``k`` items among ``warm`` (indices into
    ``catalogue_text`` (n_items, text_dim)) of most similar text by cosine, index (N, k) (-1 where an item has no
    text or fewer warm items exist) and softmax(cos / ``temperature``) weights (N, k) (0 where the index is -1)."""
    k = min(k, len(warm))
    n = text.shape[0]
    if k == 0 or n == 0:
        return torch.full((n, max(k, 1)), -1, dtype=torch.long), torch.zeros(n, max(k, 1))
    cos = F.normalize(text.float(), dim=1) @ F.normalize(catalogue_text[warm], dim=1).T  # (N, n_warm)
    top, where = cos.topk(k, dim=1)
    weight = torch.softmax(top / temperature, dim=1)
    index = warm[where]
    index[~mask.bool()] = -1
    weight[~mask.bool()] = 0.0
    return index, weight


def borrow(items: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """Borrowed vectors (N, d) from final item vectors ``items`` (n_items, d): the ``weight``-ed mean of the rows
    ``index`` (N, k), rescaled to the weighted mean of their norms times ``scale``."""
    nbr = items[index.clamp(min=0)]  # (N, k, d)
    w = weight.unsqueeze(2)
    mix = (nbr * w).sum(1)
    target = (nbr.norm(dim=2, keepdim=True) * w).sum(1) * scale
    return mix * (target / mix.norm(dim=1, keepdim=True).clamp(min=1e-12))
