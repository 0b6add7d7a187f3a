"""Metric functions against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusionrec.errors import DataError
from fusionrec.evaluation.metrics import (hit_at_k, item_coverage, mae, map_at_k, mrr_at_k, ndcg_at_k,
                                          novelty_per_user, precision_at_k, recall_at_k, recommended_mask, rmse,
                                          self_information)

# user 0: positives at ranks 1 and 3, 2 positives in all
# user 1: one positive at rank 4, 5 positives in all (more than max_k = 4)
# user 2: no positive in the top 4, 1 positive in all
HITS = np.array([[1, 0, 1, 0],
                 [0, 0, 0, 1],
                 [0, 0, 0, 0]], dtype=bool)
N_POS = np.array([2, 5, 1])
L2, L3, L4, L5 = (1 / math.log2(x) for x in (2, 3, 4, 5))  # 1, 0.6309, 0.5, 0.4307: the discounts of ranks 1..4


def test_hit():
    assert hit_at_k(HITS, N_POS).tolist() == [[1, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]


def test_recall_divides_by_all_positives():
    # user 0: 1/2, 1/2, 2/2, 2/2; user 1: 1/5 at k=4 (not 1/4: recall does not cap n_pos at k)
    np.testing.assert_allclose(recall_at_k(HITS, N_POS), [[.5, .5, 1, 1], [0, 0, 0, .2], [0, 0, 0, 0]])


def test_precision_divides_by_k():
    # user 0: 1/1, 1/2, 2/3, 2/4; user 1: 1/4 at k=4
    np.testing.assert_allclose(precision_at_k(HITS, N_POS), [[1, .5, 2 / 3, .5], [0, 0, 0, .25], [0, 0, 0, 0]])


def test_mrr_uses_the_first_hit_only():
    # user 0: first hit at rank 1 -> 1 (the second hit adds nothing); user 1: first hit at rank 4 -> 1/4 from k=4
    np.testing.assert_allclose(mrr_at_k(HITS, N_POS), [[1, 1, 1, 1], [0, 0, 0, .25], [0, 0, 0, 0]])


def test_ndcg_ideal_uses_min_of_positives_and_k():
    # user 0: DCG = 1 (rank 1) then + 1/log2(4) = 0.5 at rank 3 -> 1, 1, 1.5, 1.5;
    #         IDCG: k=1 -> 1 ideal hit = 1; k>=2 -> min(2, k) = 2 ideal hits = 1 + 1/log2(3)
    # user 1: DCG@4 = 1/log2(5); IDCG@4 = min(5, 4) = 4 ideal hits = 1 + 1/log2(3) + 1/2 + 1/log2(5)
    idcg2 = L2 + L3
    expected = [[1, 1 / idcg2, 1.5 / idcg2, 1.5 / idcg2],
                [0, 0, 0, L5 / (L2 + L3 + L4 + L5)],
                [0, 0, 0, 0]]
    np.testing.assert_allclose(ndcg_at_k(HITS, N_POS), expected)
    assert abs(expected[0][1] - 0.6131471927654584) < 1e-12  # 1 / 1.6309297535714575


def test_map_divides_by_min_of_positives_and_k():
    # user 0: precision at the hit ranks: P@1 = 1, P@3 = 2/3; sums 1, 1, 5/3, 5/3 over min(2, k) = 1, 2, 2, 2
    # user 1: P@4 = 1/4 at its hit; divided by min(5, 4) = 4 -> 1/16 (the textbook /n_pos would give 1/20)
    np.testing.assert_allclose(map_at_k(HITS, N_POS), [[1, .5, 5 / 6, 5 / 6], [0, 0, 0, 1 / 16], [0, 0, 0, 0]])


def test_perfect_ranking_scores_one_everywhere_but_recall_and_precision_follow_counts():
    hits = np.array([[1, 1, 1]], dtype=bool)
    n_pos = np.array([3])
    for fn in (hit_at_k, mrr_at_k, ndcg_at_k, map_at_k, precision_at_k):
        np.testing.assert_allclose(fn(hits, n_pos), [[1, 1, 1]])
    np.testing.assert_allclose(recall_at_k(hits, n_pos), [[1 / 3, 2 / 3, 1]])


def test_bad_inputs_are_data_errors():
    with pytest.raises(DataError, match="bool"):
        recall_at_k(HITS.astype(int), N_POS)
    with pytest.raises(DataError, match="n_pos"):
        recall_at_k(HITS, N_POS[:2])
    with pytest.raises(DataError, match="at least one"):
        ndcg_at_k(HITS, np.array([2, 0, 1]))


def test_item_coverage():
    top = np.array([[0, 1, 2], [0, 3, -1]])  # -1: an empty slot (nothing rankable left)
    # k=2: items {0, 1, 3} of 10 -> 0.3; k=3: {0, 1, 2, 3} -> 0.4
    assert item_coverage(top, 10, 2) == pytest.approx(0.3)
    assert item_coverage(top, 10, 3) == pytest.approx(0.4)
    assert recommended_mask(top, 5, 3).tolist() == [True, True, True, True, False]


def test_novelty_clips_popularity_at_one():
    pop = np.array([4, 1, 0, 2])  # training users per item, 8 users in all
    # self-information -log2(pop / 8): 1, 3, (pop 0 clipped to 1) 3, 2
    np.testing.assert_allclose(self_information(pop, 8), [1, 3, 3, 2])
    top = np.array([[0, 1], [2, -1], [3, 0]])
    # user 0: mean(1, 3) = 2; user 1: only one filled slot -> 3; user 2: mean(2, 1) = 1.5; at k=1: 1, 3, 2
    np.testing.assert_allclose(novelty_per_user(top, self_information(pop, 8), 2), [2, 3, 1.5])
    np.testing.assert_allclose(novelty_per_user(top, self_information(pop, 8), 1), [1, 3, 2])


def test_rmse_and_mae():
    pred, true = np.array([1.0, 2.0, 3.0]), np.array([1.0, 4.0, 0.0])
    # errors 0, -2, 3: squared mean (0 + 4 + 9) / 3 = 13/3; absolute mean (0 + 2 + 3) / 3 = 5/3
    assert rmse(pred, true) == pytest.approx(math.sqrt(13 / 3))
    assert mae(pred, true) == pytest.approx(5 / 3)
    with pytest.raises(DataError, match="same length"):
        rmse(pred, true[:2])
    with pytest.raises(DataError, match="finite"):
        mae(np.array([np.nan]), np.array([1.0]))
