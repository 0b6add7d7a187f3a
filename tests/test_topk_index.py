"""Top-K indexes: the exact index against a brute-force ranking, FAISS flat against exact, filters that FAISS cannot
apply inside its search (seen items, candidates, excluded items) never leaking, and items added after building."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.errors import ConfigError, FusionrecError
from fusionrec.serving import topk_index
from fusionrec.serving.topk_index import ExactIndex, make_index

pytestmark = pytest.mark.usefixtures("one_thread")
faiss = pytest.importorskip("faiss")
FAISS_KINDS = ["faiss-flat", "faiss-ivf", "faiss-hnsw"]


def data(n_items=500, n_queries=40, d=16, seed=0):
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n_items, d)).astype(np.float32)
    queries = rng.standard_normal((n_queries, d)).astype(np.float32)
    # query r has seen 30 + r items (at most a quarter of them), many among its best: a filter that leaks shows up at once
    rows, cols = [], []
    for r in range(n_queries):
        n_seen = min(30 + r, n_items // 4)
        best = np.argsort(-(items @ queries[r]))[: 2 * n_seen]
        cols += rng.choice(best, n_seen, replace=False).tolist()
        rows += [r] * n_seen
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_queries, n_items))
    return items, queries, seen


def brute_force(items, queries, k, seen=None, allowed=None):
    scores = queries @ items.T
    if seen is not None:
        scores[seen.toarray() > 0] = -np.inf
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_exact_index_matches_brute_force_with_seen_and_allowed():
    items, queries, seen = data()
    allowed = np.ones(len(items), bool)
    allowed[::7] = False
    index = ExactIndex(items)
    scores, got = index.search(queries, 10, seen, allowed)
    np.testing.assert_array_equal(got, brute_force(items, queries, 10, seen, allowed))
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ items.T, got, 1), rtol=1e-5)


def test_exact_index_chunks_queries_without_changing_the_answer(monkeypatch):
    items, queries, seen = data()
    expected = ExactIndex(items).search(queries, 5, seen)[1]
    monkeypatch.setattr(topk_index, "_CHUNK_SCORES", 3 * len(items))  # 3 queries per product
    np.testing.assert_array_equal(ExactIndex(items).search(queries, 5, seen)[1], expected)


def test_fewer_eligible_items_than_k_pads_with_minus_one():
    items, queries, _ = data(n_items=20, n_queries=2)
    allowed = np.zeros(20, bool)
    allowed[[3, 8, 11]] = True
    for index in (ExactIndex(items), make_index("faiss-flat", items)):
        scores, got = index.search(queries, 5, None, allowed)
        assert set(got[0, :3]) == {3, 8, 11} and (got[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


def test_faiss_flat_equals_exact_with_seen_items_excluded():
    items, queries, seen = data()
    exact = ExactIndex(items).search(queries, 10, seen)
    flat = make_index("faiss-flat", items).search(queries, 10, seen)
    np.testing.assert_array_equal(flat[1], exact[1])
    np.testing.assert_allclose(flat[0], exact[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", FAISS_KINDS)
def test_faiss_never_returns_seen_or_disallowed_items(kind):
    # the seen items are mostly each query's best, so a first fetch of k + |seen| is often short and must re-query
    items, queries, seen = data()
    allowed = np.ones(len(items), bool)
    allowed[np.argsort(-(items @ queries.mean(0)))[:60]] = False  # globally excluded: many of everyone's best
    scores, got = make_index(kind, items).search(queries, 20, seen, allowed)
    dense_seen = seen.toarray() > 0
    for r in range(len(queries)):
        hits = got[r][got[r] >= 0]
        assert len(hits) == 20 and len(set(hits)) == 20
        assert not dense_seen[r, hits].any() and allowed[hits].all()
        assert (np.diff(scores[r]) <= 1e-5).all()  # best first


@pytest.mark.parametrize("kind", ["exact", *FAISS_KINDS])
def test_added_items_are_found(kind):
    items, queries, _ = data(n_items=300)
    index = make_index(kind, items)
    extra = 10 * queries[:3]  # each new item is the best match of one query by far
    index.add(extra)
    assert len(index) == 303 and index.vectors.shape == (303, items.shape[1])
    _, got = index.search(queries[:3], 1)
    np.testing.assert_array_equal(got[:, 0], [300, 301, 302])


def test_candidates_with_faiss_rank_exactly_over_the_candidates():
    items, queries, seen = data()
    allowed = np.zeros(len(items), bool)
    allowed[np.arange(0, len(items), 3)] = True
    got = make_index("faiss-hnsw", items).search(queries, 10, seen, allowed)[1]
    np.testing.assert_array_equal(got, brute_force(items, queries, 10, seen, allowed))


def test_auto_is_exact_for_small_catalogues_and_unknown_kinds_are_config_errors():
    items, _, _ = data(n_items=50)
    assert make_index("auto", items).kind == "exact"
    with pytest.raises(ConfigError, match="unknown index 'annoy'"):
        make_index("annoy", items)


def test_missing_faiss_is_a_clear_error_and_auto_falls_back(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)
    items, _, _ = data(n_items=50)
    with pytest.raises(FusionrecError, match=r"needs FAISS.*pip install 'fusionrec\[faiss\]'"):
        make_index("faiss-hnsw", items)
    monkeypatch.setattr(topk_index, "AUTO_EXACT_MAX_ITEMS", 10)
    assert make_index("auto", items).kind == "exact"


def test_torch_queries_are_accepted():
    items, queries, _ = data(n_items=50, n_queries=3)
    a = ExactIndex(items).search(torch.from_numpy(queries), 4)[1]
    np.testing.assert_array_equal(a, brute_force(items, queries, 4))


def test_hnsw_options_reach_the_index_and_bad_ones_are_config_errors():
    items, _, _ = data(n_items=50)
    index = make_index("faiss-hnsw", items, hnsw_m=8, ef_search=33)
    assert index.index.hnsw.nb_neighbors(1) == 8 and index.index.hnsw.efSearch == 33
    default = make_index("faiss-hnsw", items)  # kept alive: .index.hnsw points into it
    hnsw = default.index.hnsw
    assert (hnsw.nb_neighbors(1), hnsw.efSearch, hnsw.efConstruction) == (
        topk_index.HNSW_M, topk_index.HNSW_EF_SEARCH, topk_index.HNSW_EF_CONSTRUCTION)
    with pytest.raises(ConfigError, match="'ef_search': ef_search must be an integer >= 1, not 0"):
        make_index("faiss-hnsw", items, ef_search=0)
