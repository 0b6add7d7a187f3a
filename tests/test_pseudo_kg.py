"""Attribute pseudo-KG, merging with a linked KG, and the graph a run builds from its knowledge config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import KnowledgeConfig
from fusionrec.data import Dataset, IdMap, Interactions, ItemSideInfo, KnowledgeGraph
from fusionrec.errors import DataError
from fusionrec.knowledge.kg import attribute_triples, build_item_graph, merge_graphs

ITEMS = IdMap("item", ["10", "20", "30", "40"])


def side_info() -> ItemSideInfo:
    return ItemSideInfo(
        4,
        text={"title": ["A", "B", "C", "D"]},
        categorical={"genre": [("Action", "Comedy", "Action"), (), ("Comedy",), ()],
                     "brand": [("acme",), ("acme",), ("",), ()]},
        numeric={"year": np.array([1990.0, 1991.0, 1992.0, 1993.0])},
    )


def raw_triples(kg: KnowledgeGraph) -> list[tuple[str, str, str]]:
    return [(kg.entities.raw(h), kg.relations.raw(r), kg.entities.raw(t)) for h, r, t in kg.triples.tolist()]


def linked_raw(kg: KnowledgeGraph) -> list[str | None]:
    return [kg.entities.raw(e) if e >= 0 else None for e in kg.item_entity.tolist()]


def freebase() -> KnowledgeGraph:
    """Items 10 and 20 linked to Freebase-like entities; 30 and 40 unlinked; one repeated triple."""
    triples = [("m.1", "directed_by", "m.dir"), ("m.2", "directed_by", "m.dir"), ("m.1", "directed_by", "m.dir")]
    return KnowledgeGraph.from_raw(triples, {"10": "m.1", "20": "m.2"}, ITEMS)


def test_attribute_triples_exact():
    kg = attribute_triples(side_info(), ITEMS, ["genre", "brand"])
    # item 40 has no value; item 30's empty brand token is skipped; item 10's repeated "Action" gives one triple
    assert kg.entities.to_list() == ["item:10", "item:20", "item:30", "genre:Action", "genre:Comedy", "brand:acme"]
    assert kg.relations.to_list() == ["has_genre", "has_brand"]
    assert kg.triples.tolist() == [[0, 0, 3], [0, 0, 4], [2, 0, 4], [0, 1, 5], [1, 1, 5]]
    assert kg.item_entity.tolist() == [0, 1, 2, -1]


def test_attribute_triples_one_field_links_only_items_with_a_value():
    kg = attribute_triples(side_info(), ITEMS, ["brand"])
    assert raw_triples(kg) == [("item:10", "has_brand", "brand:acme"), ("item:20", "has_brand", "brand:acme")]
    assert linked_raw(kg) == ["item:10", "item:20", None, None]


def test_unknown_attribute_field_lists_the_categorical_fields():
    with pytest.raises(DataError, match="categorical item fields are: genre, brand") as err:
        attribute_triples(side_info(), ITEMS, ["artist"])
    assert err.value.field == "knowledge.attributes"
    with pytest.raises(DataError, match="'title' is a text field"):
        attribute_triples(side_info(), ITEMS, ["title"])
    with pytest.raises(DataError, match="'year' is a numeric field"):
        attribute_triples(side_info(), ITEMS, ["year"])


def test_merge_keeps_freebase_links_and_reattaches_attribute_triples():
    merged = merge_graphs(freebase(), attribute_triples(side_info(), ITEMS, ["genre", "brand"]))
    assert linked_raw(merged) == ["m.1", "m.2", "item:30", None]
    assert raw_triples(merged) == [
        ("m.1", "directed_by", "m.dir"), ("m.2", "directed_by", "m.dir"),  # the repeated triple kept once
        ("m.1", "has_genre", "genre:Action"), ("m.1", "has_genre", "genre:Comedy"),
        ("item:30", "has_genre", "genre:Comedy"),
        ("m.1", "has_brand", "brand:acme"), ("m.2", "has_brand", "brand:acme"),
    ]
    # the attribute graph's stand-ins for items linked in Freebase are gone, not left as isolated nodes
    assert "item:10" not in merged.entities and "item:20" not in merged.entities
    # Freebase indices are unchanged, so vectors indexed by the first graph stay valid
    assert merged.entities.to_list()[:3] == freebase().entities.to_list()


def test_merge_matches_entities_and_relations_by_raw_id():
    a = KnowledgeGraph.from_raw([("x", "r", "y")], {"10": "x"}, ITEMS)
    b = KnowledgeGraph.from_raw([("z", "r", "y"), ("x", "s", "y")], {"30": "z"}, ITEMS)
    merged = merge_graphs(a, b)
    assert merged.entities.to_list() == ["x", "y", "z"]
    assert merged.relations.to_list() == ["r", "s"]
    assert raw_triples(merged) == [("x", "r", "y"), ("z", "r", "y"), ("x", "s", "y")]
    assert linked_raw(merged) == ["x", None, "z", None]


def test_merge_with_one_graph_deduplicates_it():
    merged = merge_graphs(freebase(), None)
    assert raw_triples(merged) == [("m.1", "directed_by", "m.dir"), ("m.2", "directed_by", "m.dir")]
    assert merge_graphs(None, freebase()).n_entities == 3
    with pytest.raises(ValueError):
        merge_graphs(None, None)


def test_merge_refuses_to_mix_inverse_and_plain_graphs():
    with pytest.raises(ValueError, match="inverse"):
        merge_graphs(freebase().with_inverse_relations(), attribute_triples(side_info(), ITEMS, ["genre"]))


def dataset(kg: KnowledgeGraph | None, info: ItemSideInfo | None) -> Dataset:
    inter = Interactions(np.array([0, 1]), np.array([0, 2]), 2, 4)
    return Dataset("tiny", IdMap("user", ["u1", "u2"]), ITEMS, inter, item_info=info, kg=kg)


def test_build_item_graph_merges_and_adds_inverse_relations():
    kg = build_item_graph(dataset(freebase(), side_info()), KnowledgeConfig(attributes=["genre"]))
    assert kg.relations.to_list() == ["directed_by", "has_genre", "directed_by~inverse", "has_genre~inverse"]
    triples = raw_triples(kg)
    assert len(triples) == 2 * 5
    assert ("genre:Comedy", "has_genre~inverse", "m.1") in triples
    assert ("genre:Comedy", "has_genre~inverse", "item:30") in triples
    assert linked_raw(kg) == ["m.1", "m.2", "item:30", None]


def test_build_item_graph_sources_follow_the_config():
    ds = dataset(freebase(), side_info())
    assert build_item_graph(ds, KnowledgeConfig(use_kg_file=False)) is None
    only_attr = build_item_graph(ds, KnowledgeConfig(use_kg_file=False, attributes=["brand"], inverse_relations=False))
    assert raw_triples(only_attr) == [("item:10", "has_brand", "brand:acme"), ("item:20", "has_brand", "brand:acme")]
    only_file = build_item_graph(ds, KnowledgeConfig(inverse_relations=False))
    assert len(only_file.triples) == 2
    with pytest.raises(DataError, match="no item side information"):
        build_item_graph(dataset(freebase(), None), KnowledgeConfig(attributes=["genre"]))


def test_build_item_graph_grows_a_graph_covering_fewer_items():
    short = KnowledgeGraph(torch.zeros((0, 3), dtype=torch.long), IdMap("entity", ["e"]), IdMap("relation"),
                           torch.tensor([0]))
    kg = build_item_graph(dataset(short, None), KnowledgeConfig())
    assert kg.item_entity.tolist() == [0, -1, -1, -1]
