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

Cost: the dense (n_items, n_items) Gram matrix and its inverse, O(n_items^3) time and about 20 n_items^2 bytes of
memory while preparing (two float64 matrices and the float32 result; bench/ease_prepare.py at 4,000 items: 20.1
bytes per item², 5.6 s on one thread); ``max_items`` refuses catalogues where that would not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.models.base import Model, ModelInputs
from fusionrec.models.graph_ops import (binary_csr, check_users, data_sized_buffers, history_buffers,
                                        history_columns)
from fusionrec.models.kg_knn import item_entity_vectors
from fusionrec.models.registry import register


@dataclass(frozen=True)
class EASEParams:
    l2: float = 400.0  # > 0, added to the Gram diagonal; larger shrinks B towards plain co-occurrence
    text_weight: float = 0.0  # >= 0, weight of the item text cosine-similarity Gram (needs item text); 0: off
    kg_weight: float = 0.0  # >= 0, weight of the KG neighbourhood cosine-similarity Gram (needs a KG); 0: off
    max_items: int = 20000  # refuse larger catalogues: preparing needs about 20 * n_items^2 bytes (8 GB at 20,000)


@register
class EASE(Model):
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
        if not p.l2 > 0:
            raise ConfigError(f"must be > 0, got {p.l2}", key="model.params.l2")
        for key in ("text_weight", "kg_weight"):
            if getattr(p, key) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(p, key)}", key=f"model.params.{key}")
        if self.n_items > p.max_items:
            raise ConfigError(f"ease builds a dense {self.n_items} x {self.n_items} matrix (about "
                              f"{20 * self.n_items ** 2 / 2 ** 30:.1f} GiB while preparing), above max_items "
                              f"{p.max_items}; raise max_items if the memory is there, or use itemknn or a "
                              "vector model", key="model.params.max_items")
        self.register_buffer("weights", torch.zeros(0, 0))
        self.register_buffer("hist_indptr", torch.zeros(0, dtype=torch.long))  # empty until prepared
        self.register_buffer("hist_items", torch.zeros(0, dtype=torch.long))
        data_sized_buffers(self, ("weights", "hist_indptr", "hist_items"))

    @property
    def mixed_sources_in(self) -> str | None:
        """Text or KG side information folded into B leaves no per-source split of a score (see Model)."""
        return "one item-item weight matrix" if self.params.text_weight > 0 or self.params.kg_weight > 0 else None

    def prepare(self, inputs: ModelInputs) -> None:
        x = binary_csr(inputs.train, dtype=np.float64)
        gram = np.asarray((x.T @ x).todense())
        if self.params.text_weight > 0:
            t = text_rows(inputs, self.n_items)
            gram += self.params.text_weight * (t @ t.T)
        if self.params.kg_weight > 0:
            if inputs.kg is None:
                raise DataError("ease with kg_weight > 0 needs a knowledge graph: the dataset has none under the "
                                "knowledge: settings", field="kg")
            m = item_entity_vectors(inputs.kg, self.n_items, 1, "tfidf").astype(np.float64)
            gram += self.params.kg_weight * np.asarray((m @ m.T).todense())
        self.weights = torch.from_numpy(closed_form_weights(gram, self.params.l2).astype(np.float32))
        self.hist_indptr, self.hist_items = history_buffers(x)
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


def closed_form_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B = -P / diag(P) column-wise with a zero diagonal, P = (gram + l2 I)^-1; ``gram`` (n, n) symmetric PSD,
    overwritten (its diagonal gets ``l2``) so that only two n x n float64 arrays are alive at once."""
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    del gram
    p /= -np.diag(p)[None, :].copy()
    np.fill_diagonal(p, 0.0)
    return p


def text_rows(inputs: ModelInputs, n_items: int) -> np.ndarray:
    """(n_items, d_text) item text embeddings centred over the items with text, then L2-normalised; an item without
    text (mask False) is a zero row, so it gains no side-information similarity."""
    if inputs.item_text is None:
        raise DataError("ease with text_weight > 0 needs item text vectors: add a text: section to the run config",
                        field="item_text")
    t = inputs.item_text.double().numpy().copy()
    if t.ndim != 2 or t.shape[0] != n_items:
        raise DataError(f"item text vectors must have shape ({n_items}, d), got {tuple(t.shape)}", field="item_text")
    has = np.ones(n_items, dtype=bool) if inputs.item_text_mask is None else inputs.item_text_mask.numpy().astype(bool)
    if has.any():
        t -= t[has].mean(0)
    t[~has] = 0.0
    norms = np.linalg.norm(t, axis=1, keepdims=True)
    return np.divide(t, norms, out=np.zeros_like(t), where=norms > 0)
