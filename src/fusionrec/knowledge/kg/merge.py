"""Merging two knowledge graphs over the same items, and building the graph a run uses from its knowledge config."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.data.knowledge_graph import INVERSE_SUFFIX, KnowledgeGraph
from fusionrec.errors import DataError
from fusionrec.knowledge.kg.keys import unique_triples
from fusionrec.knowledge.kg.pseudo_kg import attribute_triples

if TYPE_CHECKING:
    from fusionrec.config import KnowledgeConfig


def merge_graphs(a: KnowledgeGraph | None, b: KnowledgeGraph | None) -> KnowledgeGraph:
    """One graph holding the triples of ``a`` and ``b``, both aligned to the same item map.

    Entities and relations are matched by raw id; ``a`` keeps its indices and ``b``'s new ids are appended. Where an
    item is linked in both graphs, ``a``'s entity wins (e.g. the Freebase entity) and every triple of ``b`` that used
    ``b``'s entity for that item is re-attached to ``a``'s, so the two graphs connect through the item; ``b``'s
    replaced entity is dropped. An item linked only in ``b`` keeps (the merged index of) ``b``'s entity. Repeated
    triples are kept once (first occurrence). A graph that covers fewer items is grown with unlinked items. With one
    graph None the other is returned deduplicated.

    Merge before adding inverse relations: merging a graph that has them with one that does not raises ValueError,
    because :meth:`KnowledgeGraph.with_inverse_relations` would then leave half the graph one-directional."""
    if a is None and b is None:
        raise ValueError("merge_graphs needs at least one graph")
    if a is None or b is None:
        only = a if a is not None else b
        return KnowledgeGraph(unique_triples(only.triples, only.n_entities, only.n_relations), only.entities,
                              only.relations, only.item_entity)
    if _has_inverse(a) != _has_inverse(b) and a.n_relations and b.n_relations:
        raise ValueError("cannot merge a graph with inverse relations and one without; merge first, then add them")
    n_items = max(a.n_items, b.n_items)
    a, b = a.resized(n_items), b.resized(n_items)

    a_link, b_link = a.item_entity.numpy(), b.item_entity.numpy()
    both = np.flatnonzero((a_link >= 0) & (b_link >= 0))
    # b entity -> a entity for items linked in both; the first such item decides when b links one entity to many
    replaced_b, first = np.unique(b_link[both], return_index=True)
    replaced_to = a_link[both][first]

    keep_b = np.ones(b.n_entities, dtype=bool)
    keep_b[replaced_b] = False
    b_raw = b.entities.to_list()
    entities = a.entities.extended(raw for raw, keep in zip(b_raw, keep_b.tolist()) if keep)
    b_to_merged = np.full(b.n_entities, -1, dtype=np.int64)
    kept = np.flatnonzero(keep_b)
    b_to_merged[kept] = entities.indices(b.entities.raws(kept))
    b_to_merged[replaced_b] = replaced_to

    relations = a.relations.extended(b.relations)
    b_rel = torch.from_numpy(relations.indices(b.relations))
    ent = torch.from_numpy(b_to_merged)
    bt = b.triples
    b_triples = torch.stack([ent[bt[:, 0]], b_rel[bt[:, 1]], ent[bt[:, 2]]], dim=1)
    triples = unique_triples(torch.cat([a.triples, b_triples]), len(entities), len(relations))

    item_entity = a.item_entity.clone()
    only_b = (a.item_entity < 0) & (b.item_entity >= 0)
    item_entity[only_b] = ent[b.item_entity[only_b]]
    return KnowledgeGraph(triples, entities, relations, item_entity)


def build_item_graph(dataset: Dataset, cfg: KnowledgeConfig) -> KnowledgeGraph | None:
    """The knowledge graph a run uses: the dataset's own graph (``cfg.use_kg_file``) merged with the attribute
    pseudo-KG of ``cfg.attributes``, plus inverse relations (``cfg.inverse_relations``), covering all
    ``dataset.n_items`` items. None when neither source gives a graph."""
    base = dataset.kg if cfg.use_kg_file else None
    attributes = None
    if cfg.attributes:
        if dataset.item_info is None:
            raise DataError(f"knowledge.attributes names {list(cfg.attributes)} but dataset '{dataset.name}' has no "
                            "item side information", field="knowledge.attributes")
        attributes = attribute_triples(dataset.item_info, dataset.items, list(cfg.attributes))
    if base is None and attributes is None:
        return None
    if base is not None and base.n_items > dataset.n_items:
        raise DataError(f"the knowledge graph links {base.n_items} items but the dataset has {dataset.n_items}",
                        field="kg")
    graph = merge_graphs(base, attributes)
    if graph.n_items < dataset.n_items:
        graph = graph.resized(dataset.n_items)
    return graph.with_inverse_relations() if cfg.inverse_relations else graph


def _has_inverse(graph: KnowledgeGraph) -> bool:
    return any(r.endswith(INVERSE_SUFFIX) for r in graph.relations)

