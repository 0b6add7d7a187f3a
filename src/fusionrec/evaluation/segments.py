"""Evaluation segments: subsets of items (or users) whose targets are evaluated on their own.

An item segment is a bool mask over items: the targets are restricted to those items and only users with at least
one target left are evaluated (the ranking itself is unchanged: still over the whole catalogue). A user segment is a
bool mask over users: only those users (with targets) are evaluated.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.data.splits import Split
from fusionrec.errors import DataError


def check_mask(mask: np.ndarray, size: int, name: str, kind: str) -> np.ndarray:
    """A segment mask as a bool array of ``size``; raises DataError naming the segment otherwise."""
    m = np.asarray(mask)
    if m.dtype != np.bool_ or m.shape != (size,):
        raise DataError(f"segment {name!r} must be a bool mask over the {size} {kind}, got {m.dtype} {m.shape}",
                        field=name)
    return m


def restrict_targets(target: sp.csr_matrix, item_mask: np.ndarray | None = None,
                     user_mask: np.ndarray | None = None) -> sp.csr_matrix:
    """The target matrix with only the entries whose item (and user) is in the masks; same shape, binary CSR.
    target: (n_users, n_items); item_mask: bool (n_items,); user_mask: bool (n_users,)."""
    out = target.tocsr(copy=True)
    if item_mask is not None:
        out = (out @ sp.diags(item_mask.astype(np.float32))).tocsr()
    if user_mask is not None:
        out = (sp.diags(user_mask.astype(np.float32)) @ out).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def segments_from_split(split: Split) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The (item segments, user segments) a cold-start split defines: ``{"cold_items": mask}`` and
    ``{"cold_users": mask}`` respectively; empty dicts for other splits."""
    items = {"cold_items": split.cold_items} if split.cold_items is not None else {}
    users = {"cold_users": split.cold_users} if split.cold_users is not None else {}
    return items, users


def popularity_segments(item_pop: np.ndarray, head_share: float = 0.2) -> dict[str, np.ndarray]:
    """``{"head_items": mask, "tail_items": mask}``: the ceil(head_share * n_items) most popular items (ties by
    index) and the rest. item_pop: (n_items,) training popularity."""
    if not 0.0 < head_share < 1.0:
        raise DataError(f"head_share must lie strictly between 0 and 1, not {head_share!r}", field="head_share")
    pop = np.asarray(item_pop)
    n_head = int(np.ceil(head_share * len(pop)))
    order = np.lexsort((np.arange(len(pop)), -pop.astype(np.float64)))
    head = np.zeros(len(pop), dtype=bool)
    head[order[:n_head]] = True
    return {"head_items": head, "tail_items": ~head}
