"""Clustered synthetic vectors (the 1M-item serving benchmark's catalogue): same seed same vectors, and the structure
the docs claim: users' best items lie in their own clusters, seen items come from them, norms follow popularity, most
variance lies in a few directions. Random Gaussian vectors are the control for each claim."""

import numpy as np
import pytest

from fusionrec.data.synthetic_vectors import clustered_vectors, vector_stats


@pytest.fixture(scope="module")
def made():
    return clustered_vectors(n_users=300, n_items=20_000, dim=32, seed=4, n_clusters=100)


def test_same_seed_same_vectors_other_seed_other_vectors(made):
    again = clustered_vectors(n_users=300, n_items=20_000, dim=32, seed=4, n_clusters=100)
    for a, b in [(made.users, again.users), (made.items, again.items), (made.seen[1], again.seen[1])]:
        np.testing.assert_array_equal(a, b)
    other = clustered_vectors(n_users=300, n_items=20_000, dim=32, seed=5, n_clusters=100)
    assert not np.array_equal(made.items, other.items)
    assert made.users.dtype == made.items.dtype == np.float32
    assert made.users.shape == (300, 32) and made.items.shape == (20_000, 32)


def test_best_items_and_seen_items_come_from_the_users_clusters(made):
    top = np.argsort(-(made.users @ made.items.T), axis=1)[:, :10]  # (300, 10)
    own = np.array([np.isin(made.item_cluster[t], c[c >= 0]).mean() for t, c in zip(top, made.user_clusters)])
    rng = np.random.default_rng(0)
    random_items = rng.integers(len(made.items), size=top.shape)
    chance = np.array([np.isin(made.item_cluster[t], c[c >= 0]).mean()
                       for t, c in zip(random_items, made.user_clusters)])
    assert own.mean() > 0.5 and chance.mean() < 0.1
    rows, cols = made.seen
    assert len(rows) == 300 * 20 and (np.bincount(rows) == 20).all()
    in_own = np.array([made.item_cluster[i] in made.user_clusters[u] for u, i in zip(rows, cols)])
    assert 0.7 < in_own.mean() < 0.9  # 20 % are drawn from the whole catalogue (some land in the user's clusters)


def test_norms_follow_popularity_and_variance_is_in_few_directions(made):
    stats = vector_stats(made.users, made.items, made.popularity)
    assert stats["item_norm_popularity_spearman"] > 0.85
    assert 0.15 < stats["item_norm_cv"] < 0.25 and 0.2 < stats["user_norm_cv"] < 0.4
    assert stats["item_variance_top4"] > 0.35  # an isotropic 32-d Gaussian holds about 4/32 in 4 directions
    rng = np.random.default_rng(0)
    control = vector_stats(rng.standard_normal((300, 32)), rng.standard_normal((20_000, 32)))
    assert control["item_variance_top4"] < 0.2


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="n_clusters must be in 1..n_items"):
        clustered_vectors(n_users=3, n_items=5, n_clusters=10)
