"""Ranking, beyond-accuracy and rating metrics, vectorised over users.

The top-k metrics take ``hits``: bool (n_users, max_k), ``hits[u, j]`` True when the item ranked at position j
(0-based) for user u is one of u's test positives, and ``n_pos``: int (n_users,), the number of u's test positives
(>= 1). Each returns float64 (n_users, max_k) whose column ``k - 1`` is the metric at cut-off k, per user; the
reported value is the mean over users. Definitions are those of RecBole 1.2.1 (``recbole/evaluator/metrics.py``);
``docs/evaluation.md`` writes each formula out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fusionrec.errors import DataError


def _check(hits: np.ndarray, n_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits)
    n_pos = np.asarray(n_pos)
    if hits.ndim != 2 or hits.dtype != np.bool_:
        raise DataError(f"hits must be a 2-D bool array (n_users, max_k), got {hits.dtype} {hits.shape}", field="hits")
    if n_pos.shape != (hits.shape[0],):
        raise DataError(f"n_pos must have shape ({hits.shape[0]},), got {n_pos.shape}", field="n_pos")
    if len(n_pos) and n_pos.min() < 1:
        raise DataError("every evaluated user needs at least one test positive (n_pos >= 1)", field="n_pos")
    return hits, n_pos.astype(np.int64)


def _positions(max_k: int) -> np.ndarray:
    """1, 2, ..., max_k as float64 (max_k,)."""
    return np.arange(1, max_k + 1, dtype=np.float64)


def hit_at_k(hits: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """1 when any of the top k is a positive, else 0."""
    hits, _ = _check(hits, n_pos)
    return np.logical_or.accumulate(hits, axis=1).astype(np.float64)


def recall_at_k(hits: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """(positives in the top k) / n_pos."""
    hits, n_pos = _check(hits, n_pos)
    return np.cumsum(hits, axis=1) / n_pos[:, None]


def precision_at_k(hits: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """(positives in the top k) / k."""
    hits, _ = _check(hits, n_pos)
    return np.cumsum(hits, axis=1) / _positions(hits.shape[1])


def mrr_at_k(hits: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """1 / (rank of the first positive) when it lies in the top k, else 0."""
    hits, _ = _check(hits, n_pos)
    first = hits.argmax(axis=1)  # 0 also when there is no hit; `found` tells them apart
    found = hits[np.arange(len(hits)), first]
    reached = np.arange(hits.shape[1])[None, :] >= first[:, None]
    return np.where(reached & found[:, None], 1.0 / (first[:, None] + 1.0), 0.0)


def ndcg_at_k(hits: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """DCG@k / IDCG@k with binary gains: DCG@k = sum over hit positions i <= k of 1 / log2(i + 1), and the ideal
    IDCG@k = sum_{i=1}^{min(n_pos, k)} 1 / log2(i + 1)."""
    hits, n_pos = _check(hits, n_pos)
    max_k = hits.shape[1]
    discount = 1.0 / np.log2(_positions(max_k) + 1.0)
    dcg = np.cumsum(np.where(hits, discount, 0.0), axis=1)
    ideal = np.cumsum(discount)
    ideal_len = np.minimum(np.arange(max_k)[None, :], n_pos[:, None] - 1)  # index of min(k, n_pos) - 1
    return dcg / ideal[ideal_len]


def map_at_k(hits: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """Average precision: (sum over hit positions i <= k of precision@i) / min(n_pos, k)."""
    hits, n_pos = _check(hits, n_pos)
    pos = _positions(hits.shape[1])
    precision = np.cumsum(hits, axis=1) / pos
    summed = np.cumsum(np.where(hits, precision, 0.0), axis=1)
    return summed / np.minimum(pos[None, :], n_pos[:, None])


TOPK_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "ndcg": ndcg_at_k,
    "hit": hit_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}
"""The accuracy metrics by the lower-case name used in result keys (``ndcg@10``)."""

LIST_METRICS = ("itemcoverage", "novelty")
"""Metrics of the recommended lists themselves (not of the hits)."""


# -- beyond accuracy ---------------------------------------------------------------------------------------------------
def recommended_mask(top_items: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """Which catalogue items appear in any row's first k. top_items: int (n_users, >= k), -1 for an empty slot
    -> bool (n_items,)."""
    top = np.asarray(top_items)[:, :k].ravel()
    mask = np.zeros(n_items, dtype=bool)
    mask[top[top >= 0]] = True
    return mask


def item_coverage(top_items: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top k."""
    return float(recommended_mask(top_items, n_items, k).sum() / n_items) if n_items else 0.0


def self_information(item_pop: np.ndarray, n_users: int) -> np.ndarray:
    """-log2(pop_i / n_users) per item, with pop_i (the number of training users of item i) clipped to >= 1 so that
    items nobody trained on stay finite. item_pop: (n_items,) -> float64 (n_items,)."""
    pop = np.maximum(np.asarray(item_pop, dtype=np.float64), 1.0)
    return -np.log2(pop / float(n_users))


def novelty_per_user(top_items: np.ndarray, info: np.ndarray, k: int) -> np.ndarray:
    """Mean self-information (see :func:`self_information`) of each user's first k recommended items, skipping
    empty (-1) slots. top_items: int (n_users, >= k), info: (n_items,) -> float64 (n_users,) (0 for an empty list)."""
    top = np.asarray(top_items)[:, :k]
    filled = top >= 0
    values = np.where(filled, info[np.where(filled, top, 0)], 0.0)
    return values.sum(axis=1) / np.maximum(filled.sum(axis=1), 1)


# -- explicit ratings --------------------------------------------------------------------------------------------------
def _check_ratings(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 1:
        raise DataError(f"predicted and true ratings must be 1-D of the same length, got {pred.shape} and "
                        f"{true.shape}", field="ratings")
    if len(pred) == 0:
        raise DataError("no ratings to evaluate", field="ratings")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise DataError("ratings must be finite (found NaN or inf)", field="ratings")
    return pred, true


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """sqrt(mean((pred - true)^2)) over rating rows; pred, true: (n,)."""
    pred, true = _check_ratings(pred, true)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """mean(|pred - true|) over rating rows; pred, true: (n,)."""
    pred, true = _check_ratings(pred, true)
    return float(np.mean(np.abs(pred - true)))
