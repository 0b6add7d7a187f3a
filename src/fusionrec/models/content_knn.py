"""Content-only nearest neighbours: item-item cosine similarity of the frozen text embeddings, scored as every
:class:`~fusionrec.models.similarity_knn.SimilarityKNN` is (the sum, or mean, of a user's history items'
top-k similarities to the target)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from fusionrec.errors import DataError
from fusionrec.models.base import HyperParameters, ModelInputs
from fusionrec.models.registry import register
from fusionrec.models.similarity_knn import SimilarityBlock, SimilarityKNN
from fusionrec.typed_config import PositiveInt


@dataclass(frozen=True)
class ContentKNNParams(HyperParameters):
    k: PositiveInt = 100  # neighbours kept per target item (>= 1); k >= n_items - 1 keeps every positive similarity
    aggregate: Literal["sum", "mean"] = "sum"  # over the user's history: sum favours heavy users' taste, mean does not


@register
class ContentKNN(SimilarityKNN):
    """sim(i, j) = cos(x_i, x_j) of the item text embeddings x (n_items, d_text); items without text (mask False)
    have no similarity to anything. score(u, j) = sum_i in H(u) sim_k(i, j) (see :class:`SimilarityKNN`)."""

    name = "content-knn"
    Params = ContentKNNParams
    score_source = "text"

    @classmethod
    def required_inputs(cls, params: ContentKNNParams) -> set[str]:
        return {"text"}

    def similarity(self, inputs: ModelInputs) -> SimilarityBlock:
        if inputs.item_text is None:
            raise DataError("content-knn needs item text vectors: add a text: section to the run config",
                            field="item_text")
        text = inputs.item_text.float()
        if text.dim() != 2 or text.shape[0] != self.n_items:
            raise DataError(f"item text vectors must have shape ({self.n_items}, d), got {tuple(text.shape)}",
                            field="item_text")
        if inputs.item_text_mask is not None:
            text = text * inputs.item_text_mask.to(torch.bool).unsqueeze(1)
        unit = F.normalize(text, dim=1)  # a zero row stays zero
        return lambda lo, hi: unit @ unit[lo:hi].T
