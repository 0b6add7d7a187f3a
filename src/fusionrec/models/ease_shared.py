"""What EASE and sparse-EASE share: the item text rows they add to the Gram matrix, and the duration wording of
their cost estimates. Registers no model."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ConfigError, DataError
from fusionrec.models.base import ModelInputs


# bytes per item² while preparing: the float64 Gram matrix inverted in place (8) and the float32 weights (4)
BYTES_PER_ITEM2 = 12
# seconds per item³ of the dense inverse on one core: bench/ease_prepare.py --items 4000 --users 3000 took 5.6 s
# (2026-12-02, 2-core AMD EPYC, one thread, numpy.linalg.inv: 8/3 n³ flops; the in-place getrf + getri does 2 n³,
# so the estimate errs long). A loaded machine is slower: issue 11's 17,632-item run took 29 min, 3.6x this.
SECONDS_PER_ITEM3 = 5.6 / 4000 ** 3


def ease_cost(n_items: int) -> tuple[int, float]:
    """(bytes, seconds) EASE's prepare is expected to take for ``n_items`` items: BYTES_PER_ITEM2 n² bytes and
    SECONDS_PER_ITEM3 n³ seconds on one core (the sparse Gram of the interactions and the process come on top)."""
    return BYTES_PER_ITEM2 * n_items ** 2, SECONDS_PER_ITEM3 * n_items ** 3


def refuse_dense_fit(n_items: int, cap_gb: float, what: str, key: str, instead: str) -> None:
    """Raises ConfigError (``key``) when EASE's dense fit over ``n_items`` items needs more than ``cap_gb`` GB
    (:func:`ease_cost`), saying what it would cost; ``what`` names the fit, ``instead`` the way out."""
    need, seconds = ease_cost(n_items)
    if need > cap_gb * 1e9:
        raise ConfigError(f"{what} on {n_items:,} items inverts a dense {n_items:,} x {n_items:,} matrix: about "
                          f"{need / 1e9:.1f} GB while preparing ({BYTES_PER_ITEM2} bytes x n_items²) and about "
                          f"{duration_text(seconds)} on one core, above the cap {key} = {cap_gb:g}; raise the cap if "
                          f"the memory is there, or {instead}", key=key)


def duration_text(seconds: float) -> str:
    """A duration for a log line: seconds, minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def text_rows(inputs: ModelInputs, n_items: int, needed_by: str = "ease with text_weight > 0") -> np.ndarray:
    """(n_items, d_text) item text embeddings centred over the items with text, then L2-normalised; an item without
    text (mask False) is a zero row, so it gains no side-information similarity. ``needed_by``: who asks, for the
    error when the inputs carry no text."""
    if inputs.item_text is None:
        raise DataError(f"{needed_by} needs item text vectors: add a text: section to the run config",
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


_BLOCK_CELLS = 1 << 24  # Gram cells built per row block (float64: 128 MB)


def collective_weights(x: sp.csr_matrix, l2: float, text: np.ndarray | None = None, text_weight: float = 0.0,
                       entities: sp.spmatrix | None = None, kg_weight: float = 0.0) -> np.ndarray:
    """EASE's item-item weights B (n_items, n_items) float32 with the side similarities in the Gram matrix
    (collective EASE): G = X^T X + text_weight T T^T + kg_weight M M^T, then :func:`closed_form_weights`.
    ``x`` (n_users, n_items) float64 binary CSR; ``text`` (n_items, d) rows from :func:`text_rows` or None;
    ``entities`` (n_items, n_entities) sparse rows or None. Built in row blocks: one n² float64 array at most."""
    n_items = x.shape[1]
    gram = np.empty((n_items, n_items))
    xt = sp.csr_matrix(x.T)
    block = max(1, _BLOCK_CELLS // max(1, n_items))
    for lo in range(0, n_items, block):  # row blocks: no second n² array
        rows = slice(lo, min(lo + block, n_items))
        gram[rows] = (xt[rows] @ x).toarray()
        if text is not None and text_weight > 0:
            gram[rows] += text_weight * (text[rows] @ text.T)
        if entities is not None and kg_weight > 0:
            gram[rows] += kg_weight * (entities[rows] @ entities.T).toarray()
    weights = closed_form_weights(gram, l2)  # gram's memory, inverted in place
    del gram
    return weights.astype(np.float32)


def closed_form_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B = -P / diag(P) column-wise with a zero diagonal, P = (gram + l2 I)^-1; ``gram`` (n, n) float64 symmetric
    PSD, C-contiguous, OVERWRITTEN: B is returned in its memory (LAPACK inverts the Fortran-ordered view
    ``gram.T``, the same matrix since it is symmetric), so no second n x n array is made."""
    from scipy.linalg import inv

    gram[np.diag_indices_from(gram)] += l2
    p = inv(gram.T, overwrite_a=True, check_finite=False).T  # (P^T)^T = P, in gram's memory
    p /= -np.diag(p)[None, :].copy()
    np.fill_diagonal(p, 0.0)
    return p
