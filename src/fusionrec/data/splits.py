"""Train / valid / test splits of a dataset's interactions.

Methods: ``random`` (per-user random ratio split, RecBole's ``RS`` + ``group_by: user`` + ``order: RO``),
``temporal`` (the same per user, in timestamp order), ``leave_one_out``, ``cold_items``, ``cold_users`` and
``given`` (the dataset's own train/valid/test files). Everything is vectorised: rows get a sort key (random or
timestamp), are ranked within their user by one ``lexsort``, and the rank decides the part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.data.interactions import Interactions
from fusionrec.errors import ConfigError, DataError

METHODS = ("random", "temporal", "leave_one_out", "cold_items", "cold_users", "given")
TEST_HISTORIES = ("train", "train_valid")  # what the test is scored from (split.test_history)

TRAIN, VALID, TEST = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Split:
    """The three parts of one split, each over the full catalogue's shape.

    ``cold_items``: bool (n_items,), True for items held out of training (``cold_items`` method), else None.
    ``cold_users``: bool (n_users,), True for users held out of training (``cold_users`` method), else None.
    ``test_history``: ``train`` or ``train_valid``, the history the test is scored from (see :meth:`history`)."""

    train: Interactions
    valid: Interactions
    test: Interactions
    method: str
    cold_items: np.ndarray | None = None
    cold_users: np.ndarray | None = None
    test_history: str = "train"

    def history(self, part: str) -> sp.csr_matrix:
        """The users' histories that ``part`` is scored from, binary CSR (n_users, n_items): always train for
        ``valid``; for ``test`` train, or train + valid when ``test_history`` is ``train_valid`` (the leave-one-out
        protocol of published sequential tables: the valid item is the last thing the user did before the test)."""
        if part == "valid" or (part == "test" and self.test_history == "train"):
            return self.train.to_csr()
        if part == "test":
            return self.exclude("test")
        raise ValueError(f"part must be 'valid' or 'test', not {part!r}")

    def exclude(self, part: str) -> sp.csr_matrix:
        """The user x item matrix of items not to rank when evaluating ``part``: the training items for ``valid``,
        training and validation items for ``test``; binary CSR of shape (n_users, n_items)."""
        if part == "valid":
            return self.train.to_csr()
        if part == "test":
            m = (self.train.to_csr() + self.valid.to_csr()).tocsr()
            m.data[:] = 1.0
            return m
        raise ValueError(f"part must be 'valid' or 'test', not {part!r}")


def ratio_counts(n: np.ndarray, ratios: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How many of a group's ``n`` rows go to train, valid and test under RecBole 1.2.1's rounding rule.

    ``ratios`` (train, valid, test) are normalised by their sum. valid = floor(r_valid * n) and
    test = floor(r_test * n); train gets the rest. Then, so that small groups still get a test and a valid row:
    first test, then valid, is raised from 0 to 1 when 0 < r * n < 1, each only while train still holds more than
    one row. E.g. with (0.8, 0.1, 0.1): n=1 -> (1, 0, 0), n=2 -> (1, 0, 1), n=3 -> (1, 1, 1), n=10 -> (8, 1, 1),
    n=19 -> (17, 1, 1), n=20 -> (16, 2, 2).

    ``n``: int array (g,) -> three int64 arrays (g,)."""
    total = sum(float(r) for r in ratios)
    r_valid, r_test = float(ratios[1]) / total, float(ratios[2]) / total
    n = np.asarray(n, dtype=np.int64)
    exact_valid, exact_test = r_valid * n, r_test * n  # float64, the same products as Python's float * int
    valid = np.floor(exact_valid).astype(np.int64)
    test = np.floor(exact_test).astype(np.int64)
    train = n - valid - test
    for exact, part in ((exact_test, test), (exact_valid, valid)):  # test first, as RecBole walks the list backwards
        bump = (train > 1) & (exact > 0) & (exact < 1)
        part += bump
        train -= bump
    return train, valid, test


def make_split(dataset: Dataset, method: str, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 2020,
               cold_share: float = 0.2, test_history: str = "train") -> Split:
    """Splits ``dataset.interactions`` into train/valid/test by ``method`` (one of :data:`METHODS`); the test is
    scored from ``test_history`` (one of :data:`TEST_HISTORIES`, see :func:`check_test_history`).

    Deterministic for a seed; every row lands in exactly one part, and each part keeps the rows' original order."""
    if method not in METHODS:
        raise ConfigError(f"unknown split method {method!r}; choose one of {', '.join(METHODS)}", key="split.method")
    check_test_history(method, test_history)
    if method == "given":
        return replace(_given(dataset), test_history=test_history)
    ratios = _check_ratios(ratios)
    inter = dataset.interactions
    if len(inter) == 0:
        raise DataError(f"dataset {dataset.name!r} has no interactions to split", field="interactions")
    rng = np.random.default_rng(seed)
    cold_items = cold_users = None
    if method == "random":
        part = _ratio_parts(inter.users, shuffle_key(len(inter), seed), inter.n_users, ratios)
    elif method == "temporal":
        part = _ratio_parts(inter.users, _timestamps(inter, method), inter.n_users, ratios)
    elif method == "leave_one_out":
        part = _leave_one_out(inter.users, _timestamps(inter, method), inter.n_users)
    elif method == "cold_items":
        part, cold_items = _cold(inter.items, inter.n_items, inter.users, inter.n_users, ratios, cold_share, rng)
    else:  # cold_users
        part, cold_users = _cold(inter.users, inter.n_users, inter.users, inter.n_users, ratios, cold_share, rng)
    return Split(inter.take(part == TRAIN), inter.take(part == VALID), inter.take(part == TEST), method,
                 cold_items, cold_users, test_history)


def check_test_history(method: str, test_history: str) -> None:
    """``train_valid`` is sound where each user's valid rows come before (``leave_one_out``, ``temporal``) or beside
    (``given``, ``random``) their test rows, so they are part of what the user did and never a test target. The cold
    splits hold whole items (users) out for valid, not a step of each user's history: reading them before the test
    would make the valid's cold items (users) warm and blur what the cold test measures, so it is refused there, as
    is any unknown value."""
    if test_history not in TEST_HISTORIES:
        raise ConfigError(f"must be one of {', '.join(TEST_HISTORIES)}, not {test_history!r}",
                          key="split.test_history")
    if test_history == "train_valid" and method in ("cold_items", "cold_users"):
        raise ConfigError(f"train_valid reads the valid rows as each user's history before the test; split method "
                          f"{method!r} holds whole {method[5:]} out for valid instead, which that would make warm "
                          "(use train)", key="split.test_history")


def thin_interactions(dataset: Dataset, share: float, seed: int) -> Dataset:
    """``dataset`` with only a ``share`` of each user's interactions kept (rounded up, at least one per user who has
    any), drawn at random for ``seed``, before any split: a sparser version of the same data, for studying how models
    cope with fewer interactions per user and item. Side information and the knowledge graph are unchanged."""
    if not 0.0 < float(share) <= 1.0:
        raise ConfigError(f"keep_share must lie in (0, 1], not {share!r}", key="split.keep_share")
    if float(share) == 1.0:
        return dataset
    if dataset.presplit is not None:
        raise ConfigError("keep_share < 1 thins the interactions before splitting; a dataset with given train/valid/"
                          "test parts cannot be thinned", key="split.keep_share")
    inter = dataset.interactions
    rank = rank_within_groups(inter.users, np.random.default_rng(seed).random(len(inter)))
    per_user = np.bincount(inter.users, minlength=inter.n_users)
    keep = np.maximum(np.ceil(float(share) * per_user - 1e-9), 1).astype(np.int64)
    return replace(dataset, interactions=inter.take(rank < keep[inter.users]))


# -- methods -----------------------------------------------------------------------------------------------------------
def shuffle_key(n: int, seed: int) -> np.ndarray:
    """Position of each row in a seeded shuffle: ``torch.randperm(n)`` under ``torch.manual_seed(seed)``.

    This is the shuffle RecBole 1.2.1 applies (``order: RO``) before its per-user ratio split, so with the same seed
    and row order (the file's) the ``random`` split reproduces RecBole's train/valid/test row for row, and published
    RecBole numbers compare on identical data. (n,) -> int64 (n,)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    key = np.empty(n, dtype=np.int64)
    key[perm] = np.arange(n)
    return key


def _ratio_parts(groups: np.ndarray, key: np.ndarray, n_groups: int, ratios: tuple[float, float, float]) -> np.ndarray:
    """Part (0 train, 1 valid, 2 test) of each row: rows ranked within their group by ``key`` ascending; the first
    ``train`` ranks go to train, the next ``valid`` to valid, the rest to test. groups, key: (n,) -> int8 (n,)."""
    counts = np.bincount(groups, minlength=n_groups)
    n_train, n_valid, _ = ratio_counts(counts, ratios)
    rank = rank_within_groups(groups, key)
    cut1 = n_train[groups]
    cut2 = cut1 + n_valid[groups]
    return np.where(rank < cut1, TRAIN, np.where(rank < cut2, VALID, TEST)).astype(np.int8)


def _leave_one_out(users: np.ndarray, key: np.ndarray, n_users: int) -> np.ndarray:
    """Last row of each user (by ``key``) to test, the one before to valid; users with < 3 rows stay in train."""
    counts = np.bincount(users, minlength=n_users)[users]
    from_end = counts - 1 - rank_within_groups(users, key)
    part = np.full(len(users), TRAIN, dtype=np.int8)
    enough = counts >= 3
    part[enough & (from_end == 0)] = TEST
    part[enough & (from_end == 1)] = VALID
    return part


def _cold(entity: np.ndarray, n_entities: int, users: np.ndarray, n_users: int, ratios: tuple[float, float, float],
          cold_share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cold-start split over ``entity`` (the item or the user column): a ``cold_share`` of the entities that occur
    are drawn; half of them (rounded down) send all their rows to valid, the others to test (all to test when the
    valid ratio is 0). The remaining rows are split per user as in ``random``.
    Returns (part int8 (n,), cold mask bool (n_entities,))."""
    if not 0.0 < float(cold_share) < 1.0:
        raise ConfigError(f"cold_share must lie strictly between 0 and 1, not {cold_share!r}", key="split.cold_share")
    present = np.flatnonzero(np.bincount(entity, minlength=n_entities) > 0)
    n_cold = int(np.floor(cold_share * len(present) + 0.5))
    if n_cold < 1 or n_cold >= len(present):
        raise DataError(f"cold_share={cold_share} of {len(present)} occurring ids leaves {n_cold} cold ones; need at "
                        "least one cold and one warm", field="cold_share")
    cold = rng.permutation(present)[:n_cold]
    n_cold_valid = n_cold // 2 if ratios[1] > 0 else 0
    mask = np.zeros(n_entities, dtype=bool)
    mask[cold] = True
    to_valid = np.zeros(n_entities, dtype=bool)
    to_valid[cold[:n_cold_valid]] = True
    row_cold = mask[entity]
    part = np.full(len(entity), TEST, dtype=np.int8)
    part[to_valid[entity]] = VALID
    warm = np.flatnonzero(~row_cold)
    part[warm] = _ratio_parts(users[warm], rng.random(len(warm)), n_users, ratios)
    return part, mask


def _given(dataset: Dataset) -> Split:
    parts = dataset.presplit
    if not parts:
        raise DataError(f"dataset {dataset.name!r} has no given train/valid/test files (split method 'given')",
                        field="presplit")
    for name in ("train", "test"):
        if name not in parts:
            raise DataError(f"dataset {dataset.name!r} was given without a {name} part", field=name)
    shape = (dataset.n_users, dataset.n_items)

    def fit(name: str) -> Interactions:
        if name not in parts:  # no valid file: an empty valid part
            e = np.zeros(0, dtype=np.int64)
            return Interactions(e, e.copy(), *shape)
        p = parts[name]
        if p.n_users > shape[0] or p.n_items > shape[1]:
            raise DataError(f"given {name} part has shape {p.shape}, larger than the dataset's {shape}", field=name)
        return p if p.shape == shape else p.resized(*shape)

    return Split(fit("train"), fit("valid"), fit("test"), "given")


# -- helpers -----------------------------------------------------------------------------------------------------------
def rank_within_groups(groups: np.ndarray, key: np.ndarray) -> np.ndarray:
    """0-based rank of each row within its group when ordered by ``key`` (ties: original row order).
    groups, key: (n,) -> int64 (n,)."""
    order = np.lexsort((key, groups))  # stable: equal keys keep their row order
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    run = np.diff(np.r_[starts, len(g)])
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = np.arange(len(g)) - np.repeat(starts, run)
    return rank


def _timestamps(inter: Interactions, method: str) -> np.ndarray:
    ts = inter.timestamps
    if ts is None:
        raise DataError(f"split method {method!r} orders each user's rows by time, but these interactions have no "
                        "timestamp column (use 'random', or name the timestamp column)", field="timestamp")
    ts = np.asarray(ts, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(ts))
    if len(bad):
        raise DataError(f"split method {method!r}: {len(bad)} rows have a missing timestamp (first: row {bad[0]})",
                        field="timestamp")
    return ts


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise ConfigError(f"ratios must be three numbers (train, valid, test), not {ratios!r}", key="split.ratios") \
            from None
    if len(values) != 3 or not all(np.isfinite(values)) or min(values) < 0:
        raise ConfigError(f"ratios must be three finite non-negative numbers (train, valid, test), not {ratios!r}",
                          key="split.ratios")
    if values[0] <= 0 or values[2] <= 0:
        raise ConfigError(f"the train and test ratios must be positive, not {ratios!r}", key="split.ratios")
    return values  # type: ignore[return-value]
