"""The evaluator agrees with an independent, deliberately simple per-user implementation of the same formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.interactions import Interactions
from fusionrec.errors import ConfigError, DataError
from fusionrec.evaluation import Evaluator, popularity_segments, restrict_targets, sample_negatives

KS = (1, 3, 5, 10)
ALL = ("recall", "precision", "ndcg", "hit", "mrr", "map", "itemcoverage", "novelty")


# -- the independent implementation: one user at a time, textbook definitions ------------------------------------------
def user_metrics(ranked: list[int], targets: set[int], k: int) -> dict[str, float]:
    top = ranked[:k]
    rel = [item in targets for item in top]
    n_hit = sum(rel)
    first = rel.index(True) + 1 if n_hit else None
    dcg = sum(1 / math.log2(rank + 1) for rank, r in enumerate(rel, start=1) if r)
    idcg = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(targets), k) + 1))
    ap = sum(sum(rel[:rank]) / rank for rank, r in enumerate(rel, start=1) if r) / min(len(targets), k)
    return {"recall": n_hit / len(targets), "precision": n_hit / k, "ndcg": dcg / idcg, "hit": float(n_hit > 0),
            "mrr": 1 / first if first else 0.0, "map": ap}


def reference(scores: np.ndarray, targets: list[set[int]], excluded: list[set[int]], ks, item_pop=None,
              users: set[int] | None = None) -> dict[str, float]:
    n_users, n_items = scores.shape
    sums: dict[str, float] = {}
    covered = {k: set() for k in ks}
    n_eval = 0
    for u in range(n_users):
        if not targets[u] or (users is not None and u not in users):
            continue
        n_eval += 1
        ranked = [i for i in sorted(range(n_items), key=lambda i: -scores[u, i]) if i not in excluded[u]]
        for k in ks:
            for name, value in user_metrics(ranked, targets[u], k).items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + value
            covered[k].update(ranked[:k])
            if item_pop is not None and ranked[:k]:
                info = [-math.log2(max(item_pop[i], 1) / n_users) for i in ranked[:k]]
                sums[f"novelty@{k}"] = sums.get(f"novelty@{k}", 0.0) + sum(info) / len(info)
    out = {key: value / n_eval for key, value in sums.items()}
    out.update({f"itemcoverage@{k}": len(covered[k]) / n_items for k in ks})
    return out


# -- random problems ---------------------------------------------------------------------------------------------------
def random_problem(seed: int, n_users: int = 37, n_items: int = 23):
    """Random distinct scores, targets and excludes, with: users without targets, a user with more targets (15)
    than the largest k, a user with fewer rankable items (5) than the largest k, and targets that are also excluded
    (they count as positives but can never be ranked)."""
    rng = np.random.default_rng(seed)
    scores = np.stack([rng.permutation(n_items) for _ in range(n_users)]).astype(np.float32)
    target_rows, exclude_rows = [], []
    for u in range(n_users):
        n_t = 0 if u % 5 == 0 else int(rng.integers(1, 6))
        n_t = 15 if u == 1 else n_t
        target_rows.append(set(rng.choice(n_items, n_t, replace=False).tolist()))
        n_x = 18 if u == 2 else int(rng.integers(0, 8))
        exclude_rows.append(set(rng.choice(n_items, n_x, replace=False).tolist()))
    return scores, target_rows, exclude_rows


def to_interactions(rows: list[set[int]], n_items: int) -> Interactions:
    users = np.array([u for u, r in enumerate(rows) for _ in r], dtype=np.int64)
    items = np.array([i for r in rows for i in sorted(r)], dtype=np.int64)
    return Interactions(users, items, len(rows), n_items)


def to_csr(rows: list[set[int]], n_items: int) -> sp.csr_matrix:
    return to_interactions(rows, n_items).to_csr()


def score_fn_of(scores: np.ndarray):
    table = torch.as_tensor(scores)

    def score_all(users: torch.Tensor) -> torch.Tensor:
        assert users.dtype == torch.long  # test-internal sanity check of what the evaluator passes
        return table[users]
    return score_all


@pytest.mark.parametrize("seed, batch_users", [(0, 8), (1, 5), (2, 1024), (3, 36)])
def test_full_ranking_agrees_with_the_per_user_reference(seed, batch_users):
    scores, targets, excluded = random_problem(seed)
    n_users, n_items = scores.shape
    item_pop = np.random.default_rng(seed).integers(0, 30, size=n_items)
    ev = Evaluator(ks=KS, metrics=ALL, batch_users=batch_users)
    got = ev.evaluate(score_fn_of(scores), to_interactions(targets, n_items), to_csr(excluded, n_items),
                      item_pop=item_pop)
    want = reference(scores, targets, excluded, KS, item_pop)
    assert sorted(got) == sorted(want) == sorted(ev.keys)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_item_and_user_segments_agree_with_the_reference():
    scores, targets, excluded = random_problem(4)
    n_users, n_items = scores.shape
    item_mask = np.zeros(n_items, dtype=bool)
    item_mask[::3] = True
    user_mask = np.arange(n_users) % 2 == 1
    ev = Evaluator(ks=KS, metrics=("recall", "ndcg", "map", "itemcoverage"), batch_users=7)
    got = ev.evaluate(score_fn_of(scores), to_interactions(targets, n_items), to_csr(excluded, n_items),
                      segments={"some_items": item_mask}, user_segments={"odd_users": user_mask})
    assert set(got) == {"overall", "some_items", "odd_users"}
    seg_targets = [{i for i in t if item_mask[i]} for t in targets]
    cases = {"overall": reference(scores, targets, excluded, KS),
             "some_items": reference(scores, seg_targets, excluded, KS),
             "odd_users": reference(scores, targets, excluded, KS, users=set(np.flatnonzero(user_mask).tolist()))}
    for name, want in cases.items():
        for key, value in got[name].items():
            assert value == pytest.approx(want[key], abs=1e-6), (name, key)
    # a segment restricted to fewer users evaluates different numbers than overall
    assert got["some_items"]["recall@10"] != pytest.approx(got["overall"]["recall@10"])


def test_empty_segment_gives_nan():
    scores, targets, excluded = random_problem(5)
    ev = Evaluator(ks=(5,), metrics=("ndcg",))
    got = ev.evaluate(score_fn_of(scores), to_interactions(targets, 23), None,
                      segments={"none": np.zeros(23, dtype=bool)})
    assert math.isnan(got["none"]["ndcg@5"]) and not math.isnan(got["overall"]["ndcg@5"])


def test_oracle_scores_are_perfect_and_excluded_items_are_never_ranked():
    # planted: score = 1 for target items and 2 for excluded (non-target) items; without exclusion the excluded
    # items crowd out the targets, with it every metric that can reach 1 does
    rng = np.random.default_rng(0)
    n_users, n_items = 20, 50
    targets = [set(rng.choice(n_items, 3, replace=False).tolist()) for _ in range(n_users)]
    excluded = [set(rng.choice([i for i in range(n_items) if i not in t], 10, replace=False).tolist())
                for t in targets]
    scores = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        scores[u, list(targets[u])] = 1.0
        scores[u, list(excluded[u])] = 2.0
    ev = Evaluator(ks=(3, 10), metrics=("recall", "ndcg", "hit", "mrr", "map", "precision"))
    t = to_interactions(targets, n_items)
    good = ev.evaluate(score_fn_of(scores), t, to_csr(excluded, n_items))
    for key in ("recall@3", "ndcg@3", "hit@3", "mrr@3", "map@3", "precision@3", "ndcg@10", "recall@10"):
        assert good[key] == pytest.approx(1.0), key
    assert good["precision@10"] == pytest.approx(0.3)
    bad = ev.evaluate(score_fn_of(scores), t, None)
    assert bad["hit@3"] == 0.0 and bad["ndcg@10"] < 1.0


def test_k_larger_than_the_catalogue_pads_with_empty_slots():
    scores = np.array([[0.1, 0.9, 0.5]], dtype=np.float32)
    target = Interactions(np.array([0]), np.array([2]), 1, 3)
    got = Evaluator(ks=(2, 5), metrics=("precision", "recall", "itemcoverage")).evaluate(score_fn_of(scores), target)
    # ranking 1, 2, 0: the positive (item 2) at rank 2; precision@5 = 1/5 although only 3 items exist
    assert got == pytest.approx({"precision@2": 0.5, "precision@5": 0.2, "recall@2": 1.0, "recall@5": 1.0,
                                 "itemcoverage@2": 2 / 3, "itemcoverage@5": 1.0})


def test_popularity_segments_and_restrict_targets():
    seg = popularity_segments(np.array([5, 0, 9, 9, 1]), head_share=0.4)  # ceil(0.4 * 5) = 2 head items: 2, 3
    assert seg["head_items"].tolist() == [False, False, True, True, False]
    assert (seg["tail_items"] == ~seg["head_items"]).all()
    m = sp.csr_matrix(np.array([[1, 0, 1], [1, 1, 0]], dtype=np.float32))
    r = restrict_targets(m, item_mask=np.array([True, False, True]), user_mask=np.array([False, True]))
    assert r.toarray().tolist() == [[0, 0, 0], [1, 0, 0]]


# -- sampled mode ------------------------------------------------------------------------------------------------------
def test_sample_negatives_are_valid_deterministic_and_savable(tmp_path):
    scores, targets, excluded = random_problem(6, n_users=40, n_items=60)
    t, x = to_interactions(targets, 60), to_csr(excluded, 60)
    neg = sample_negatives(t, x, n_neg=20, seed=3)
    assert neg.shape == (40, 20) and neg.dtype == np.int64
    for u in range(40):
        if not targets[u]:
            assert (neg[u] == -1).all()
            continue
        row = set(neg[u].tolist())
        assert len(row) == 20 and not row & targets[u] and not row & excluded[u] and min(row) >= 0
    assert np.array_equal(neg, sample_negatives(t, x, n_neg=20, seed=3))
    assert not np.array_equal(neg, sample_negatives(t, x, n_neg=20, seed=4))
    np.save(tmp_path / "neg.npy", neg)
    assert np.array_equal(np.load(tmp_path / "neg.npy", allow_pickle=False), neg)


def test_sample_negatives_are_roughly_uniform():
    # 3000 users, each with target item 0 and 3 negatives from items 1..9: each item expected 3000 * 3 / 9 = 1000
    t = Interactions(np.arange(3000), np.zeros(3000, dtype=np.int64), 3000, 10)
    counts = np.bincount(sample_negatives(t, None, n_neg=3, seed=0).ravel(), minlength=10)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) < 120)


def test_sample_negatives_rejects_impossible_requests():
    t = Interactions(np.array([0, 0]), np.array([0, 1]), 1, 4)
    with pytest.raises(DataError, match="only 2 items"):
        sample_negatives(t, None, n_neg=3, seed=0)


def test_sampled_ranking_agrees_with_the_per_user_reference():
    scores, targets, excluded = random_problem(7, n_users=30, n_items=80)
    t = to_interactions(targets, 80)
    neg = sample_negatives(t, to_csr(excluded, 80), n_neg=9, seed=1)
    table = torch.as_tensor(scores)

    def score_pairs(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return table[users[:, None], items]

    ks = (1, 5, 10, 20)
    ev = Evaluator(ks=ks, metrics=("recall", "precision", "ndcg", "hit", "mrr", "map", "novelty"), batch_users=4)
    got = ev.evaluate_sampled(score_pairs, t, neg)
    # reference: rank each user's positives together with its negatives, nothing excluded
    candidates = [sorted(targets[u] | set(neg[u].tolist())) if targets[u] else [] for u in range(30)]
    masked = np.full_like(scores, -np.inf)
    for u, cand in enumerate(candidates):
        masked[u, cand] = scores[u, cand]
    outside = [set(range(80)) - set(c) for c in candidates]
    want = reference(masked, targets, outside, ks)
    assert set(got) == {f"{m}@{k}" for m in ("recall", "precision", "ndcg", "hit", "mrr", "map") for k in ks}
    for key, value in got.items():
        assert value == pytest.approx(want[key], abs=1e-6), key


def test_sampled_mode_refuses_negatives_of_another_target():
    t = Interactions(np.array([0, 1]), np.array([0, 1]), 2, 10)
    neg = sample_negatives(Interactions(np.array([0]), np.array([0]), 2, 10), None, n_neg=3, seed=0)
    with pytest.raises(DataError, match="another target"):
        Evaluator(ks=(1,)).evaluate_sampled(lambda u, i: torch.zeros(i.shape), t, neg)


# -- ratings and contract errors ---------------------------------------------------------------------------------------
def test_evaluate_ratings():
    got = Evaluator.evaluate_ratings(torch.tensor([3.0, 4.0]), np.array([4.0, 2.0]))
    # errors -1, 2: rmse sqrt((1 + 4) / 2), mae (1 + 2) / 2
    assert got == pytest.approx({"rmse": math.sqrt(2.5), "mae": 1.5})


def test_contract_errors():
    scores, targets, excluded = random_problem(8)
    t = to_interactions(targets, 23)
    ev = Evaluator(ks=(5,), metrics=("ndcg", "novelty"))
    with pytest.raises(DataError, match="item_pop"):
        ev.evaluate(score_fn_of(scores), t, None)
    ev = Evaluator(ks=(5,))
    with pytest.raises(DataError, match="shape"):
        ev.evaluate(lambda u: torch.zeros(len(u), 22), t, None)
    with pytest.raises(DataError, match="exclude"):
        ev.evaluate(score_fn_of(scores), t, sp.csr_matrix((37, 22)))
    with pytest.raises(DataError, match="NaN"):
        ev.evaluate(lambda u: torch.full((len(u), 23), float("nan")), t, None)
    with pytest.raises(DataError, match="no user"):
        ev.evaluate(score_fn_of(scores), to_interactions([set()] * 37, 23), None)
    with pytest.raises(DataError, match="bool mask"):
        ev.evaluate(score_fn_of(scores), t, None, segments={"x": np.ones(23)})
    with pytest.raises(ConfigError) as err:
        Evaluator(metrics=("ndcg", "auc"))
    assert err.value.key == "evaluation.metrics"
    with pytest.raises(ConfigError):
        Evaluator(ks=(0, 10))


def test_model_tensors_are_not_modified():
    # a score_fn may hand back the model's own tensor (here: every user in one chunk gets the whole table);
    # writing -inf for excluded items must not leak into it
    scores, _, excluded = random_problem(9)
    table = torch.as_tensor(scores.copy())
    targets = [{0}] * 37
    Evaluator(ks=(5,), batch_users=64).evaluate(lambda u: table if len(u) == 37 else table[u],
                                                to_interactions(targets, 23), to_csr(excluded, 23))
    assert torch.equal(table, torch.as_tensor(scores))
