"""What EASE and sparse-EASE share: the item text rows they add to the Gram matrix, and the duration wording of
their cost estimates. Registers no model."""

from __future__ import annotations

import numpy as np

from fusionrec.errors import DataError
from fusionrec.models.base import ModelInputs


def duration_text(seconds: float) -> str:
    """A duration for a log line: seconds, minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
