"""EASE that tells and bounds, and sparse-ease, the neighbourhood-restricted EASE that scales (issue 11, item 3).

Planted data (fusionrec.data.synthetic): every user mostly interacts inside one hidden item cluster, so a model
that learns item-item structure ranks a user's held-out items far above what popularity does."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data import Interactions
from fusionrec.data.synthetic import make_synthetic
from fusionrec.errors import ConfigError
from fusionrec.models import get_model_class
from fusionrec.models.ease import EASE, EASEParams, ease_cost
from fusionrec.models.sparse_ease import SparseEASE, SparseEASEParams, top_k_neighbours
from fusionrec.training import build_inputs

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def planted():
    """Train / held-out split of a planted dataset: 400 users, 240 items in 8 clusters, 20 interactions a user,
    10 % noise; a fifth of each user's interactions held out (seeded)."""
    data = make_synthetic(n_users=400, n_items=240, n_clusters=8, interactions_per_user=20, seed=1, noise=0.1)
    inter = data.dataset.interactions
    held = np.random.default_rng(5).random(len(inter.users)) < 0.2
    train = Interactions(inter.users[~held], inter.items[~held], inter.n_users, inter.n_items)
    test = sp.csr_matrix((np.ones(int(held.sum())), (inter.users[held], inter.items[held])),
                         shape=(inter.n_users, inter.n_items))
    return build_inputs(inter.n_users, inter.n_items, train), test


def _recall_at_10(scores: torch.Tensor, inputs, test: sp.csr_matrix) -> float:
    """Mean over users with held-out items of |top-10 unseen ∩ held-out| / min(10, |held-out|)."""
    scores = scores.clone()
    seen = torch.from_numpy(inputs.train.toarray() > 0)
    scores[seen] = -torch.inf
    top = scores.topk(10, dim=1).indices.numpy()
    truth = test.toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1).sum(1)
    n = truth.sum(1)
    has = n > 0
    return float((hits[has] / np.minimum(10, n[has])).mean())


def _fit(cls, inputs, **params):
    model = cls(inputs.n_users, inputs.n_items, cls.Params(**params))
    model.prepare(inputs)
    model.eval()
    return model


def test_sparse_ease_recovers_planted_clusters_far_above_popularity(planted):
    inputs, test = planted
    users = torch.arange(inputs.n_users)
    pop = _recall_at_10(_fit(get_model_class("pop"), inputs).score_all(users), inputs, test)
    sparse = _recall_at_10(_fit(SparseEASE, inputs, l2=20.0, k=30).score_all(users), inputs, test)
    # 8 clusters: a user's held-out items are ~90 % from their 30-item cluster, popularity spreads over all 240
    assert sparse > 3 * pop, (sparse, pop)
    assert sparse > 0.3, sparse


def test_sparse_ease_with_every_neighbour_is_close_to_full_ease(planted):
    # k >= n_items - 1: every co-occurring item is a neighbour; only EASE's weights on never-co-occurring items are
    # missing (measured: correlation .997, top-10 overlap 9.46 of 10; a k of 10 gives .965 and 6.95)
    inputs, test = planted
    users = torch.arange(inputs.n_users)
    full = _fit(EASE, inputs, l2=100.0).score_all(users)
    sparse = _fit(SparseEASE, inputs, l2=100.0, k=inputs.n_items - 1).score_all(users)
    corr = np.corrcoef(full.numpy().ravel(), sparse.numpy().ravel())[0, 1]
    assert corr > 0.99, corr
    overlap = np.mean([len(set(full[u].topk(10).indices.tolist()) & set(sparse[u].topk(10).indices.tolist()))
                       for u in range(inputs.n_users)])
    assert overlap > 9.0, overlap
    assert abs(_recall_at_10(sparse, inputs, test) - _recall_at_10(full, inputs, test)) < 0.02


def _dense_cooccurring(n_users: int = 50, n_items: int = 9, seed: int = 2):
    """A matrix where every pair of items co-occurs (each item also held by user 0), with text vectors."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_users, n_items)) < 0.5
    x[0] = True
    rows, cols = np.nonzero(x)
    text = rng.standard_normal((n_items, 4)).astype(np.float32)
    return build_inputs(n_users, n_items, Interactions(rows, cols, n_users, n_items), item_text=text)


@pytest.mark.parametrize("text_weight", [0.0, 3.0])
def test_sparse_ease_equals_ease_when_every_pair_cooccurs(text_weight):
    inputs = _dense_cooccurring()
    users = torch.arange(inputs.n_users)
    full = _fit(EASE, inputs, l2=2.0, text_weight=text_weight).score_all(users)
    sparse = _fit(SparseEASE, inputs, l2=2.0, k=50, text_weight=text_weight).score_all(users)
    torch.testing.assert_close(sparse, full, rtol=1e-5, atol=1e-5)


def test_sparse_ease_small_k_differs_from_ease_and_keeps_k_weights_per_item():
    # guards against k being ignored (every item solved against everything)
    inputs = _dense_cooccurring()
    model = _fit(SparseEASE, inputs, l2=2.0, k=3)
    per_target = np.bincount(model.w_indices[1].numpy(), minlength=inputs.n_items)
    assert per_target.max() == 3
    assert not (model.w_indices[0] == model.w_indices[1]).any()  # never its own neighbour
    full = _fit(EASE, inputs, l2=2.0).score_all(torch.arange(inputs.n_users))
    assert not torch.allclose(model.score_all(torch.arange(inputs.n_users)), full, atol=1e-3)


def test_top_k_neighbours_by_count_and_by_cosine():
    # co-occurrence counts of item 0 with items 1, 2, 3: 4, 2, 2; popularity of 1: 9, of 2: 2, of 3: 4
    gram = sp.csr_matrix(np.array([[5, 4, 2, 2], [4, 9, 0, 1], [2, 0, 2, 0], [2, 1, 0, 4]], dtype=np.float64))
    by_count = top_k_neighbours(gram, 2, "cooccurrence")
    assert by_count[0].tolist() == [1, 2]  # 4 first, then the tie 2 = 2 goes to the lower index
    assert by_count[2].tolist() == [0, -1]  # item 2 co-occurs with item 0 only
    by_cosine = top_k_neighbours(gram, 2, "cosine")  # 4/sqrt(45)=.596, 2/sqrt(10)=.632, 2/sqrt(20)=.447
    assert by_cosine[0].tolist() == [2, 1]


def test_sparse_ease_fold_in_is_the_trained_user_and_a_sparse_product(planted):
    inputs, _ = planted
    model = _fit(SparseEASE, inputs, l2=20.0, k=30)
    users = np.array([3, 77, 300])
    histories = sp.csr_matrix(inputs.train)[users]
    torch.testing.assert_close(model.score_histories(histories), model.score_all(torch.from_numpy(users)),
                               rtol=1e-5, atol=1e-5)


def test_sparse_ease_reports_its_estimate_before_fitting(planted):
    inputs, _ = planted
    lines: list[str] = []
    logged = build_inputs(inputs.n_users, inputs.n_items,
                          Interactions(*inputs.train.nonzero(), inputs.n_users, inputs.n_items), log=lines.append,
                          progress=True)
    _fit(SparseEASE, logged, k=30)
    assert len(lines) == 1 and "240 items" in lines[0] and "k 30" in lines[0] and "GB" in lines[0]


def test_ease_reports_items_memory_and_time_before_fitting(planted):
    inputs, _ = planted
    lines: list[str] = []
    logged = build_inputs(inputs.n_users, inputs.n_items,
                          Interactions(*inputs.train.nonzero(), inputs.n_users, inputs.n_items), log=lines.append)
    _fit(EASE, logged)
    assert len(lines) == 1
    line = lines[0]
    need, _ = ease_cost(240)
    assert "240 items" in line and f"{need / 1e9:.2f} GB" in line and " s on one core" in line, line


def test_ease_refuses_above_the_memory_cap_naming_it_and_the_scalable_model():
    # 100,000 items: 12 * 1e10 bytes = 120 GB; refused in the constructor, before anything is allocated
    with pytest.raises(ConfigError) as caught:
        EASE(10, 100_000)
    message = str(caught.value)
    assert "model.params.max_memory_gb" in message and "= 8" in message and "sparse-ease" in message
    assert "120.0 GB" in message
    assert caught.value.key == "model.params.max_memory_gb"


def test_ease_memory_cap_is_settable():
    # 3,000 items need 0.108 GB: refused under a 0.1 GB cap, accepted under 0.2
    with pytest.raises(ConfigError, match="max_memory_gb = 0.1"):
        EASE(5, 3000, EASEParams(max_memory_gb=0.1))
    EASE(5, 3000, EASEParams(max_memory_gb=0.2))
    with pytest.raises(ConfigError, match="max_memory_gb"):
        EASE(5, 10, EASEParams(max_memory_gb=0))


def test_sparse_ease_rejects_bad_params():
    for params, key in (({"k": 0}, "model.params.k"), ({"l2": 0}, "model.params.l2"),
                        ({"text_weight": -1}, "model.params.text_weight")):
        with pytest.raises(ConfigError) as caught:  # refused by the Params themselves, before any model exists
            SparseEASEParams(**params)
        assert caught.value.key == key
