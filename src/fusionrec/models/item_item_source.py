"""The collective-EASE lesson inside a trained model: an item-item regression source (EASE's closed-form weights
with the items' text similarity in the Gram matrix) scored over the user's history and mixed with the model's own
scores by a share chosen on validation, so a dataset where co-occurrence says more than the model's order or
vectors (sparse e-commerce) uses it, and one where it says nothing switches it off."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fusionrec.models.base import ModelInputs, standardise
from fusionrec.models.capabilities import ValidationTuned
from fusionrec.models.ease_shared import collective_weights, refuse_dense_fit, text_rows
from fusionrec.models.graph_ops import data_sized_buffers
from fusionrec.util.sparse_ops import binary_csr

SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # the validation grid


class ItemItemSource(nn.Module):
    """Buffers ``weights`` (n_items, n_items) B and ``share`` (): a history h scores ``h @ B``; :meth:`mix` returns
    ``(1 - share) z(model) + share z(h @ B)`` with z :func:`~fusionrec.models.base.standardise` (the model's scores as they are when
    ``share`` is 0)."""

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items
        self.register_buffer("weights", torch.zeros(0, 0))
        self.register_buffer("share", torch.zeros((), dtype=torch.float64))  # exact grid values
        data_sized_buffers(self, ("weights",))

    @classmethod
    def optional(cls, n_items: int, wanted: bool, max_memory_gb: float) -> "ItemItemSource | None":
        """The source when ``wanted`` (refused, naming ``model.params.item_item_max_memory_gb``, for a catalogue
        whose dense fit needs more than ``max_memory_gb``), else None."""
        if not wanted:
            return None
        refuse_dense_fit(n_items, max_memory_gb, "the item-item source", "model.params.item_item_max_memory_gb",
                         "set item_item: false")
        return cls(n_items)

    def fit(self, inputs: ModelInputs, l2: float, text_weight: float, model: str) -> None:
        """B from the training interactions of ``inputs`` and, with ``text_weight`` > 0, their item text rows
        (:func:`fusionrec.models.ease_shared.text_rows`, whose error names ``model``)."""
        text = text_rows(inputs, self.n_items, f"{model} with item_item_text_weight > 0") if text_weight > 0 \
            else None
        self.weights = torch.from_numpy(collective_weights(binary_csr(inputs.train, dtype=np.float64), l2, text,
                                                           text_weight))

    def mix(self, scores: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """``scores`` (B, n_items) of the model after the histories ``windows`` (B, L) (item indices, -1 empty)
        mixed with the regression's scores of the same histories."""
        if float(self.share) == 0.0:
            return scores
        bag = torch.zeros(len(windows), self.n_items)
        rows, cols = torch.nonzero(windows >= 0, as_tuple=True)
        bag[rows, windows[rows, cols]] = 1.0
        return self.mix_bag(scores, bag)

    def mix_bag(self, scores: torch.Tensor, bag: torch.Tensor) -> torch.Tensor:
        """``scores`` (B, n_items) of the model for users whose histories are the rows of ``bag`` (B, n_items) (0/1
        or weights) mixed with the regression's scores ``bag @ B``."""
        share = float(self.share)
        if share == 0.0:
            return scores
        regression = bag @ self.weights
        if share == 1.0:
            return regression
        return (1.0 - share) * standardise(scores) + share * standardise(regression)


class ItemItemShare(ValidationTuned):
    """:class:`ValidationTuned` for a model with an optional item-item source (``item_item``: an
    :class:`ItemItemSource`, or None without one): the setting chosen on validation is the source's share of the
    score, from 0 (the model as trained) to 1 (the regression alone)."""

    item_item: ItemItemSource | None

    def validation_grid(self) -> list[dict[str, float]]:
        return [{"item_item_share": share} for share in SHARES] if self.item_item is not None else []

    def choose(self, setting: dict[str, float]) -> None:
        if self.item_item is None or set(setting) != {"item_item_share"}:
            raise ValueError(f"not a setting of this model: {setting}")
        self.item_item.share.fill_(float(setting["item_item_share"]))
        self._cache.clear()

    def chosen(self) -> dict[str, float]:
        return {"item_item_share": float(self.item_item.share)} if self.item_item is not None else {}
