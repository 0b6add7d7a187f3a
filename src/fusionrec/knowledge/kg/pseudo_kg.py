"""A pseudo knowledge graph from categorical item columns: ``item:<id> -has_<field>-> <field>:<value>``."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from fusionrec.data.ids import IdMap
from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.data.side_info import ItemSideInfo
from fusionrec.errors import DataError
from fusionrec.knowledge.kg.keys import unique_triples

ITEM_PREFIX = "item:"
RELATION_PREFIX = "has_"


def item_entity_name(raw_item: str) -> str:
    return ITEM_PREFIX + raw_item


def value_entity_name(field: str, value: str) -> str:
    return f"{field}:{value}"


def attribute_triples(item_info: ItemSideInfo, items: IdMap, fields: list[str]) -> KnowledgeGraph:
    """Turns the categorical item ``fields`` (genre, brand, tag, ...) into a knowledge graph.

    Every item with at least one value in ``fields`` gets an entity ``item:<raw item id>`` (linked in ``item_entity``);
    each value becomes an entity ``<field>:<value>`` and each field a relation ``has_<field>``. Entities are numbered
    item entities first (in item order), then values in first-seen order field by field; triples come field by field,
    item by item, in token order, each once (a token repeated within one item gives one triple; empty tokens are
    skipped). Items without any value stay unlinked (-1).

    Raises :class:`DataError` (field ``knowledge.attributes``) naming the available categorical fields when a field
    is not one of them, and when ``item_info`` is not aligned to ``items``."""
    if item_info.n_items != len(items):
        raise DataError(f"item side information covers {item_info.n_items} items but the item map holds {len(items)}",
                        field="knowledge.attributes")
    available = list(item_info.categorical)
    for name in fields:
        if name not in item_info.categorical:
            kind = ("a text field" if name in item_info.text else "a numeric field" if name in item_info.numeric
                    else "not an item field")
            raise DataError(f"'{name}' is {kind}; categorical item fields are: {', '.join(available) or '(none)'}",
                            field="knowledge.attributes")
    fields = list(dict.fromkeys(fields))  # a field named twice adds its triples once
    n_items = item_info.n_items

    per_field = []  # (item index (m,), value raw names (m,)) per field, empty tokens dropped
    for name in fields:
        column = item_info.categorical[name]
        counts = np.fromiter((len(tokens) for tokens in column), dtype=np.int64, count=n_items)
        item_idx = np.repeat(np.arange(n_items, dtype=np.int64), counts)
        tokens = np.fromiter(itertools.chain.from_iterable(column), dtype=object, count=int(counts.sum()))
        keep = tokens != ""
        per_field.append((item_idx[keep], np.asarray([value_entity_name(name, v) for v in tokens[keep]], dtype=object)))

    has_value = np.zeros(n_items, dtype=bool)
    for item_idx, _ in per_field:
        has_value[item_idx] = True
    linked = np.flatnonzero(has_value)
    entities = IdMap("entity", (item_entity_name(raw) for raw in items.raws(linked)))
    item_entity = np.full(n_items, -1, dtype=np.int64)
    item_entity[linked] = np.arange(len(linked), dtype=np.int64)  # item entities come first, in item order

    relations = IdMap("relation", (RELATION_PREFIX + name for name in fields))
    parts = []
    for rel, (item_idx, values) in enumerate(per_field):
        entities = entities.extended(values)
        tails = entities.indices(values)
        parts.append(np.stack([item_entity[item_idx], np.full(len(item_idx), rel, dtype=np.int64), tails], axis=1))
    triples = torch.from_numpy(np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64))
    triples = unique_triples(triples, len(entities), len(relations))
    return KnowledgeGraph(triples, entities, relations, torch.from_numpy(item_entity))
