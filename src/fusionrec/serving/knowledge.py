"""The knowledge graph while serving: the artifact's graph plus triples added or removed by raw id.

Raw ids of a triple resolve as follows. A head or tail is an entity id when the graph has that entity; otherwise an
item id of the catalogue stands for the item's linked entity; otherwise (adding only) it is a new entity. An item
without a link that appears in an added triple is linked to a new entity ``item:<item id>`` (the pseudo-KG's
naming), so its paths can be found from then on. A relation id the graph does not know is a new relation when
adding; removing needs known relations and entities (an unknown one raises :class:`UnknownIdError`). Relation ids
ending in ``~inverse`` are refused: the serving graph has no inverse relations (paths walk edges both ways).

Edits are made on copies and swapped in whole, so a failed request changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusionrec.data.ids import IdMap
from fusionrec.data.knowledge_graph import INVERSE_SUFFIX, KnowledgeGraph
from fusionrec.errors import DataError, UnknownIdError
from fusionrec.knowledge.kg.paths import KGPath, PathGraph, build_path_graph, find_paths

ITEM_ENTITY_PREFIX = "item:"
LINKED_TO = "linked_to"  # relation from a new item's own entity to each entity its request named


@dataclass(frozen=True)
class RawTriple:
    """One triple in raw ids, as the API takes it."""

    head: str
    relation: str
    tail: str


@dataclass(frozen=True, eq=False)
class _Resolved:
    rows: np.ndarray  # (n, 3) int64 indices
    entities: IdMap
    relations: IdMap
    item_entity: np.ndarray


class LiveGraph:
    """``LiveGraph(graph, n_items)``: a mutable copy of ``graph`` (or an empty graph when None) for ``n_items``
    items. ``n_model_entities``: how many entities the artifact's graph had (the model's entity indices, for models
    with a KG source)."""

    def __init__(self, graph: KnowledgeGraph | None, n_items: int):
        if graph is None:
            self.entities, self.relations = IdMap("entity"), IdMap("relation")
            self.triples = np.zeros((0, 3), dtype=np.int64)
            self.item_entity = np.full(n_items, -1, dtype=np.int64)
        else:
            self.entities, self.relations = graph.entities, graph.relations
            self.triples = graph.triples.numpy().astype(np.int64).copy()
            self.item_entity = graph.item_entity.numpy().astype(np.int64).copy()
        self.from_artifact = graph is not None
        self.n_model_entities = len(self.entities) if graph is not None else 0
        self._paths: PathGraph | None = None
        self._entity_item: np.ndarray | None = None

    # -- reading ------------------------------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return len(self.triples) == 0

    def entity_of_item(self, item: int) -> int:
        self._grow(item + 1)
        return int(self.item_entity[item])

    def item_of_entity(self, entity: int) -> int:
        """An item linked to this entity (the first one), or -1."""
        if self._entity_item is None or len(self._entity_item) != len(self.entities):
            out = np.full(len(self.entities), -1, dtype=np.int64)
            linked = np.flatnonzero(self.item_entity >= 0)[::-1]  # reversed: the first item wins the assignment
            out[self.item_entity[linked]] = linked
            self._entity_item = out
        return int(self._entity_item[entity]) if 0 <= entity < len(self._entity_item) else -1

    def paths(self, source_items: Sequence[int], target_item: int, max_paths: int = 3, max_hops: int = 3,
              max_degree: int | None = None) -> list[KGPath]:
        """Shortest paths from the entities of ``source_items`` (in order of preference) to ``target_item``'s."""
        target = self.entity_of_item(target_item)
        if target < 0:
            return []
        if self._paths is None:
            self._paths = build_path_graph(self.triples, len(self.entities))
        sources = [self.entity_of_item(int(i)) for i in source_items]
        return find_paths(self._paths, sources, target, max_hops=max_hops, max_paths=max_paths,
                          max_degree=max_degree)

    # -- editing ------------------------------------------------------------------------------------------------
    def add(self, triples: Sequence[RawTriple], items: IdMap) -> int:
        """Adds these triples (new entities, relations and item links allowed); returns how many were new."""
        r = self.resolve(triples, items, create=True)
        keys, new_keys = self._keys(self.triples, r), self._keys(r.rows, r)
        _, first = np.unique(new_keys, return_index=True)
        fresh = np.sort(first)[~np.isin(new_keys[np.sort(first)], keys)]
        self.entities, self.relations, self.item_entity = r.entities, r.relations, r.item_entity
        self.triples = np.concatenate([self.triples, r.rows[fresh]])
        self._changed()
        return len(fresh)

    def remove(self, triples: Sequence[RawTriple], items: IdMap, strict: bool = True) -> int:
        """Removes these triples; returns how many were present. ``strict``: unknown ids raise (else the triples
        naming them are skipped, as when replaying a store written for another model)."""
        if not strict:
            triples = [t for t in triples if self._known(t, items)]
        r = self.resolve(triples, items, create=False)
        gone = np.isin(self._keys(self.triples, r), self._keys(r.rows, r))
        self.triples = self.triples[~gone]
        self._changed()
        return int(gone.sum())

    def link_items(self, items: IdMap, links: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Links items added while serving to the entities their request named (``(item id, [entity ids])``;
        ids the graph does not know are ignored): one entity becomes the item's link; several get a new entity
        ``item:<item id>`` with a ``linked_to`` edge to each, so paths reach the item through any of them."""
        self._grow(len(items))
        for item_raw, raws in links:
            known = [self.entities.index(e) for e in dict.fromkeys(raws) if e in self.entities]
            item = items.index(item_raw)
            if len(known) == 1:
                self.item_entity[item] = known[0]
            elif known:
                self.add([RawTriple(item_raw, LINKED_TO, self.entities.raw(e)) for e in known], items)
        self._changed()

    def resolve(self, triples: Sequence[RawTriple], items: IdMap, create: bool) -> _Resolved:
        """Raw triples -> (n, 3) indices, with the maps and links they need (copies; nothing here changes)."""
        self._grow(len(items))
        entities, relations, item_entity = self.entities, self.relations, self.item_entity
        new_entities, new_relations, new_links = [], [], {}
        for row, t in enumerate(triples):
            for field in ("head", "relation", "tail"):
                value = getattr(t, field)
                if not isinstance(value, str) or not value or len(value) > 256:
                    raise DataError("must be a non-empty string of at most 256 characters", line=row + 1, field=field)
            if t.relation not in relations:
                if not create:
                    raise UnknownIdError("relation", t.relation)
                if t.relation.endswith(INVERSE_SUFFIX):
                    raise DataError(f"relation ids ending in {INVERSE_SUFFIX!r} are not accepted (paths already "
                                    "walk every edge both ways)", line=row + 1, field="relation")
                new_relations.append(t.relation)
            for raw in (t.head, t.tail):
                if raw in entities:
                    continue
                item = items.get(raw)
                if item >= 0 and (item_entity[item] >= 0 or item in new_links):
                    continue
                if not create:
                    raise UnknownIdError("entity", raw)
                if item >= 0:
                    new_links[item] = ITEM_ENTITY_PREFIX + raw
                    new_entities.append(ITEM_ENTITY_PREFIX + raw)
                else:
                    new_entities.append(raw)
        if new_entities:
            entities = entities.extended(new_entities)
        if new_relations:
            relations = relations.extended(new_relations)
        if new_links:
            item_entity = item_entity.copy()
            for item, raw in new_links.items():
                item_entity[item] = entities.index(raw)

        def entity(raw: str) -> int:
            if raw in entities:
                return entities.index(raw)
            return int(item_entity[items.index(raw)])

        rows = np.array([[entity(t.head), relations.index(t.relation), entity(t.tail)] for t in triples],
                        dtype=np.int64).reshape(-1, 3)
        return _Resolved(rows, entities, relations, item_entity)

    # -- internals ----------------------------------------------------------------------------------------------
    def _known(self, t: RawTriple, items: IdMap) -> bool:
        def ok(raw: str) -> bool:
            return raw in self.entities or (items.get(raw) >= 0 and self.entity_of_item(items.get(raw)) >= 0)

        return t.relation in self.relations and ok(t.head) and ok(t.tail)

    @staticmethod
    def _keys(rows: np.ndarray, r: _Resolved) -> np.ndarray:
        """One int64 per triple (sizes of the resolved maps, so old and new rows compare)."""
        n_e, n_r = max(len(r.entities), 1), max(len(r.relations), 1)
        return (rows[:, 0] * n_r + rows[:, 1]) * n_e + rows[:, 2]

    def _grow(self, n_items: int) -> None:
        """Items added to the catalogue while serving start unlinked."""
        if n_items > len(self.item_entity):
            self.item_entity = np.concatenate([self.item_entity,
                                               np.full(n_items - len(self.item_entity), -1, dtype=np.int64)])

    def _changed(self) -> None:
        self._paths = None
        self._entity_item = None
