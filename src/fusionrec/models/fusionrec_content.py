"""How FusionRec places an item it was not trained on (:class:`ContentPlacer`): the fusion of the item's text and
KG sources alone, or, with ``cold_path: neighbours``, a vector borrowed from the warm items whose text is most like
its own (:mod:`fusionrec.models.cold_borrowing`). The same borrowing scores cold catalogue items."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.knowledge.kg.item_entities import entity_weight_rows
from fusionrec.models.capabilities import ContentPlacer
from fusionrec.models.cold_borrowing import borrow, text_neighbours
from fusionrec.models.similarity import finish


class FusionRecContent(ContentPlacer):
    """Mixed into :class:`~fusionrec.models.fusionrec.FusionRec`, whose sources, fusion, text projection, entity
    table and final vectors it reads."""

    @property
    def content_sources(self) -> frozenset[str]:
        return frozenset({"text", "kg"} & set(self.sources))

    def content_vectors(self, text: torch.Tensor | None, text_mask: torch.Tensor | None,
                        entity_lists: list[list[int]] | None = None,
                        triples: torch.Tensor | None = None) -> torch.Tensor:
        """Content vectors of items the model was not trained on (no training, no id vector): the fusion of their
        text and KG sources alone, as :meth:`item_vectors` computes ``content`` for a cold catalogue item.

        ``text`` (N, text_dim) frozen text embeddings with ``text_mask`` (N,) bool (False: no text);
        ``entity_lists`` each item's linked entity indices, read as the KG source (the mean of those entities and,
        with ``kg_neighbours``, their one-hop neighbours in ``triples`` (T, 3); no entities: no KG source). Either
        may be None when absent or when the model lacks that source. Returns (N, d), as scored (unit length under
        ``cosine``); all zeros for an item with neither source. With ``cold_path: neighbours`` an item with text
        gets its borrowed vector instead (see the module docstring)."""
        entity_weights = None
        if entity_lists is not None and "kg" in self.sources:
            entity_weights = entity_weight_rows(entity_lists, self.n_entities, triples, self.params.kg_neighbours)
        n = text.shape[0] if text is not None else (len(entity_lists) if entity_lists is not None else 0)
        d = self.params.embedding_size
        vecs, masks = [torch.zeros(n, d)], [torch.zeros(n, dtype=torch.bool)]  # cf: absent for a new item
        if "text" in self.sources:
            if text is None:
                vecs.append(torch.zeros(n, d))
                masks.append(torch.zeros(n, dtype=torch.bool))
            else:
                vecs.append(self.text_proj(self.text_features(text.float())))
                masks.append(text_mask.bool())
        if "kg" in self.sources:
            if entity_weights is None:
                vecs.append(torch.zeros(n, d))
                masks.append(torch.zeros(n, dtype=torch.bool))
            else:
                w = sp.csr_matrix(entity_weights, dtype=np.float32)
                ent = self.kg_model.entity_embedding.weight.detach().numpy()
                vecs.append(torch.from_numpy(np.asarray(w @ ent, dtype=np.float32)))
                masks.append(torch.from_numpy(np.diff(w.indptr) > 0))
        sources, mask = torch.stack(vecs, dim=1), torch.stack(masks, dim=1)
        out = finish(self.fusion(sources, mask).vectors, self.params.similarity) * mask.any(1, keepdim=True)
        if self.params.cold_path == "neighbours" and text is not None and "text" in self.sources:
            index, weight = self.text_neighbours(text, text_mask)
            rows = torch.nonzero(index[:, 0] >= 0).squeeze(1)
            if len(rows):  # items with text borrow from their warm text neighbours, as cold catalogue items do
                _, items, _ = self.cached("propagated", self.final_vectors)
                out = out.index_copy(0, rows, self.borrow(items.detach(), index[rows], weight[rows]))
        return out

    def text_neighbours(self, text: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~fusionrec.models.cold_borrowing.text_neighbours` among this model's warm items with text."""
        warm = torch.nonzero((self.item_degree > 0) & self.text_mask).squeeze(1)
        return text_neighbours(text, mask, self.item_text, warm, self.params.cold_neighbours,
                               self.params.cold_temperature)

    def borrow(self, items: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """:func:`~fusionrec.models.cold_borrowing.borrow` with this model's ``cold_scale`` (or the one chosen on
        validation under ``cold_warm_tolerance``)."""
        return borrow(items, index, weight, float(self.cold_scale_now))
