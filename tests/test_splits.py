"""Splits: RecBole's per-user rounding rule, no row lost or duplicated, determinism, and each method's contract."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.data.ids import IdMap
from fusionrec.data.interactions import Interactions
from fusionrec.data.splits import Split, make_split, rank_within_groups, ratio_counts, thin_interactions
from fusionrec.errors import ConfigError, DataError


def make_dataset(n_users: int = 40, n_items: int = 30, seed: int = 0, timestamps: bool = True,
                 presplit: dict | None = None) -> Dataset:
    """Users with 1..25 rows each (so tiny users hit the rounding corner cases); ``weights`` holds the row number so
    a test can follow every row through a split."""
    rng = np.random.default_rng(seed)
    per_user = rng.integers(1, 26, size=n_users)
    per_user[:4] = [1, 2, 3, 10]
    users = np.repeat(np.arange(n_users), per_user)
    rng.shuffle(users)
    items = rng.integers(0, n_items, size=len(users))
    ts = rng.permutation(len(users)).astype(np.float64) if timestamps else None
    inter = Interactions(users, items, n_users, n_items, timestamps=ts,
                         weights=np.arange(len(users), dtype=np.float32))
    return Dataset("toy", IdMap("user", range(n_users)), IdMap("item", range(n_items)), inter, presplit=presplit)


def row_ids(part: Interactions) -> np.ndarray:
    return part.weights.astype(np.int64)


def assert_partition(split: Split, ds: Dataset) -> None:
    """Every row of the dataset is in exactly one part, with its own user and item."""
    ids = np.concatenate([row_ids(split.train), row_ids(split.valid), row_ids(split.test)])
    assert np.array_equal(np.sort(ids), np.arange(len(ds.interactions)))
    for part in (split.train, split.valid, split.test):
        assert part.shape == ds.interactions.shape
        assert np.array_equal(part.users, ds.interactions.users[row_ids(part)])
        assert np.array_equal(part.items, ds.interactions.items[row_ids(part)])


def recbole_rule(n: int, ratios) -> tuple[int, int, int]:
    """The rule stated in RecBole 1.2.1's docs/code, written out plainly for one group of n rows."""
    total = sum(ratios)
    r = [x / total for x in ratios]
    cnt = [int(r[i] * n) for i in range(3)]
    cnt[0] = n - cnt[1] - cnt[2]
    for i in (2, 1):  # test, then valid
        if cnt[0] <= 1:
            break
        if 0 < r[i] * n < 1:
            cnt[i] += 1
            cnt[0] -= 1
    return cnt[0], cnt[1], cnt[2]


def test_ratio_counts_hand_values_for_801010():
    # valid = floor(0.1 n), test = floor(0.1 n), then test and valid are raised to 1 while train keeps > 1 row:
    # n=1: train holds the only row; n=2: test raised to 1 (train 1 left, valid stays 0); n=3: both raised;
    # n=9: floor(0.9)=0 -> both raised -> (7,1,1); n=10: 0.1*10 = 1 exactly -> (8,1,1); n=20 -> (16,2,2).
    n = np.array([0, 1, 2, 3, 9, 10, 19, 20, 25])
    train, valid, test = ratio_counts(n, (0.8, 0.1, 0.1))
    assert train.tolist() == [0, 1, 1, 1, 7, 8, 17, 16, 21]
    assert valid.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert test.tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.1, 0.2), (8, 1, 1), (0.6, 0.2, 0.2), (0.9, 0.0, 0.1),
                                    (0.5, 0.25, 0.25)])
def test_ratio_counts_agree_with_the_plain_rule(ratios):
    n = np.arange(0, 120)
    got = list(zip(*(a.tolist() for a in ratio_counts(n, ratios))))
    assert got == [recbole_rule(int(x), ratios) for x in n]


def test_rank_within_groups():
    groups = np.array([1, 0, 1, 1, 0])
    key = np.array([0.5, 0.9, 0.1, 0.5, 0.2])
    # group 0: rows 4 (0.2), 1 (0.9); group 1: rows 2 (0.1), 0 (0.5), 3 (0.5, tie kept in row order)
    assert rank_within_groups(groups, key).tolist() == [1, 1, 0, 2, 0]


def test_random_split_partitions_rows_with_recbole_counts_per_user():
    ds = make_dataset()
    split = make_split(ds, "random", seed=7)
    assert split.method == "random" and split.cold_items is None and split.cold_users is None
    assert_partition(split, ds)
    n = np.bincount(ds.interactions.users, minlength=ds.n_users)
    expected = ratio_counts(n, (0.8, 0.1, 0.1))
    for part, want in zip((split.train, split.valid, split.test), expected):
        assert np.array_equal(np.bincount(part.users, minlength=ds.n_users), want)


def test_random_split_is_deterministic_for_a_seed_and_differs_between_seeds():
    ds = make_dataset()
    a, b, c = make_split(ds, "random", seed=1), make_split(ds, "random", seed=1), make_split(ds, "random", seed=2)
    assert np.array_equal(row_ids(a.test), row_ids(b.test))
    assert not np.array_equal(np.sort(row_ids(a.test)), np.sort(row_ids(c.test)))


def test_random_split_is_random_within_a_user_not_row_order():
    # one user with 100 rows: under a random split the test rows are not simply the last 10 rows
    users = np.zeros(100, dtype=np.int64)
    inter = Interactions(users, np.arange(100), 1, 100, weights=np.arange(100, dtype=np.float32))
    ds = Dataset("one", IdMap("user", ["u"]), IdMap("item", range(100)), inter)
    split = make_split(ds, "random", seed=3)
    assert len(split.test) == 10 and len(split.valid) == 10
    assert sorted(row_ids(split.test).tolist()) != list(range(90, 100))


def test_temporal_split_puts_each_users_latest_rows_in_test():
    ds = make_dataset()
    split = make_split(ds, "temporal", ratios=(0.7, 0.1, 0.2))
    assert_partition(split, ds)
    for u in range(ds.n_users):
        tr = split.train.timestamps[split.train.users == u]
        va = split.valid.timestamps[split.valid.users == u]
        te = split.test.timestamps[split.test.users == u]
        if len(va):
            assert tr.max() < va.min()
        if len(te):
            assert max(tr.max(), va.max() if len(va) else -1) < te.min()
    n = np.bincount(ds.interactions.users, minlength=ds.n_users)
    assert np.array_equal(np.bincount(split.test.users, minlength=ds.n_users), ratio_counts(n, (0.7, 0.1, 0.2))[2])


def test_temporal_and_leave_one_out_need_timestamps():
    ds = make_dataset(timestamps=False)
    for method in ("temporal", "leave_one_out"):
        with pytest.raises(DataError, match="timestamp"):
            make_split(ds, method)


def test_leave_one_out_by_hand():
    # user 0: times 5,1,3 -> test = row at t=5, valid = t=3, train = t=1; user 1 has 2 rows -> all train;
    # user 2: times 2,9,4,7 -> test t=9, valid t=7, train t=2,4
    users = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    ts = np.array([5, 1, 3, 1, 2, 2, 9, 4, 7], dtype=np.float64)
    inter = Interactions(users, np.arange(9), 3, 9, timestamps=ts, weights=np.arange(9, dtype=np.float32))
    ds = Dataset("loo", IdMap("user", range(3)), IdMap("item", range(9)), inter)
    split = make_split(ds, "leave_one_out")
    assert sorted(row_ids(split.test).tolist()) == [0, 6]
    assert sorted(row_ids(split.valid).tolist()) == [2, 8]
    assert sorted(row_ids(split.train).tolist()) == [1, 3, 4, 5, 7]


def test_cold_items_split_keeps_cold_items_out_of_training():
    ds = make_dataset(n_users=60, n_items=40)
    split = make_split(ds, "cold_items", seed=5, cold_share=0.2)
    assert_partition(split, ds)
    cold = split.cold_items
    assert cold.dtype == np.bool_ and cold.shape == (ds.n_items,)
    present = np.unique(ds.interactions.items)
    assert cold.sum() == int(np.floor(0.2 * len(present) + 0.5))
    assert not cold[split.train.items].any()
    # every row of a cold item is held out; half the cold items (rounded down) are validation-only
    assert cold[ds.interactions.items].sum() == cold[split.valid.items].sum() + cold[split.test.items].sum()
    valid_cold = np.unique(split.valid.items[cold[split.valid.items]])
    test_cold = np.unique(split.test.items[cold[split.test.items]])
    assert len(np.intersect1d(valid_cold, test_cold)) == 0
    assert len(valid_cold) == cold.sum() // 2 and len(test_cold) == cold.sum() - cold.sum() // 2
    # the warm rows follow the per-user ratio split
    warm_train = np.bincount(split.train.users, minlength=ds.n_users)
    warm_n = np.bincount(ds.interactions.users[~cold[ds.interactions.items]], minlength=ds.n_users)
    assert np.array_equal(warm_train, ratio_counts(warm_n, (0.8, 0.1, 0.1))[0])
    other = make_split(ds, "cold_items", seed=6, cold_share=0.2)
    assert not np.array_equal(other.cold_items, cold)


def test_cold_users_split_keeps_cold_users_out_of_training():
    ds = make_dataset(n_users=50)
    split = make_split(ds, "cold_users", seed=5, cold_share=0.3)
    assert_partition(split, ds)
    cold = split.cold_users
    assert cold.shape == (ds.n_users,) and cold.sum() == 15 and split.cold_items is None
    assert not cold[split.train.users].any()
    valid_cold = np.unique(split.valid.users[cold[split.valid.users]])
    test_cold = np.unique(split.test.users[cold[split.test.users]])
    assert len(valid_cold) == 7 and len(test_cold) == 8


def test_given_split_uses_the_presplit_parts():
    base = make_dataset()
    inter = base.interactions
    parts = {"train": inter.take(np.arange(0, 50)), "valid": inter.take(np.arange(50, 60)),
             "test": inter.take(np.arange(60, len(inter)))}
    ds = make_dataset(presplit=parts)
    split = make_split(ds, "given")
    assert split.train is parts["train"] and split.test is parts["test"] and split.method == "given"
    with pytest.raises(DataError, match="no given"):
        make_split(base, "given")
    no_valid = make_split(make_dataset(presplit={"train": parts["train"], "test": parts["test"]}), "given")
    assert len(no_valid.valid) == 0 and no_valid.valid.shape == inter.shape


def test_exclude_matrices():
    ds = make_dataset()
    split = make_split(ds, "random", seed=1)
    ex_valid, ex_test = split.exclude("valid"), split.exclude("test")
    assert (ex_valid != split.train.to_csr()).nnz == 0
    both = (split.train.to_csr() + split.valid.to_csr()).toarray() > 0
    assert np.array_equal(ex_test.toarray() > 0, both) and set(np.unique(ex_test.data)) == {1.0}


@pytest.mark.parametrize("kwargs, key", [
    ({"method": "by_magic"}, "split.method"),
    ({"method": "random", "ratios": (0.8, 0.2)}, "split.ratios"),
    ({"method": "random", "ratios": (0.8, -0.1, 0.3)}, "split.ratios"),
    ({"method": "random", "ratios": (0.8, 0.2, 0.0)}, "split.ratios"),
    ({"method": "cold_items", "cold_share": 1.0}, "split.cold_share"),
])
def test_bad_arguments_name_the_config_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        make_split(make_dataset(), **kwargs)
    assert err.value.key == key


def test_empty_dataset_is_a_data_error():
    e = np.zeros(0, dtype=np.int64)
    ds = Dataset("empty", IdMap("user"), IdMap("item"), Interactions(e, e.copy(), 0, 0))
    with pytest.raises(DataError, match="no interactions"):
        make_split(ds, "random")


def test_thin_interactions_keeps_a_share_of_each_users_rows_deterministically():
    ds = make_dataset()
    thin = thin_interactions(ds, 0.3, seed=3)
    assert set(row_ids(thin.interactions)) <= set(row_ids(ds.interactions))
    full_counts = np.bincount(ds.interactions.users, minlength=ds.n_users)
    thin_counts = np.bincount(thin.interactions.users, minlength=ds.n_users)
    expected = np.where(full_counts > 0, np.maximum(np.ceil(0.3 * full_counts - 1e-9), 1), 0)
    assert np.array_equal(thin_counts, expected)  # e.g. 10 rows -> 3, 1 -> 1 (never a user emptied)
    kept = row_ids(thin.interactions)
    assert np.array_equal(ds.interactions.items[kept], thin.interactions.items)  # rows keep their own item
    assert np.array_equal(row_ids(thin_interactions(ds, 0.3, seed=3).interactions), kept)
    assert not np.array_equal(row_ids(thin_interactions(ds, 0.3, seed=4).interactions), kept)
    assert thin_interactions(ds, 1.0, seed=3) is ds
    split = make_split(thin, "random", seed=3)  # the split then works on the kept rows only
    parts = np.concatenate([row_ids(split.train), row_ids(split.valid), row_ids(split.test)])
    assert np.array_equal(np.sort(parts), np.sort(kept))


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_thin_interactions_rejects_a_share_outside_0_1(share):
    with pytest.raises(ConfigError, match="keep_share"):
        thin_interactions(make_dataset(), share, seed=3)


def test_thin_interactions_refuses_a_presplit_dataset():
    ds = make_dataset()
    parts = {"train": ds.interactions, "test": ds.interactions}
    with pytest.raises(ConfigError, match="given train"):
        thin_interactions(make_dataset(presplit=parts), 0.5, seed=1)
