"""Knowledge-graph-only nearest neighbours: items are similar when their linked entities share graph neighbours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from fusionrec.errors import DataError
from fusionrec.knowledge.kg.item_entities import item_entity_vectors
from fusionrec.models.base import HyperParameters, ModelInputs
from fusionrec.models.registry import register
from fusionrec.models.similarity_knn import SimilarityBlock, SimilarityKNN
from fusionrec.typed_config import PositiveInt


@dataclass(frozen=True)
class KGKNNParams(HyperParameters):
    k: PositiveInt = 100  # neighbours kept per target item (>= 1); k >= n_items - 1 keeps every positive similarity
    hops: Literal[1, 2] = 1  # neighbourhood radius around the item's entity: 1 or 2 (2 reaches far more, hubs dominate)
    weighting: Literal["tfidf", "binary"] = "tfidf"  # entity weights in the cosine: idf down-weights hub entities
    aggregate: Literal["sum", "mean"] = "sum"  # over the user's history


@register
class KGKNN(SimilarityKNN):
    """N(i): the entity linked to item i plus every entity within ``hops`` edges of it (edges taken in both
    directions, relations ignored); empty for an unlinked item. Item i is the vector m_i over entities with
    m_i[e] = w_e for e in N(i), where w_e = 1 (``binary``) or log(1 + n_linked / df_e) (``tfidf``; df_e = number of
    linked items whose N contains e). sim(i, j) = cos(m_i, m_j); score(u, j) = sum_i in H(u) sim_k(i, j)
    (see :class:`~fusionrec.models.similarity_knn.SimilarityKNN`)."""

    name = "kg-knn"
    Params = KGKNNParams
    score_source = "kg"

    def __init__(self, n_users: int, n_items: int, params: KGKNNParams | None = None):
        super().__init__(n_users, n_items, params)

    @classmethod
    def required_inputs(cls, params: KGKNNParams) -> set[str]:
        return {"kg"}

    def similarity(self, inputs: ModelInputs) -> SimilarityBlock:
        if inputs.kg is None:
            raise DataError("kg-knn needs a knowledge graph: the dataset has none under the knowledge: settings",
                            field="kg")
        m = item_entity_vectors(inputs.kg, self.n_items, self.params.hops, self.params.weighting)
        return lambda lo, hi: torch.from_numpy(np.asarray((m @ m[lo:hi].T).todense(), dtype=np.float32))
