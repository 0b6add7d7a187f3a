"""FusionRec's cold scale chosen on validation (``cold_warm_tolerance``): the rule by hand, that the scale is what
the borrowed cold items' scores scale by, and, on planted clusters, that the choice gives new items the most exposure
the warm items' accuracy can afford."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import TrainingConfig
from fusionrec.data.synthetic import make_synthetic
from fusionrec.errors import ConfigError
from fusionrec.evaluation.evaluator import Evaluator
from fusionrec.jobs.experiment import choose_on_validation
from fusionrec.models.fusionrec import FusionRec, FusionRecParams
from fusionrec.models.fusionrec_choices import COLD_METRIC, WARM_METRIC, pick_cold_scale
from fusionrec.training import Trainer, build_inputs, seed_everything

pytestmark = pytest.mark.usefixtures("one_thread")

N_CLUSTERS, TEXT_DIM = 4, 16


def test_the_rule_keeps_the_warm_lists_within_the_tolerance_and_takes_the_most_cold_recall():
    grid = [{"cold_scale": s} for s in (1.0, 0.0, 0.5, 2.0, 4.0)]
    scores = [{WARM_METRIC: w, COLD_METRIC: c} for w, c in
              ((.295, .20), (.300, .00), (.299, .10), (.290, .30), (.250, .40))]
    assert pick_cold_scale(grid, scores, 0.02) == 0  # .295 >= .294; 2.0's .290 is not
    assert pick_cold_scale(grid, scores, 0.0) == 1  # nothing may cost warm accuracy: scale 0
    assert pick_cold_scale(grid, scores, 0.05) == 3
    assert pick_cold_scale(grid, scores, 1.0) == 4  # any cost allowed: the most cold recall
    ties = [{WARM_METRIC: .3, COLD_METRIC: c} for c in (.2, .0, .2, .2, .1)]
    assert pick_cold_scale(grid, ties, 0.5) == 2  # equal cold recall: the smaller scale


@pytest.mark.parametrize("params", [{"cold_warm_tolerance": 0.02},  # the content path has no scale to choose
                                    {"cold_warm_tolerance": 0.02, "cold_path": "neighbours", "item_item": True},
                                    {"cold_warm_tolerance": 1.5, "cold_path": "neighbours"}])
def test_the_tolerance_needs_the_neighbours_path_alone(params):
    with pytest.raises(ConfigError) as err:
        FusionRecParams(**params)
    assert err.value.key == "model.params.cold_warm_tolerance"


@pytest.fixture(scope="module")
def planted():
    """Clustered users and items, text that reveals an item's cluster, 8 items (2 a cluster) without training
    interactions; validation = every interaction with those items plus one held-out warm item a user."""
    syn = make_synthetic(n_users=120, n_items=200, n_clusters=N_CLUSTERS, interactions_per_user=15, seed=5)
    ds = syn.dataset
    rng = np.random.default_rng(1)
    text = np.eye(N_CLUSTERS, TEXT_DIM)[syn.item_cluster] + 0.3 * rng.standard_normal((ds.n_items, TEXT_DIM))
    cold = np.concatenate([np.flatnonzero(syn.item_cluster == c)[:2] for c in range(N_CLUSTERS)])
    inter = ds.interactions
    is_cold = np.isin(inter.items, cold)
    warm_rows = np.flatnonzero(~is_cold)
    first_warm = warm_rows[np.unique(inter.users[warm_rows], return_index=True)[1]]  # one warm row a user
    valid_rows = np.union1d(np.flatnonzero(is_cold), first_warm)
    train = inter.take(np.setdiff1d(np.arange(len(inter.users)), valid_rows))
    inputs = build_inputs(ds.n_users, ds.n_items, train, item_text=text.astype(np.float32),
                          item_text_mask=np.ones(ds.n_items, dtype=bool))
    cold_mask = np.zeros(ds.n_items, dtype=bool)
    cold_mask[cold] = True
    seed_everything(0)
    m = FusionRec.from_inputs(inputs, FusionRecParams(embedding_size=16, use_kg=False, fusion="gate",
                                                      source_dropout=0.0, similarity="cosine",
                                                      cold_path="neighbours", cold_neighbours=3,
                                                      cold_warm_tolerance=0.1))
    m.prepare(inputs)
    cfg = TrainingConfig(epochs=30, batch_size=64, lr=0.02, neg_samples=2, patience=0, progress=False,
                         neg_pool="trained")
    Trainer(cfg, seed=0).fit(m.train(), inputs)
    m.eval()
    evaluator = Evaluator(ks=(10, 20), metrics=("recall", "ndcg"))

    def validate(model) -> dict:
        result = evaluator.evaluate(model.score_all, inter.take(valid_rows), inputs.train,
                                    segments={"cold_items": cold_mask, "warm_items": ~cold_mask})
        return {**result["overall"], **{f"{seg}/{k}": v for seg in ("cold_items", "warm_items")
                                        for k, v in result[seg].items()}}
    return m, validate, cold


def test_the_scale_multiplies_the_cold_items_scores_and_zero_silences_them(planted):
    m, _, cold = planted
    grid = m.validation_grid()
    assert grid[0] == {"cold_scale": m.params.cold_scale} and {"cold_scale": 0.0} in grid and len(grid) > 5
    users = torch.arange(20)
    with torch.no_grad():
        m.choose({"cold_scale": 1.0})
        one = m.score_all(users)[:, cold]
        m.choose({"cold_scale": 3.0})
        three = m.score_all(users)[:, cold]
        m.choose({"cold_scale": 0.0})
        zero = m.score_all(users)[:, cold]
    assert torch.allclose(three, 3 * one, atol=1e-5) and torch.count_nonzero(zero) == 0
    assert m.chosen() == {"cold_scale": 0.0}


def test_chosen_on_validation_the_most_cold_recall_the_warm_lists_afford(planted):
    """Tolerance .1 (the fixture's): the borrowed vectors place new items with their cluster, so the room the warm
    lists can spare finds them, against the control of scale 0 (every cold item scored 0, under the warm items the
    users are shown); a tolerance of .02 on the same figures buys less of it."""
    m, validate, _ = planted
    record = choose_on_validation(m, validate, "recall@20", log=lambda _: None)
    tried = {t["setting"]["cold_scale"]: t for t in record["tried"]}
    reference = tried[0.0][WARM_METRIC]
    chosen = record["chosen"]["cold_scale"]
    assert m.chosen() == {"cold_scale": chosen}
    assert tried[chosen][WARM_METRIC] >= 0.9 * reference
    affordable = [t[COLD_METRIC] for t in tried.values() if t[WARM_METRIC] >= 0.9 * reference]
    assert tried[chosen][COLD_METRIC] == max(affordable)
    assert tried[chosen][COLD_METRIC] > tried[0.0][COLD_METRIC] + 0.2
    assert max(t[COLD_METRIC] for t in tried.values()) > tried[chosen][COLD_METRIC]  # more was there, at a price
    grid = [t["setting"] for t in record["tried"]]
    strict = record["tried"][pick_cold_scale(grid, record["tried"], 0.02)]
    assert strict[WARM_METRIC] >= 0.98 * reference and strict[COLD_METRIC] <= tried[chosen][COLD_METRIC]
