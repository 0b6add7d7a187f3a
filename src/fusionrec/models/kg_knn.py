"""Knowledge-graph-only nearest neighbours: items are similar when their linked entities share graph neighbours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.errors import DataError
from fusionrec.models.base import HyperParameters, ModelInputs
from fusionrec.models.content_knn import SimilarityBlock, SimilarityKNN
from fusionrec.models.registry import register
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
    (see :class:`~fusionrec.models.content_knn.SimilarityKNN`)."""

    name = "kg-knn"
    Params = KGKNNParams

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


def item_entity_vectors(kg: KnowledgeGraph, n_items: int, hops: int, weighting: str) -> sp.csr_matrix:
    """(n_items, n_entities) rows m_i of :class:`KGKNN`, L2-normalised (an unlinked item's row is empty)."""
    link = kg.item_entity.numpy().astype(np.int64)
    if len(link) < n_items:
        link = np.concatenate([link, np.full(n_items - len(link), -1, dtype=np.int64)])
    elif len(link) > n_items:
        raise DataError(f"the knowledge graph links {len(link)} items but the model has {n_items}", field="kg")
    n_ent = kg.n_entities
    triples = kg.triples.numpy()
    loops = np.arange(n_ent)
    heads = np.concatenate([triples[:, 0], triples[:, 2], loops])
    tails = np.concatenate([triples[:, 2], triples[:, 0], loops])
    reach = sp.csr_matrix((np.ones(len(heads), dtype=np.float32), (heads, tails)), shape=(n_ent, n_ent))
    if hops == 2:
        reach = sp.csr_matrix(reach @ reach)
    linked = np.flatnonzero(link >= 0)
    items = sp.csr_matrix((np.ones(len(linked), dtype=np.float32), (linked, link[linked])), shape=(n_items, n_ent))
    m = sp.csr_matrix(items @ reach)
    m.data[:] = 1.0  # a set: repeated paths count once
    if weighting == "tfidf" and m.nnz:
        df = np.bincount(m.indices, minlength=n_ent).astype(np.float64)
        idf = np.log1p(len(linked) / np.maximum(df, 1.0))
        m.data = idf[m.indices].astype(np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1), dtype=np.float64).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ m, dtype=np.float32)
