"""The collaborative knowledge graph (CKG) of KGAT: knowledge-graph triples plus user <-> item interaction edges.

Node numbering (``n_nodes = n_entities + n_unlinked + n_users``)::

    0 .. n_entities-1                     the KG's entities (a linked item IS its entity's node)
    n_entities .. user_offset-1           one fresh node per item without a KG link, in item order
    user_offset .. n_nodes-1              users, user u at node user_offset + u

Relation numbering: 0 = ``interact`` (used for both user -> item and item -> user edges), KG relation k is k + 1.
Inverse KG relations are not added here: pass a graph that already has them (``build_item_graph`` adds them by
default) so that information flows both ways along KG edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.errors import DataError

INTERACT = "interact"


@dataclass(frozen=True, eq=False)
class CKG:
    """Edges as three LongTensors of shape (E,): ``heads``, ``relations``, ``tails`` (node and relation numbers as in
    the module docstring). ``item_node``: LongTensor (n_items,), the node of each item. ``relation_names``: one name
    per relation number (``interact`` first)."""

    heads: torch.Tensor
    relations: torch.Tensor
    tails: torch.Tensor
    item_node: torch.Tensor
    n_entities: int
    user_offset: int
    n_users: int
    relation_names: list[str]

    @property
    def n_nodes(self) -> int:
        return self.user_offset + self.n_users

    @property
    def n_relations(self) -> int:
        return len(self.relation_names)

    @property
    def n_edges(self) -> int:
        return len(self.heads)

    @property
    def n_items(self) -> int:
        return len(self.item_node)

    def user_node(self, users: torch.Tensor) -> torch.Tensor:
        """Node numbers of user indices (any shape)."""
        return users + self.user_offset

    def triples(self) -> torch.Tensor:
        """All edges as (E, 3) (head, relation, tail), e.g. to train TransR on the whole CKG as KGAT does."""
        return torch.stack([self.heads, self.relations, self.tails], dim=1)


def collaborative_graph(train_csr: sp.spmatrix, kg: KnowledgeGraph | None,
                        item_entity: torch.Tensor | None = None) -> CKG:
    """The CKG of the training matrix ``train_csr`` (n_users, n_items) (any nonzero is one interaction; repeats
    count once) and the knowledge graph ``kg`` (None: interactions only).

    ``item_entity``: LongTensor (n_items,), each item's entity or -1 (default ``kg.item_entity``, grown with -1 when
    it covers fewer items than the matrix). Edges come KG triples first, then user -> item, then item -> user."""
    train = sp.csr_matrix(train_csr)
    n_users, n_items = train.shape
    n_entities = kg.n_entities if kg is not None else 0
    if item_entity is None:
        item_entity = kg.item_entity if kg is not None else torch.full((n_items,), -1, dtype=torch.long)
        if len(item_entity) < n_items:
            item_entity = torch.cat([item_entity, torch.full((n_items - len(item_entity),), -1, dtype=torch.long)])
    link = np.asarray(item_entity, dtype=np.int64)
    if link.shape != (n_items,):
        raise DataError(f"item_entity must have shape ({n_items},) to match the training matrix, got {link.shape}",
                        field="item_entity")
    if len(link) and (link.max() >= n_entities or link.min() < -1):
        bad = int(np.flatnonzero((link >= n_entities) | (link < -1))[0])
        raise DataError(f"item {bad} links to entity {int(link[bad])}, outside 0..{n_entities - 1}",
                        field="item_entity")

    unlinked = link < 0
    item_node = link.copy()
    item_node[unlinked] = n_entities + np.arange(int(unlinked.sum()), dtype=np.int64)
    user_offset = n_entities + int(unlinked.sum())

    coo = train.tocoo()
    coo.sum_duplicates()
    users = coo.row.astype(np.int64)[coo.data != 0] + user_offset
    items = item_node[coo.col.astype(np.int64)[coo.data != 0]]
    if kg is not None:
        kg_h, kg_r, kg_t = (kg.triples[:, i].numpy() for i in range(3))
        kg_r = kg_r + 1
        names = [INTERACT, *kg.relations.to_list()]
    else:
        kg_h = kg_r = kg_t = np.zeros(0, dtype=np.int64)
        names = [INTERACT]
    zeros = np.zeros(len(users), dtype=np.int64)
    heads = np.concatenate([kg_h, users, items])
    relations = np.concatenate([kg_r, zeros, zeros])
    tails = np.concatenate([kg_t, items, users])
    as_long = (lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)))
    return CKG(as_long(heads), as_long(relations), as_long(tails), as_long(item_node), n_entities, user_offset,
               n_users, names)
