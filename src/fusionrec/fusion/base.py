"""The fusion interface: several source vectors per item in, one vector per item out.

Every strategy takes ``sources`` of shape (N, S, d) (S sources, e.g. collaborative, text, knowledge graph, each
already projected to d dimensions) and a ``mask`` (N, S) bool that is False where an item lacks a source (no KG link,
no text, no trained id embedding). A missing source never enters the result as zeros: strategies that average
renormalise over the present sources. Strategies that weight sources return the weights (N, S) so that
explanations can show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

_FUSIONS: dict[str, type["Fusion"]] = {}


@dataclass(frozen=True)
class FusionOut:
    """``vectors``: (N, d) fused vectors; ``weights``: (N, S) per-source weights (rows sum to 1 over present
    sources) or None for strategies without weights."""

    vectors: torch.Tensor
    weights: torch.Tensor | None


class Fusion(nn.Module):
    name: ClassVar[str] = ""

    def __init__(self, n_sources: int, dim: int, **kwargs):
        super().__init__()
        self.n_sources, self.dim = n_sources, dim

    def forward(self, sources: torch.Tensor, mask: torch.Tensor) -> FusionOut:
        raise NotImplementedError

    def forward_views(self, sources: torch.Tensor, masks: list[torch.Tensor]) -> list[FusionOut]:
        """The same sources (N, S, d) fused under several masks (each (N, S)), e.g. all sources and content only.
        Default: one call per mask. Strategies whose per-source logits do not depend on the mask override this to
        compute them once."""
        return [self(sources, mask) for mask in masks]


@dataclass(frozen=True)
class SourceShare:
    """One source's part in one item's fused score (:func:`source_shares`): ``present`` (the item has it),
    ``weight`` (the fusion's weight for it; None for strategies without weights), ``alone`` = u . fuse(this source
    only) (None when absent) and ``drop`` = u . fuse(all) - u . fuse(all but this source)."""

    present: bool
    weight: float | None
    alone: float | None
    drop: float


def source_shares(fusion: Fusion, sources: torch.Tensor, mask: torch.Tensor,
                  user_vector: torch.Tensor) -> tuple[float, list[SourceShare]]:
    """What each source adds to one item's score ``u . fuse(sources)``: sources (S, d), mask (S,) bool, u (d,) ->
    (the full score, one :class:`SourceShare` per source). Every variant (all, all but s, s alone) is fused in one
    call; a variant with no source left scores 0."""
    n = sources.shape[0]
    masks = [mask]
    for s in range(n):
        without, alone = mask.clone(), torch.zeros_like(mask)
        without[s] = False
        alone[s] = mask[s]
        masks += [without, alone]
    stacked = torch.stack(masks)  # (1 + 2S, S)
    out = fusion(sources.unsqueeze(0).expand(len(masks), -1, -1), stacked)
    scores = ((out.vectors * stacked.any(1, keepdim=True)) @ user_vector.float()).tolist()
    weights = out.weights[0].tolist() if out.weights is not None else [None] * n
    return scores[0], [SourceShare(bool(mask[s]), weights[s], scores[2 + 2 * s] if bool(mask[s]) else None,
                                   scores[0] - scores[1 + 2 * s]) for s in range(n)]


def register_fusion(cls: type[Fusion]) -> type[Fusion]:
    _FUSIONS[cls.name] = cls
    return cls


def make_fusion(name: str, n_sources: int, dim: int, **kwargs) -> Fusion:
    from fusionrec.fusion import attention, concat, gate  # noqa: F401  (each registers itself)

    try:
        cls = _FUSIONS[name]
    except KeyError:
        raise KeyError(f"unknown fusion {name!r}; available: {', '.join(sorted(_FUSIONS))}") from None
    return cls(n_sources, dim, **kwargs)


def fusion_names() -> list[str]:
    from fusionrec.fusion import attention, concat, gate  # noqa: F401

    return sorted(_FUSIONS)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` where masked-out entries get weight 0; a row with nothing present gets all zeros.
    ``mask`` broadcasts against ``logits``. An additive -1e9 (finite: no NaN to clean up in either pass) pushes
    absent entries to an exact 0 and the final product zeroes rows with nothing present."""
    keep = mask.to(logits.dtype)
    return torch.softmax(logits + (keep - 1.0) * 1e9, dim=dim) * keep
