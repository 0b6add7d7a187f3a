"""Rows that read an item's knowledge-graph vector off an entity table, or describe it as a bag of entities.

Shared by the models that read items through their linked entities (FusionRec's KG source, kg-knn and EASE's KG
similarity) and by serving, which places new items by the entities they name; kept here so that no model module
imports another and serving imports none.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.errors import DataError


def item_entity_vectors(kg: KnowledgeGraph, n_items: int, hops: int, weighting: str) -> sp.csr_matrix:
    """(n_items, n_entities) rows m_i of kg-knn's item-item similarity (and EASE's kg_weight), L2-normalised (an
    unlinked item's row is empty)."""
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


def entity_weight_rows(entity_lists: list[list[int]], n_entities: int, triples: torch.Tensor | None,
                       neighbours: bool) -> sp.csr_matrix:
    """(N, n_entities) rows for a content model (FusionRec's KG source): item r's KG source is the mean over the entities
    in ``entity_lists[r]`` and, with ``neighbours`` and ``triples`` (T, 3), their one-hop neighbours in either
    direction (each entity counted once), as :func:`item_entity_matrix` does for one linked entity."""
    rows = np.repeat(np.arange(len(entity_lists)), [len(e) for e in entity_lists])
    cols = np.fromiter((e for ents in entity_lists for e in ents), dtype=np.int64, count=len(rows))
    link = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(entity_lists), n_entities))
    if neighbours and triples is not None and len(triples):
        t = triples.numpy()
        t = t[(t[:, [0, 2]] >= 0).all(1) & (t[:, [0, 2]] < n_entities).all(1)]
        adj = sp.csr_matrix((np.ones(2 * len(t), dtype=np.float32),
                             (np.concatenate([t[:, 0], t[:, 2]]), np.concatenate([t[:, 2], t[:, 0]]))),
                            shape=(n_entities, n_entities))
        link = sp.csr_matrix(link + link @ adj)
    link.data[:] = 1.0  # an entity reached twice counts once
    deg = np.asarray(link.sum(axis=1)).ravel()
    deg[deg == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / deg) @ link, dtype=np.float32)


def item_entity_matrix(triples: torch.Tensor, item_entity: np.ndarray, n_entities: int,
                        neighbours: bool) -> sp.csr_matrix:
    """(n_items, n_entities) rows that read an item's KG vector off the entity table: the linked entity alone, or
    (``neighbours``) the mean of the entity and its one-hop neighbours in either direction. Unlinked items get an
    empty row. triples (T, 3), item_entity (n_items,) with -1 = unlinked. :func:`entity_weight_rows` with one
    entity (or none) per item."""
    return entity_weight_rows([[int(e)] if e >= 0 else [] for e in item_entity], n_entities, triples, neighbours)
