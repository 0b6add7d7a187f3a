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
from fusionrec.models.graph_ops import data_sized_buffers, optional_buffers
from fusionrec.util.sparse_ops import binary_csr

SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # the validation grid


class ItemItemSource(nn.Module):
    """Buffers ``weights`` (n_items, n_items) B, ``share`` () and ``decay`` (): a history h scores ``h @ B``;
    :meth:`mix` returns ``(1 - share) z(model) + share z(h @ B)`` with z :func:`~fusionrec.models.base.standardise`
    (the model's scores as they are when ``share`` is 0). In an ordered history, h weighs an item ``decay ** k``, k
    the places between its newest occurrence and the history's newest item."""

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items
        self.register_buffer("weights", torch.zeros(0, 0))
        self.register_buffer("share", torch.zeros((), dtype=torch.float64))  # exact grid values
        self.register_buffer("decay", torch.ones((), dtype=torch.float64))
        data_sized_buffers(self, ("weights",))
        optional_buffers(self, ("decay",))  # artifacts saved before the recency weighting: 1, a bag of items

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
        """``scores`` (B, n_items) of the model after the histories ``windows`` (B, L) (item indices, right-aligned:
        the newest last, -1 empty) mixed with the regression's scores of the same histories, each item weighed
        by how recent it is (:attr:`decay`)."""
        if float(self.share) == 0.0:
            return scores
        return self.mix_bag(scores, self.recency_bag(windows))

    def recency_bag(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, n_items): ``decay ** k`` for each item of the windows (B, L), k the places between its newest
        occurrence and the window's newest item; 0 for the items a window lacks."""
        present = windows >= 0
        age = present.flip(1).cumsum(1).flip(1) - 1  # the present items after each position
        rows, cols = torch.nonzero(present, as_tuple=True)
        weights = torch.pow(float(self.decay), age[rows, cols].double()).float()
        bag = torch.zeros(len(windows) * self.n_items)
        bag.scatter_reduce_(0, rows * self.n_items + windows[rows, cols], weights, reduce="amax")
        return bag.view(len(windows), self.n_items)

    def mix_bag(self, scores: torch.Tensor, bag: torch.Tensor) -> torch.Tensor:
        """``scores`` (B, n_items) of the model for users whose histories are the rows of ``bag`` (B, n_items) (0/1
        or weights) mixed with the regression's scores ``bag @ B``."""
        share = float(self.share)
        if share == 0.0:
            return scores
        regression = torch.sparse.mm(bag.to_sparse(), self.weights)  # a history holds few of the items
        if share == 1.0:
            return regression
        return (1.0 - share) * standardise(scores) + share * standardise(regression)


class ItemItemShare(ValidationTuned):
    """:class:`ValidationTuned` for a model with an optional item-item source (``item_item``: an
    :class:`ItemItemSource`, or None without one): the setting chosen on validation is the source's share of the
    score, from 0 (the model as trained) to 1 (the regression alone), and, for a model that declares recency decays
    (:meth:`item_item_decays`), the decay of the regression's history weights with it."""

    item_item: ItemItemSource | None

    def item_item_decays(self) -> tuple[float, ...]:
        """The recency decays the validation grid tries beside the share, the first before any choice; ``(1.0,)``
        (the default, and every model without ordered histories): a bag of items only."""
        return (1.0,)

    def validation_grid(self) -> list[dict[str, float]]:
        if self.item_item is None:
            return []
        decays = self.item_item_decays()
        if decays == (1.0,):
            return [{"item_item_share": share} for share in SHARES]
        # share 0 ignores the decay: tried once, first (the model as trained)
        return [{"item_item_share": 0.0, "item_item_decay": decays[0]}] + [
            {"item_item_share": share, "item_item_decay": decay} for decay in decays for share in SHARES if share]

    def choose(self, setting: dict[str, float]) -> None:
        keys = set(setting)
        if self.item_item is None or not {"item_item_share"} <= keys <= {"item_item_share", "item_item_decay"}:
            raise ValueError(f"not a setting of this model: {setting}")
        self.item_item.share.fill_(float(setting["item_item_share"]))
        self.item_item.decay.fill_(float(setting.get("item_item_decay", 1.0)))  # nothing cached depends on either

    def chosen(self) -> dict[str, float]:
        if self.item_item is None:
            return {}
        decay = float(self.item_item.decay)
        return {"item_item_share": float(self.item_item.share)} | (
            {"item_item_decay": decay} if decay != 1.0 or self.item_item_decays() != (1.0,) else {})
