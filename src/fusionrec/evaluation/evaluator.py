"""The evaluator: full ranking over the catalogue (RecBole's protocol), segments, a sampled mode and rating errors.

Users are scored in chunks of ``batch_users``; the only dense user x item block is one chunk's scores. Per-user
metric values are summed chunk by chunk and divided by the number of evaluated users (users with at least one target).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.interactions import Interactions
from fusionrec.data.splits import rank_within_groups
from fusionrec.errors import ConfigError, DataError
from fusionrec.evaluation.metrics import (LIST_METRICS, TOPK_METRICS, mae, novelty_per_user, recommended_mask, rmse,
                                          self_information)
from fusionrec.evaluation.segments import check_mask, restrict_targets
from fusionrec.util.sparse_ops import binary_csr

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
"""users: LongTensor (B,) on the CPU -> scores FloatTensor (B, n_items) (any device), e.g. ``model.score_all``."""
PairScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""users: LongTensor (B,), items: LongTensor (B, n) -> scores (B, n), e.g. ``model.score``."""

DEFAULT_METRICS = ("recall", "precision", "ndcg", "hit", "mrr", "map")


class Evaluator:
    """Computes ``{name}@{k}`` for every metric in ``metrics`` and cut-off in ``ks``.

    ``metrics``: any of recall, precision, ndcg, hit, mrr, map (accuracy, RecBole's definitions) and itemcoverage,
    novelty (of the recommended lists; novelty needs ``item_pop``). ``batch_users``: users scored per chunk."""

    def __init__(self, ks: Sequence[int] = (10, 20), metrics: Sequence[str] = DEFAULT_METRICS, batch_users: int = 1024):
        try:
            ks = sorted({int(k) for k in ks})
        except (TypeError, ValueError):
            raise ConfigError(f"ks must be positive integers, not {ks!r}", key="evaluation.ks") from None
        if not ks or ks[0] < 1:
            raise ConfigError(f"ks must be a non-empty list of positive integers, not {ks!r}", key="evaluation.ks")
        names = [str(m).lower() for m in metrics]
        unknown = [m for m in names if m not in TOPK_METRICS and m not in LIST_METRICS]
        if unknown or not names:
            raise ConfigError(f"unknown metrics {unknown}; available: {', '.join([*TOPK_METRICS, *LIST_METRICS])}",
                              key="evaluation.metrics")
        if int(batch_users) < 1:
            raise ConfigError(f"batch_users must be >= 1, not {batch_users!r}", key="evaluation.batch_users")
        self.ks: tuple[int, ...] = tuple(ks)
        self.max_k = ks[-1]
        self.metrics: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.batch_users = int(batch_users)

    @property
    def keys(self) -> list[str]:
        """The result keys, e.g. ``["recall@10", "recall@20", ...]``, in metric then cut-off order."""
        return [f"{m}@{k}" for m in self.metrics for k in self.ks]

    # -- full ranking --------------------------------------------------------------------------------------------------
    def evaluate(self, score_fn: ScoreFn, target: Interactions, exclude: sp.spmatrix | None = None, *,
                 item_pop: np.ndarray | None = None, segments: Mapping[str, np.ndarray] | None = None,
                 user_segments: Mapping[str, np.ndarray] | None = None) -> dict:
        """Ranks the whole catalogue for every user with at least one item in ``target`` and averages over them.

        ``exclude``: (n_users, n_items) sparse matrix of items never to rank (scored -inf: for test, train+valid;
        for valid, train). ``item_pop``: (n_items,) training users per item, for novelty. ``segments``: item masks
        ``{name: bool (n_items,)}``; ``user_segments``: user masks ``{name: bool (n_users,)}``.

        Returns ``{"ndcg@10": ..., ...}``; with segments, ``{"overall": {...}, name: {...}, ...}`` where a segment's
        metrics use only its targets and users (NaN when no user has a target there)."""
        n_users, n_items = target.shape
        tgt = binary_csr(target.to_csr())
        excl = _check_exclude(exclude, target.shape)
        info = None
        if "novelty" in self.metrics:
            if item_pop is None:
                raise DataError("metric 'novelty' needs item_pop (training users per item)", field="item_pop")
            pop = np.asarray(item_pop)
            if pop.shape != (n_items,):
                raise DataError(f"item_pop must have shape ({n_items},), got {pop.shape}", field="item_pop")
            info = self_information(pop, n_users)
        views = self._views(tgt, segments, user_segments, n_items, n_users, info)
        users = np.flatnonzero(np.diff(tgt.indptr) > 0)
        if len(users) == 0:
            raise DataError("the target holds no interactions: no user to evaluate", field="target")
        for start in range(0, len(users), self.batch_users):
            chunk = users[start:start + self.batch_users]
            top = self._top_items(score_fn, chunk, excl, n_items)
            for view in views.values():
                view.add_lists(chunk, top)
        if segments is None and user_segments is None:
            return views["overall"].result()
        return {name: view.result() for name, view in views.items()}

    def _views(self, tgt, segments, user_segments, n_items, n_users, info) -> dict[str, "_Accumulator"]:
        views = {"overall": _Accumulator(self, tgt, n_items, info)}
        for masks, size, kind in ((segments, n_items, "items"), (user_segments, n_users, "users")):
            for name, mask in (masks or {}).items():
                if name in views:
                    raise DataError(f"segment name {name!r} is used twice (or is 'overall')", field=name)
                mask = check_mask(mask, size, name, kind)
                restricted = restrict_targets(tgt, item_mask=mask) if kind == "items" else \
                    restrict_targets(tgt, user_mask=mask)
                views[name] = _Accumulator(self, restricted, n_items, info)
        return views

    def _top_items(self, score_fn: ScoreFn, chunk: np.ndarray, excl: sp.csr_matrix | None, n_items: int) -> np.ndarray:
        """Top max_k item indices per user of the chunk, best first; -1 where fewer items than max_k are rankable.
        chunk: (B,) -> int64 (B, max_k)."""
        with torch.no_grad():
            scores = score_fn(torch.as_tensor(chunk, dtype=torch.long))
            if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (len(chunk), n_items):
                got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise DataError(f"score_fn must return a tensor of shape ({len(chunk)}, {n_items}), got {got}",
                                field="scores")
            scores = scores.detach().to(dtype=torch.float32, copy=True)  # never write into the model's tensors
            if torch.isnan(scores).any():
                raise DataError("score_fn returned NaN scores", field="scores")
            if excl is not None:
                sub = excl[chunk]
                rows = np.repeat(np.arange(len(chunk)), np.diff(sub.indptr))
                scores[torch.as_tensor(rows, device=scores.device),
                       torch.as_tensor(sub.indices.astype(np.int64), device=scores.device)] = float("-inf")
            k = min(self.max_k, n_items)
            values, idx = torch.topk(scores, k, dim=1)
            top = idx.cpu().numpy().astype(np.int64)
            top[torch.isneginf(values).cpu().numpy()] = -1
        if k < self.max_k:
            top = np.concatenate([top, np.full((len(chunk), self.max_k - k), -1, dtype=np.int64)], axis=1)
        return top

    # -- sampled ranking -----------------------------------------------------------------------------------------------
    def evaluate_sampled(self, score_fn_pairs: PairScoreFn, target: Interactions, negatives: np.ndarray) -> dict:
        """Ranks each user's target items among that user's sampled ``negatives`` (int (n_users, n_neg), from
        :func:`sample_negatives` for this target) and averages the accuracy metrics over users with targets.
        List metrics (itemcoverage, novelty) are not defined here and are left out of the result."""
        n_users, n_items = target.shape
        tgt = binary_csr(target.to_csr())
        neg = np.asarray(negatives)
        if neg.ndim != 2 or neg.shape[0] != n_users or not np.issubdtype(neg.dtype, np.integer):
            raise DataError(f"negatives must be an integer array ({n_users}, n_neg), got {neg.dtype} {neg.shape}",
                            field="negatives")
        users = np.flatnonzero(np.diff(tgt.indptr) > 0)
        if len(users) == 0:
            raise DataError("the target holds no interactions: no user to evaluate", field="target")
        drawn = neg[users]
        if drawn.size and (drawn.min() < 0 or drawn.max() >= n_items):
            raise DataError("negatives hold no valid items for some users with targets: they were drawn for another "
                            "target (draw them with sample_negatives for this one)", field="negatives")
        acc = _Accumulator(self, tgt, n_items, None, lists=False)
        for start in range(0, len(users), self.batch_users):
            chunk = users[start:start + self.batch_users]
            hits, n_pos = self._sampled_hits(score_fn_pairs, tgt[chunk], chunk, neg[chunk], n_items)
            acc.add_hits(hits, n_pos)
        return acc.result()

    def _sampled_hits(self, score_fn_pairs, sub: sp.csr_matrix, chunk, neg, n_items) -> tuple[np.ndarray, np.ndarray]:
        """hits bool (B, max_k) and n_pos (B,) for one chunk; candidates: [positives (padded with -1) | negatives]."""
        n_pos = np.diff(sub.indptr)
        rows = np.repeat(np.arange(len(chunk)), n_pos)
        if np.isin(rows * n_items + sub.indices, np.arange(len(chunk))[:, None] * n_items + neg).any():
            raise DataError("some sampled negatives are target items of their user: they were drawn for another "
                            "target", field="negatives")
        pos = np.full((len(chunk), int(n_pos.max())), -1, dtype=np.int64)
        pos[rows, np.arange(len(rows)) - np.repeat(sub.indptr[:-1], n_pos)] = sub.indices
        cand = np.concatenate([pos, neg.astype(np.int64)], axis=1)
        with torch.no_grad():
            scores = score_fn_pairs(torch.as_tensor(chunk, dtype=torch.long),
                                    torch.as_tensor(np.where(cand < 0, 0, cand)))
            if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != cand.shape:
                raise DataError(f"score_fn_pairs must return a tensor of shape {cand.shape}", field="scores")
            scores = scores.detach().to(dtype=torch.float32, copy=True)
            if torch.isnan(scores).any():
                raise DataError("score_fn_pairs returned NaN scores", field="scores")
            scores[torch.as_tensor(cand < 0, device=scores.device)] = float("-inf")
            k = min(self.max_k, cand.shape[1])
            values, idx = torch.topk(scores, k, dim=1)
            idx = idx.cpu().numpy()
            hits = (idx < n_pos[:, None]) & ~torch.isneginf(values).cpu().numpy()
        if k < self.max_k:
            hits = np.concatenate([hits, np.zeros((len(chunk), self.max_k - k), dtype=bool)], axis=1)
        return hits, n_pos

    # -- explicit ratings ----------------------------------------------------------------------------------------------
    @staticmethod
    def evaluate_ratings(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> dict[str, float]:
        """``{"rmse": ..., "mae": ...}`` of predicted against true ratings, both (n,)."""
        pred = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else pred
        true = true.detach().cpu().numpy() if isinstance(true, torch.Tensor) else true
        return {"rmse": rmse(pred, true), "mae": mae(pred, true)}


def sample_negatives(target: Interactions, exclude: sp.spmatrix | None, n_neg: int, seed: int = 2020) -> np.ndarray:
    """Draws, once, ``n_neg`` distinct negatives per user with targets: items uniformly at random among those that
    are neither the user's targets nor excluded. Returns int64 (n_users, n_neg); rows of users without targets are
    -1. Save it with ``np.save`` to evaluate every model on the same candidates."""
    n_users, n_items = target.shape
    if int(n_neg) < 1:
        raise ConfigError(f"n_neg must be >= 1, not {n_neg!r}", key="evaluation.sampled_negatives")
    n_neg = int(n_neg)
    tgt = binary_csr(target.to_csr())
    excl = _check_exclude(exclude, target.shape)
    forbidden = binary_csr(tgt if excl is None else (tgt + excl).tocsr())
    allowed = n_items - np.diff(forbidden.indptr)
    users = np.flatnonzero(np.diff(tgt.indptr) > 0)
    short = users[allowed[users] < n_neg]
    if len(short):
        raise DataError(f"user index {short[0]} has only {allowed[short[0]]} items that are neither targets nor "
                        f"excluded, fewer than the {n_neg} negatives asked for", field="sampled_negatives")
    forbidden_keys = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(forbidden.indptr)) * n_items \
        + forbidden.indices  # sorted: rows ascending, columns sorted within a row
    rng = np.random.default_rng(seed)
    chosen = np.zeros(0, dtype=np.int64)
    have = np.zeros(n_users, dtype=np.int64)
    while True:  # rejection rounds over all lacking users at once; each round fills most of what is missing
        lacking = users[have[users] < n_neg]
        if len(lacking) == 0:
            break
        draws = np.ceil((n_neg - have[lacking]) * n_items / allowed[lacking] * 1.5).astype(np.int64) + 4
        keys = np.repeat(lacking, draws) * n_items + rng.integers(0, n_items, size=int(draws.sum()))
        at = np.minimum(np.searchsorted(forbidden_keys, keys), max(len(forbidden_keys) - 1, 0))
        if len(forbidden_keys):
            keys = keys[forbidden_keys[at] != keys]
        chosen = np.unique(np.concatenate([chosen, keys]))
        have = np.bincount(chosen // n_items, minlength=n_users)
    owner = chosen // n_items
    rank = rank_within_groups(owner, rng.random(len(chosen)))  # a uniform subset of each user's distinct draws
    keep = rank < n_neg
    out = np.full((n_users, n_neg), -1, dtype=np.int64)
    out[owner[keep], rank[keep]] = chosen[keep] % n_items
    return out


# -- accumulation ------------------------------------------------------------------------------------------------------
class _Accumulator:
    """Sums per-user metric values of one target view (overall or a segment) across chunks."""

    def __init__(self, ev: Evaluator, target: sp.csr_matrix, n_items: int, info: np.ndarray | None,
                 lists: bool = True):
        self.ev, self.target, self.n_items, self.info = ev, target, n_items, info
        self.n_pos = np.diff(target.indptr)
        self.topk = [m for m in ev.metrics if m in TOPK_METRICS]
        self.lists = [m for m in ev.metrics if m in LIST_METRICS] if lists else []
        self.sums = {m: np.zeros(ev.max_k) for m in self.topk}
        self.seen = np.zeros((len(ev.ks), n_items), dtype=bool)
        self.novelty = np.zeros(len(ev.ks))
        self.count = 0

    def add_lists(self, users: np.ndarray, top: np.ndarray) -> None:
        """users (B,), top: int64 (B, max_k) recommended items (-1 empty); users without targets here are skipped."""
        keep = self.n_pos[users] > 0
        if not keep.any():
            return
        users, top = users[keep], top[keep]
        sub = self.target[users]
        rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
        hits = np.isin(np.arange(len(users))[:, None] * self.n_items + top, rows * self.n_items + sub.indices)
        hits &= top >= 0
        for i, k in enumerate(self.ev.ks):
            if "itemcoverage" in self.lists:
                self.seen[i] |= recommended_mask(top, self.n_items, k)
            if "novelty" in self.lists:
                self.novelty[i] += novelty_per_user(top, self.info, k).sum()
        self.add_hits(hits, self.n_pos[users])

    def add_hits(self, hits: np.ndarray, n_pos: np.ndarray) -> None:
        for m in self.topk:
            self.sums[m] += TOPK_METRICS[m](hits, n_pos).sum(axis=0)
        self.count += len(hits)

    def result(self) -> dict[str, float]:
        n = self.count
        out: dict[str, float] = {}
        for m in self.ev.metrics:
            for i, k in enumerate(self.ev.ks):
                if m in TOPK_METRICS:
                    value = self.sums[m][k - 1] / n if n else float("nan")
                elif m == "itemcoverage" and m in self.lists:
                    value = self.seen[i].sum() / self.n_items if n else float("nan")
                elif m == "novelty" and m in self.lists:
                    value = self.novelty[i] / n if n else float("nan")
                else:
                    continue
                out[f"{m}@{k}"] = float(value)
        return out


def _check_exclude(exclude: sp.spmatrix | None, shape: tuple[int, int]) -> sp.csr_matrix | None:
    if exclude is None:
        return None
    if not sp.issparse(exclude) or exclude.shape != shape:
        got = exclude.shape if hasattr(exclude, "shape") else type(exclude).__name__
        raise DataError(f"exclude must be a sparse matrix of shape {shape}, got {got}", field="exclude")
    return binary_csr(exclude)
