"""FusionRec's knowledge-facing capabilities: triples edited while serving take effect at once
(:class:`KnowledgeEditable`), and what each source adds to an item's score (:class:`SourceReporter`, for
explanations)."""

from __future__ import annotations

import torch

from fusionrec.fusion.base import source_shares
from fusionrec.knowledge.kg.item_entities import item_entity_matrix
from fusionrec.models.capabilities import KnowledgeEditable, SourceReporter
from fusionrec.models.graph_ops import buffers_from_scipy


class FusionRecKnowledge(SourceReporter, KnowledgeEditable):
    """Mixed into :class:`~fusionrec.models.fusionrec.FusionRec`, whose sources, item-entity matrix and fusion it
    reads."""

    def set_triples(self, triples: torch.Tensor) -> None:
        """Rebuilds the KG source's item-entity matrix from ``triples`` (T, 3) (head, relation, tail) over the
        model's entity indices, e.g. after triples were added or removed while serving, and drops cached vectors.
        Triples that name an entity index >= ``n_entities`` (new to the model: no trained embedding) are skipped,
        so such entities contribute nothing; relations are not used (the neighbour mean ignores them). Item links
        stay as trained. A model without a KG source is unchanged."""
        if "kg" not in self.sources:
            return
        t = torch.as_tensor(triples, dtype=torch.long).reshape(-1, 3)
        known = (t[:, [0, 2]] >= 0).all(1) & (t[:, [0, 2]] < self.n_entities).all(1)
        self.kg_indices, self.kg_values = buffers_from_scipy(
            item_entity_matrix(t[known], self.item_entity.numpy(), self.n_entities, self.params.kg_neighbours))
        self._cache.clear()

    def source_breakdown(self, item: int, user_vector: torch.Tensor) -> dict:
        """What each source adds to one item's score for a user vector ``u`` (d,), on the item's layer-0 fused
        vector (before propagation over the user-item graph). For each source s: ``present`` (the item has it),
        ``weight`` (the fusion's weight, attention or gate; None for concat), ``alone`` = u . fuse(s only) and
        ``drop`` = u . fuse(all) - u . fuse(all but s): how much the score falls without s. Also ``full`` =
        u . fuse(all)."""
        with torch.no_grad():
            vecs, mask = self.source_vectors()
            full, shares = source_shares(self.fusion, vecs[item], mask[item], user_vector)
        return {"full": full, "sources": [{"source": name, "present": share.present, "weight": share.weight,
                                           "alone": share.alone, "drop": share.drop}
                                          for name, share in zip(self.sources, shares)]}
