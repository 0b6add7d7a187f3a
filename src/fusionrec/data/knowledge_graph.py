"""A knowledge graph: integer triples with entity and relation id maps, plus the item -> entity links."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fusionrec.data.ids import IdMap

INVERSE_SUFFIX = "~inverse"


@dataclass(frozen=True, eq=False)
class KnowledgeGraph:
    """``triples``: LongTensor of shape (n, 3) holding (head, relation, tail) indices into ``entities`` and
    ``relations``. ``item_entity``: LongTensor of shape (n_items,), the entity index linked to each item or -1 for an
    item without a link (partial coverage is normal)."""

    triples: torch.Tensor
    entities: IdMap
    relations: IdMap
    item_entity: torch.Tensor

    def __post_init__(self) -> None:
        t = self.triples
        if t.dtype != torch.long or t.dim() != 2 or t.shape[1] != 3:
            raise ValueError("triples must be a LongTensor of shape (n, 3)")
        if len(t) and (int(t[:, [0, 2]].min()) < 0 or int(t[:, [0, 2]].max()) >= len(self.entities)):
            raise ValueError("triple entity index out of range")
        if len(t) and (int(t[:, 1].min()) < 0 or int(t[:, 1].max()) >= len(self.relations)):
            raise ValueError("triple relation index out of range")
        if self.item_entity.dtype != torch.long or self.item_entity.dim() != 1:
            raise ValueError("item_entity must be a 1-d LongTensor")

    @property
    def n_entities(self) -> int:
        return len(self.entities)

    @property
    def n_relations(self) -> int:
        return len(self.relations)

    @property
    def n_items(self) -> int:
        return len(self.item_entity)

    @property
    def n_linked_items(self) -> int:
        return int((self.item_entity >= 0).sum())

    def with_inverse_relations(self) -> "KnowledgeGraph":
        """Adds, for every relation r, a relation ``r~inverse`` and the reversed triple (t, r~inverse, h)."""
        if any(r.endswith(INVERSE_SUFFIX) for r in self.relations):
            return self
        n_rel = len(self.relations)
        relations = self.relations.extended(r + INVERSE_SUFFIX for r in self.relations.to_list())
        inv = torch.stack([self.triples[:, 2], self.triples[:, 1] + n_rel, self.triples[:, 0]], dim=1)
        return KnowledgeGraph(torch.cat([self.triples, inv]), self.entities, relations, self.item_entity)

    def resized(self, n_items: int) -> "KnowledgeGraph":
        """The same graph for a catalogue grown to ``n_items`` (new items unlinked)."""
        extra = n_items - self.n_items
        if extra < 0:
            raise ValueError("cannot shrink the catalogue")
        pad = torch.full((extra,), -1, dtype=torch.long)
        return KnowledgeGraph(self.triples, self.entities, self.relations, torch.cat([self.item_entity, pad]))

    def fingerprint(self) -> bytes:
        return b"|".join([self.triples.numpy().astype("<i8").tobytes(), self.item_entity.numpy().astype("<i8").tobytes(),
                          "\x1f".join(self.entities.to_list()).encode(), "\x1f".join(self.relations.to_list()).encode()])

    @staticmethod
    def from_raw(triples: list[tuple[str, str, str]] | np.ndarray, links: dict[str, str], items: IdMap,
                 entities: IdMap | None = None, relations: IdMap | None = None) -> "KnowledgeGraph":
        """Builds the graph from raw-id triples and raw item -> raw entity links. Linked entities that appear in no
        triple are still added to the entity map; links to items not in ``items`` must be filtered by the caller."""
        entities = entities if entities is not None else IdMap("entity")
        relations = relations if relations is not None else IdMap("relation")
        arr = np.asarray(triples, dtype=object).reshape(-1, 3)
        entities = entities.extended(_interleave(arr[:, 0], arr[:, 2]))
        relations = relations.extended(arr[:, 1])
        entities = entities.extended(links.values())
        if len(arr):
            idx = np.stack([entities.indices(arr[:, 0]), relations.indices(arr[:, 1]), entities.indices(arr[:, 2])], 1)
        else:
            idx = np.zeros((0, 3), dtype=np.int64)
        item_entity = np.full(len(items), -1, dtype=np.int64)
        for item_raw, ent_raw in links.items():
            item_entity[items.index(item_raw)] = entities.index(ent_raw)
        return KnowledgeGraph(torch.from_numpy(idx.astype(np.int64)), entities, relations, torch.from_numpy(item_entity))


def _interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(len(a) * 2, dtype=object)
    out[0::2], out[1::2] = a, b
    return out
