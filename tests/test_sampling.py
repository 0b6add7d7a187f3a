"""Negative sampling: never a training item of the user, uniform over the rest, on both lookup paths and through
the exact fallback for users who saw almost everything."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.errors import DataError
from fusionrec.training import sampling
from fusionrec.training.sampling import NegativeSampler

N_ITEMS = 30
# chi-square critical value at p = 0.001: 19 degrees of freedom (20 free items) and 2 (3 free items)
CHI2_999 = {19: 43.82, 2: 13.82}


@pytest.fixture(params=["bitmap", "searchsorted"])
def lookup(request, monkeypatch):
    if request.param == "searchsorted":
        monkeypatch.setattr(sampling, "_BITMAP_CELLS", 0)
    return request.param


def matrix(rows: dict[int, list[int]], n_users: int) -> sp.csr_matrix:
    users = [u for u, items in rows.items() for _ in items]
    items = [i for items in rows.values() for i in items]
    return sp.csr_matrix((np.ones(len(items), np.float32), (users, items)), shape=(n_users, N_ITEMS))


def sampler_for(train, seed=0):
    return NegativeSampler(train, torch.Generator().manual_seed(seed))


def chi_square(draws: np.ndarray, allowed: np.ndarray) -> float:
    counts = np.bincount(draws, minlength=N_ITEMS)[allowed]
    expected = len(draws) / len(allowed)
    return float(((counts - expected) ** 2 / expected).sum())


def test_no_false_negatives(lookup):
    rng = np.random.default_rng(1)
    rows = {u: sorted(rng.choice(N_ITEMS, size=int(rng.integers(0, N_ITEMS)), replace=False).tolist())
            for u in range(50)}
    rows[7] = list(range(N_ITEMS - 1))  # only item 29 is left for user 7
    train = matrix(rows, 50)
    s = sampler_for(train)
    users = torch.arange(50).repeat_interleave(40)
    neg = s.sample(users, 5)
    assert neg.shape == (2000, 5) and neg.dtype == torch.long
    assert ((neg >= 0) & (neg < N_ITEMS)).all()
    dense = torch.from_numpy(train.toarray() > 0)
    assert not dense[users.unsqueeze(1), neg].any()
    assert (neg[users == 7] == N_ITEMS - 1).all()


def test_uniform_over_the_unseen_items(lookup):
    train = matrix({0: list(range(10))}, 1)  # user 0 saw items 0..9; 20 items are free
    neg = sampler_for(train).sample(torch.zeros(20000, dtype=torch.long), 2).ravel().numpy()
    assert neg.min() >= 10
    assert chi_square(neg, np.arange(10, N_ITEMS)) < CHI2_999[19]


def test_exact_fallback_is_uniform_too(lookup):
    free = np.array([3, 17, 28])
    train = matrix({0: sorted(set(range(N_ITEMS)) - set(free.tolist()))}, 1)  # 27 of 30 seen: many draws reach
    neg = sampler_for(train).sample(torch.zeros(12000, dtype=torch.long), 1).ravel().numpy()  # the fallback
    assert set(np.unique(neg)) == set(free.tolist())
    assert chi_square(neg, free) < CHI2_999[2]


def test_exact_placement_by_hand():
    # user 0 saw {1, 3}: its unseen items in order are 0, 2, 4, 5, ...; rank r must map to that r-th item
    s = sampler_for(matrix({0: [1, 3], 1: [0]}, 2))
    n = 2000
    got = s._exact(torch.zeros(n, dtype=torch.long)).numpy()
    assert set(np.unique(got)) == set(range(N_ITEMS)) - {1, 3}
    got = s._exact(torch.ones(n, dtype=torch.long)).numpy()
    assert set(np.unique(got)) == set(range(1, N_ITEMS))


def test_user_with_every_item_is_a_data_error():
    train = matrix({0: [1], 1: list(range(N_ITEMS))}, 2)
    with pytest.raises(DataError, match="user index 1 has interacted with every one of the 30 items"):
        sampler_for(train).sample(torch.tensor([0, 1]), 1)


def test_same_generator_seed_same_draws(lookup):
    train = matrix({0: [0, 1, 2], 1: [5]}, 2)
    users = torch.tensor([0, 1] * 50)
    assert torch.equal(sampler_for(train, 4).sample(users, 3), sampler_for(train, 4).sample(users, 3))
    assert not torch.equal(sampler_for(train, 4).sample(users, 3), sampler_for(train, 5).sample(users, 3))


def test_users_without_training_items_draw_from_everything():
    neg = sampler_for(matrix({}, 3)).sample(torch.full((6000,), 2), 1).ravel().numpy()
    assert chi_square(neg, np.arange(N_ITEMS)) < 59.7  # df 29, p = 0.001


def test_a_pool_limits_the_draws_to_its_unseen_items(lookup):
    # cold-start training: items outside the pool (no training interactions) must never be drawn as negatives
    pool = np.array([2, 5, 6, 11, 17, 20, 29])
    s = NegativeSampler(matrix({0: [5, 20], 1: [0, 2, 5, 6, 11, 17, 29]}, 2), torch.Generator().manual_seed(0),
                        pool=pool)
    neg = s.sample(torch.zeros(5000, dtype=torch.long), 1).ravel().numpy()
    free = np.array([2, 6, 11, 17, 29])
    assert set(np.unique(neg)) == set(free.tolist())
    assert chi_square(neg, free) < 18.47  # df 4, p = 0.001
    assert (s.sample(torch.ones(50, dtype=torch.long), 2) == 20).all()  # user 1's only unseen pool item


def test_an_empty_pool_is_a_data_error():
    with pytest.raises(DataError, match="negative pool"):
        NegativeSampler(matrix({0: [1]}, 1), pool=np.array([], dtype=np.int64))
