"""EASE: a closed-form item-item regression (Steck 2019), optionally with item text and knowledge-graph similarity
as side information in the same closed form (the "collective" variant of Jeunen et al. 2020).

With X the binary (n_users, n_items) training matrix, EASE finds the item-item weights B minimising
``|X - X B|^2 + l2 |B|^2`` subject to ``diag(B) = 0``. With P = (G + l2 I)^-1 the solution is
``B[i, j] = -P[i, j] / P[j, j]`` (and B[j, j] = 0), where G = X^T X is the item co-occurrence Gram matrix.

Side information enters G. The item text embeddings (centred, then L2-normalised: rows t_i) and the items' KG
entity-neighbourhood vectors (as :class:`~fusionrec.models.kg_knn.KGKNN` builds them: rows m_i) are appended to X as
pseudo-users weighted by ``sqrt(text_weight)`` and ``sqrt(kg_weight)``, which adds to the Gram matrix::

    G = X^T X + text_weight * T T^T + kg_weight * M M^T

so items whose text or entities agree are pulled towards sharing weights, while the fit is still only to the real
users' rows. score(u, j) = sum_i X[u, i] B[i, j].

Cost: the dense (n_items, n_items) Gram matrix and its inverse, O(n_items^3) time. The Gram matrix is built in row
blocks and inverted in place (LAPACK getrf + getri on the float64 array itself), so preparing holds one float64
n_items² array plus the float32 result: about :data:`BYTES_PER_ITEM2` = 12 bytes per item² (before: 32, with
numpy.linalg.inv's two hidden n² copies; issue 11 measured 10.3 GB peak RSS at 17,632 items, 33 bytes per item²).
Before fitting, :meth:`EASE.prepare` reports the item count, that memory and a time estimate from the cubic model
:data:`SECONDS_PER_ITEM3` x n_items³; the constructor refuses catalogues whose memory is above
``max_memory_gb`` (and, when set, above ``max_items``) with a ConfigError that names the cap and points to
``sparse-ease``, the neighbourhood-restricted variant that scales to 100,000 items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.knowledge.kg.item_entities import item_entity_vectors
from fusionrec.models.base import HistoryReader, HyperParameters, Model, ModelInputs, checked_history
from fusionrec.models.graph_ops import check_users, data_sized_buffers, history_buffers, history_columns
from fusionrec.models.ease_shared import (BYTES_PER_ITEM2, SECONDS_PER_ITEM3, collective_weights, duration_text,
                                          ease_cost, refuse_dense_fit, text_rows)
from fusionrec.models.registry import register
from fusionrec.typed_config import AtLeast1, NonNegativeFloat, PositiveFloat
from fusionrec.util.sparse_ops import binary_csr



@dataclass(frozen=True)
class EASEParams(HyperParameters):
    l2: PositiveFloat = 400.0  # > 0, added to the Gram diagonal; larger shrinks B towards plain co-occurrence
    # >= 0, weight of the item text cosine-similarity Gram (needs item text); 0: off
    text_weight: NonNegativeFloat = 0.0
    # >= 0, weight of the KG neighbourhood cosine-similarity Gram (needs a KG); 0: off
    kg_weight: NonNegativeFloat = 0.0
    # > 0, refuse catalogues whose prepare needs more (12 * n_items^2 bytes: 25,800 items)
    max_memory_gb: PositiveFloat = 8.0
    # >= 1, an extra cap on the item count; None: the memory cap alone decides
    max_items: Annotated[int | None, AtLeast1] = None


@register
class EASE(Model, HistoryReader):
    """Buffers (data-sized, restored by ``load_state_dict``): ``weights`` (n_items, n_items) B;
    ``hist_indptr`` (n_users + 1,) and ``hist_items`` (n_train,): each user's training items, CSR-style."""

    name = "ease"
    Params = EASEParams
    trainable = False

    @classmethod
    def required_inputs(cls, params: EASEParams) -> set[str]:
        return ({"text"} if params.text_weight > 0 else set()) | ({"kg"} if params.kg_weight > 0 else set())

    def __init__(self, n_users: int, n_items: int, params: EASEParams | None = None):
        super().__init__(n_users, n_items, params)
        p = self.params
        refuse_dense_fit(self.n_items, p.max_memory_gb, "ease", "model.params.max_memory_gb",
                         "use model.name: sparse-ease (each item regressed on its top-k co-occurring items, memory "
                         "n_items x k)")
        if p.max_items is not None and self.n_items > p.max_items:
            raise ConfigError(f"ease on {self.n_items:,} items is above the cap model.params.max_items = "
                              f"{p.max_items:,}; raise it, or use model.name: sparse-ease",
                              key="model.params.max_items")
        self.register_buffer("weights", torch.zeros(0, 0))
        self.register_buffer("hist_indptr", torch.zeros(0, dtype=torch.long))  # empty until prepared
        self.register_buffer("hist_items", torch.zeros(0, dtype=torch.long))
        data_sized_buffers(self, ("weights", "hist_indptr", "hist_items"))

    @property
    def mixed_sources_in(self) -> str | None:
        """Text or KG side information folded into B leaves no per-source split of a score (see Model)."""
        return "one item-item weight matrix" if self.params.text_weight > 0 or self.params.kg_weight > 0 else None

    def prepare(self, inputs: ModelInputs) -> None:
        need, seconds = ease_cost(self.n_items)
        inputs.report(f"ease: {self.n_items:,} items: a dense {self.n_items:,} x {self.n_items:,} inverse, about "
                      f"{need / 1e9:.2f} GB while preparing ({BYTES_PER_ITEM2} bytes x n_items², cap "
                      f"max_memory_gb {self.params.max_memory_gb:g}) and about {duration_text(seconds)} on one core "
                      f"({SECONDS_PER_ITEM3:.3g} s x n_items³)")
        x = binary_csr(inputs.train, dtype=np.float64)
        if self.params.kg_weight > 0 and inputs.kg is None:
            raise DataError("ease with kg_weight > 0 needs a knowledge graph: the dataset has none under the "
                            "knowledge: settings", field="kg")
        t = text_rows(inputs, self.n_items) if self.params.text_weight > 0 else None
        m = item_entity_vectors(inputs.kg, self.n_items, 1, "tfidf").astype(np.float64) \
            if self.params.kg_weight > 0 else None
        self.weights = torch.from_numpy(collective_weights(x, self.params.l2, t, self.params.text_weight, m,
                                                           self.params.kg_weight))
        self.hist_indptr, self.hist_items = history_buffers(x)
        self._cache.clear()

    def use_history(self, history: sp.csr_matrix) -> None:
        """Score X' @ B with the users' rows of ``history`` (n_users, n_items) as X'; B stays as fitted."""
        self.hist_indptr, self.hist_items = history_buffers(checked_history(history, self.n_users, self.n_items))
        self._cache.clear()

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items) = X[users] @ B."""
        check_users(users, self.n_users)
        if self.hist_indptr.numel() == 0:
            raise FusionrecError("ease has no weights yet: call prepare(inputs) or load a saved state dict")
        return history_columns(self.hist_indptr, self.hist_items, users, self.n_items).T @ self.weights

    def score_histories(self, histories: sp.csr_matrix, chunk_users: int = 512) -> torch.Tensor:
        """EASE's own fold-in: a history h (weights over items) scores ``h @ B``, exactly as a trained user does."""
        h = sp.csr_matrix(histories, dtype=np.float32)
        if h.shape[1] != self.n_items:
            raise ValueError(f"histories have {h.shape[1]} item columns, the model has {self.n_items}")
        return torch.from_numpy(h.toarray()) @ self.weights
