"""The trainer: early stopping restores the best weights, the time budget, NaN detection, both losses learn, term
weights, validation in eval mode, untrainable models; and build_inputs' shape checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from fusionrec.config import TrainingConfig
from fusionrec.data import Interactions
from fusionrec.errors import ConfigError, DataError
from fusionrec.models import Batch, ForwardOut, Model, get_model_class
from fusionrec.training import NonFiniteLossError, Trainer, build_inputs, seed_everything

N_USERS, N_ITEMS = 20, 16
CFG = TrainingConfig(epochs=30, batch_size=32, lr=0.05, patience=0, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds contention


@pytest.fixture(scope="module")
def inputs():
    """Two groups: users 0-9 like items 0-7, users 10-19 like items 8-15 (6 of the 8 each)."""
    rng = np.random.default_rng(3)
    users, items = [], []
    for u in range(N_USERS):
        own = np.arange(8) + 8 * (u // 10)
        picked = rng.choice(own, 6, replace=False)
        users += [u] * 6
        items += picked.tolist()
    return build_inputs(N_USERS, N_ITEMS, Interactions(np.array(users), np.array(items), N_USERS, N_ITEMS))


def bpr():
    seed_everything(0)
    return get_model_class("bpr")(N_USERS, N_ITEMS)


class Scripted:
    """A validate callback returning scripted scores and recording a copy of the weights it saw."""

    def __init__(self, scores):
        self.scores, self.calls, self.snapshots, self.modes = list(scores), 0, [], []

    def __call__(self, model):
        self.modes.append((model.training, torch.is_grad_enabled()))
        self.snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        score = self.scores[self.calls]
        self.calls += 1
        return {"ndcg@10": score, "recall@10": 0.0}


def test_early_stopping_restores_the_best_weights(inputs):
    validate = Scripted([0.1, 0.5, 0.3, 0.2, 0.9, 0.9])
    model = bpr()
    result = Trainer(dataclasses.replace(CFG, patience=2), seed=0).fit(model, inputs, validate)
    assert result.stopped_by == "early_stopping"
    assert (result.best_epoch, result.best_score, result.epochs_run, validate.calls) == (2, 0.5, 4, 4)
    best, last = validate.snapshots[1], validate.snapshots[3]
    state = model.state_dict()
    assert all(torch.equal(state[k], best[k]) for k in best)
    assert not all(torch.equal(state[k], last[k]) for k in last)  # the restore actually changed something
    assert [h.valid is not None for h in result.history] == [True] * 4
    assert result.history[1].valid["ndcg@10"] == 0.5
    assert not model.training


def test_validation_runs_in_eval_mode_without_grad_every_eval_every_epochs(inputs):
    validate = Scripted([0.1] * 10)
    result = Trainer(dataclasses.replace(CFG, epochs=7, eval_every=3), seed=0).fit(bpr(), inputs, validate)
    assert [h.epoch for h in result.history if h.valid is not None] == [3, 6, 7]  # and the last epoch
    assert validate.modes == [(False, False)] * 3
    assert result.stopped_by == "max_epochs" and result.epochs_run == 7


def test_time_budget_stops_training_and_keeps_the_best(inputs):
    now = [0.0]

    def validate(model):  # each validation "takes" 10 s on the fake clock
        now[0] += 10.0
        return {"ndcg@10": [0.2, 0.4, 0.3, 0.1][int(now[0] // 10) - 1]}

    trainer = Trainer(dataclasses.replace(CFG, epochs=100, time_budget_s=25.0), seed=0, clock=lambda: now[0])
    result = trainer.fit(bpr(), inputs, validate)
    assert result.stopped_by == "time_budget"
    assert result.epochs_run == 3 and (result.best_epoch, result.best_score) == (2, 0.4)


def test_time_budget_already_spent_mid_epoch_stops_after_one_batch(inputs):
    ticks = iter(range(1000))
    cfg = dataclasses.replace(CFG, epochs=100, batch_size=8, time_budget_s=3.0)
    result = Trainer(cfg, seed=0, clock=lambda: float(next(ticks))).fit(bpr(), inputs)
    assert result.stopped_by == "time_budget" and result.epochs_run == 1
    assert result.best_epoch == 1 and result.best_score is None  # no validation: the last weights are kept


class Broken(Model):
    """A trainable toy whose 'kg' term (or the scores) turns NaN from a given step."""

    name = "broken"

    def __init__(self, n_users, n_items, params=None, bad="kg", after=0):
        super().__init__(n_users, n_items, params)
        self.emb = nn.Parameter(torch.zeros(n_items))
        self.bad, self.after, self.steps = bad, after, 0

    def forward(self, batch: Batch) -> ForwardOut:
        self.steps += 1
        poison = torch.tensor(float("nan")) if self.steps > self.after else torch.tensor(0.0)
        pos, neg = self.emb[batch.pos], self.emb[batch.neg]
        if self.bad == "rec":
            pos = pos + poison
        return ForwardOut(pos, neg, {"kg": (self.emb.sum() * 0 + poison) if self.bad == "kg" else self.emb.sum() * 0})

    def score_all(self, users):
        return self.emb.expand(len(users), -1).clone()


@pytest.mark.parametrize("bad", ["kg", "rec"])
def test_non_finite_loss_names_the_term_and_epoch(inputs, bad):
    model = Broken(N_USERS, N_ITEMS, bad=bad, after=3)  # 120 pairs / 32 = 4 batches: batch 4 of epoch 1
    with pytest.raises(NonFiniteLossError, match=rf"'{bad}' is nan at epoch 1, batch 4"):
        Trainer(CFG, seed=0).fit(model, inputs)
    model = Broken(N_USERS, N_ITEMS, bad=bad, after=5)  # step 6 = batch 2 of epoch 2
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 2"):
        Trainer(CFG, seed=0).fit(model, inputs)
    assert torch.isfinite(model.emb).all()  # the poisoned step never reached the weights


@pytest.mark.parametrize("loss", ["bpr", "bce"])
def test_both_losses_reduce_the_loss(inputs, loss):
    result = Trainer(dataclasses.replace(CFG, loss=loss, neg_samples=3), seed=0).fit(bpr(), inputs)
    first, last = result.history[0].losses["rec"], result.history[-1].losses["rec"]
    assert first < np.log(2) + 0.01  # xavier-small scores start near sigmoid(0) = 0.5, the loss near log 2
    assert last < 0.5 * first, (first, last)


def test_softmax_loss_learns(inputs):
    result = Trainer(dataclasses.replace(CFG, loss="softmax", neg_samples=3, temperature=0.5), seed=0).fit(bpr(),
                                                                                                       inputs)
    first, last = result.history[0].losses["rec"], result.history[-1].losses["rec"]
    assert first < np.log(4) + 0.05  # near-zero scores: the positive is one of 4 equally likely candidates
    assert last < 0.5 * first, (first, last)


def test_full_softmax_loss_by_hand():
    from fusionrec.training.losses import full_softmax_loss
    scores = torch.tensor([[2.0, 1.0, 3.0], [0.0, 0.0, -1.0]])
    pos = torch.tensor([2.0, 0.0])  # item 2 of user 0, item 0 of user 1
    t = 0.5
    expected = np.mean([np.log(np.exp(scores[r].numpy() / t).sum()) - float(pos[r]) / t for r in range(2)])
    assert float(full_softmax_loss(pos, scores, t)) == pytest.approx(expected, rel=1e-6)


def test_full_softmax_needs_a_model_that_scores_the_catalogue(inputs):
    cfg = dataclasses.replace(CFG, loss="full_softmax")
    result = Trainer(cfg, seed=0).fit(bpr(), inputs)  # bpr scores the catalogue: it learns
    assert result.history[-1].losses["rec"] < 0.8 * result.history[0].losses["rec"]

    class PairsOnly(Model):
        name = "pairs-only"

        def __init__(self):
            super().__init__(N_USERS, N_ITEMS)
            self.emb = nn.Parameter(torch.zeros(N_ITEMS))

        def forward(self, batch):
            return ForwardOut(self.emb[batch.pos], self.emb[batch.neg])

    with pytest.raises(ConfigError, match="full_softmax"):
        Trainer(cfg, seed=0).fit(PairsOnly(), inputs)


def test_softmax_loss_by_hand_and_its_temperature():
    from fusionrec.training.losses import softmax_loss
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([[1.0, 3.0], [0.0, -1.0]])

    def ce(p, ns, t):
        z = np.array([p, *ns]) / t
        return float(np.log(np.exp(z).sum()) - z[0])

    for t in (1.0, 0.2):
        expected = (ce(2, [1, 3], t) + ce(0, [0, -1], t)) / 2
        assert float(softmax_loss(pos, neg, t)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ConfigError, match="temperature"):
        Trainer(dataclasses.replace(CFG, loss="softmax", temperature=0.0), seed=0)


def test_bce_and_bpr_losses_by_hand():
    from fusionrec.training.losses import bce_loss, bpr_loss
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([[1.0, 3.0], [0.0, -1.0]])
    sp = lambda x: float(np.log1p(np.exp(x)))  # softplus: -log sigmoid(-x)
    # bpr: mean over the 4 pairs of softplus(neg - pos)
    assert float(bpr_loss(pos, neg)) == pytest.approx((sp(-1) + sp(1) + sp(0) + sp(-1)) / 4, rel=1e-6)
    # bce: positives as 1 cost softplus(-pos); negatives as 0 cost softplus(neg); mean over 6 scores
    expected = (sp(-2) + sp(0) + sp(1) + sp(3) + sp(0) + sp(-1)) / 6
    assert float(bce_loss(pos, neg)) == pytest.approx(expected, rel=1e-6)


def test_term_weights_scale_the_extra_terms(inputs):
    def fit(weights):
        seed_everything(0)
        model = get_model_class("lightgcn")(N_USERS, N_ITEMS)
        cfg = dataclasses.replace(CFG, epochs=2, term_weights=weights)
        return Trainer(cfg, seed=0).fit(model, inputs).history[0].losses

    zero, two = fit({"reg": 0.0}), fit({"reg": 2.0})
    assert zero["loss"] == pytest.approx(zero["rec"], rel=1e-6) and zero["reg"] > 0
    assert two["loss"] == pytest.approx(two["rec"] + 2 * two["reg"], rel=1e-5)


class WithKG(Model):
    """BPR-like toy with an entity table and a KG loss; records the triple batches and the epoch_end calls."""

    name = "with_kg"
    uses_kg_loss = True

    def __init__(self, n_users, n_items, n_entities):
        super().__init__(n_users, n_items)
        self.user = nn.Parameter(torch.randn(n_users, 4) * 0.1)
        self.item = nn.Parameter(torch.randn(n_items, 4) * 0.1)
        self.entity = nn.Parameter(torch.randn(n_entities, 4) * 0.1)
        self.seen_batches, self.epochs_ended = [], []

    def forward(self, batch):
        u = self.user[batch.users]
        return ForwardOut((u * self.item[batch.pos]).sum(-1), (u.unsqueeze(1) * self.item[batch.neg]).sum(-1))

    def kg_terms(self, heads, relations, tails, neg_tails):
        self.seen_batches.append((heads, relations, tails, neg_tails))
        pos = (self.entity[heads] * self.entity[tails]).sum(-1)
        neg = (self.entity[heads].unsqueeze(1) * self.entity[neg_tails]).sum(-1)
        return {"kg": -torch.nn.functional.logsigmoid(pos.unsqueeze(1) - neg).mean()}

    def epoch_end(self, epoch):
        self.epochs_ended.append(epoch)

    def score_all(self, users):
        return self.user[users] @ self.item.T


def kg_inputs(inputs):
    """The module's inputs plus a small graph: entity e links item e; relation 0 joins each group's items in a chain."""
    from fusionrec.data import IdMap, KnowledgeGraph
    triples = [(f"e{i}", "next", f"e{i + 1}") for i in range(N_ITEMS - 1) if (i + 1) % 8]
    kg = KnowledgeGraph.from_raw(triples, {str(i): f"e{i}" for i in range(N_ITEMS)}, IdMap("item", range(N_ITEMS)))
    return dataclasses.replace(inputs, kg=kg)


@pytest.mark.parametrize("mode", ["joint", "alternating"])
def test_kg_batches_hold_true_triples_and_only_false_negatives(inputs, mode):
    inputs = kg_inputs(inputs)
    model = WithKG(N_USERS, N_ITEMS, inputs.kg.n_entities)
    cfg = dataclasses.replace(CFG, epochs=3, kg_mode=mode, kg_batch_size=5, kg_neg_samples=3, kg_alpha=0.5)
    result = Trainer(cfg, seed=0).fit(model, inputs)
    true = {tuple(t) for t in inputs.kg.triples.tolist()}
    n_triples = len(true)  # 14
    assert model.epochs_ended == [1, 2, 3]
    drawn = [(int(h), int(r), int(t)) for hs, rs, ts, _ in model.seen_batches for h, r, t in zip(hs, rs, ts)]
    assert set(drawn) <= true
    for hs, rs, _, negs in model.seen_batches:
        assert negs.shape == (len(hs), 3)
        assert not any((int(h), int(r), int(t)) in true for h, r, row in zip(hs, rs, negs) for t in row)
    if mode == "joint":  # one triple batch per recommendation step: 120 pairs / 32 = 4 steps per epoch
        assert len(model.seen_batches) == 3 * 4
        losses = result.history[0].losses
        assert losses["loss"] == pytest.approx(losses["rec"] + 0.5 * losses["kg"], rel=1e-5)
    else:  # a full pass over the 14 triples after each epoch, in batches of 5
        assert len(model.seen_batches) == 3 * 3 and len(drawn) == 3 * n_triples
        assert set(drawn) == true
        losses = result.history[0].losses
        assert losses["kg_loss"] == pytest.approx(0.5 * losses["kg"], rel=1e-5) and "rec" in losses


def test_alternating_kg_steps_per_epoch_caps_each_pass_and_the_stream_still_visits_every_triple(inputs):
    inputs = kg_inputs(inputs)
    model = WithKG(N_USERS, N_ITEMS, inputs.kg.n_entities)
    # 14 triples in batches of 5: a full pass is 3 steps; capped at 1 step per epoch, 6 epochs make two passes
    cfg = dataclasses.replace(CFG, epochs=6, kg_mode="alternating", kg_batch_size=5, kg_steps_per_epoch=1)
    Trainer(cfg, seed=0).fit(model, inputs)
    assert len(model.seen_batches) == 6  # one KG step after each epoch, not three
    drawn = [(int(h), int(r), int(t)) for hs, rs, ts, _ in model.seen_batches for h, r, t in zip(hs, rs, ts)]
    assert set(drawn) == {tuple(t) for t in inputs.kg.triples.tolist()}  # the stream went on across epochs


def test_kg_loss_is_skipped_without_a_graph(inputs):
    model = WithKG(N_USERS, N_ITEMS, 4)
    result = Trainer(dataclasses.replace(CFG, epochs=2), seed=0).fit(model, inputs)  # inputs.kg is None
    assert model.seen_batches == [] and "kg" not in result.history[0].losses


def test_same_seed_same_history(inputs):
    a = Trainer(dataclasses.replace(CFG, epochs=3), seed=5).fit(bpr(), inputs)
    b = Trainer(dataclasses.replace(CFG, epochs=3), seed=5).fit(bpr(), inputs)
    assert [h.losses for h in a.history] == [h.losses for h in b.history]


def test_untrainable_model_is_prepared_and_validated_once(inputs):
    validate = Scripted([0.3])
    model = get_model_class("pop")(N_USERS, N_ITEMS)
    result = Trainer(CFG, seed=0).fit(model, inputs, validate)
    assert (result.stopped_by, result.epochs_run, result.best_score, validate.calls) == ("not_trainable", 0, 0.3, 1)
    assert validate.modes == [(False, False)]
    assert model.counts.sum() == inputs.train.nnz


def test_missing_valid_metric_is_a_config_error(inputs):
    with pytest.raises(ConfigError, match="training.valid_metric.*recall@10"):
        Trainer(dataclasses.replace(CFG, valid_metric="mrr@5"), seed=0).fit(bpr(), inputs, Scripted([0.1]))


def test_valid_metric_name_is_case_insensitive(inputs):
    result = Trainer(dataclasses.replace(CFG, epochs=1, valid_metric="NDCG@10"), seed=0).fit(
        bpr(), inputs, Scripted([0.7]))
    assert result.best_score == 0.7


@pytest.mark.parametrize("key,value", [("batch_size", 0), ("neg_samples", 0), ("lr", 0.0), ("eval_every", 0)])
def test_out_of_range_training_config(key, value):
    with pytest.raises(ConfigError, match=f"training.{key}"):
        Trainer(dataclasses.replace(CFG, **{key: value}), seed=0)


def test_build_inputs_checks_shapes():
    train = Interactions(np.array([0, 1, 1]), np.array([2, 0, 2]), 2, 3)
    got = build_inputs(4, 5, train)  # a larger catalogue is fine: the matrix grows
    assert got.train.shape == (4, 5) and got.train.nnz == 3 and got.item_text is None
    with pytest.raises(DataError, match="larger than"):
        build_inputs(1, 3, train)
    with pytest.raises(DataError, match=r"\(3, d\)"):
        build_inputs(2, 3, train, item_text=np.zeros((4, 2)))
    with pytest.raises(DataError, match="NaN"):
        build_inputs(2, 3, train, item_text=np.full((3, 2), np.nan))
    text = build_inputs(2, 3, train, item_text=np.ones((3, 2)), item_text_mask=np.array([True, False, True]))
    assert text.item_text.dtype == torch.float32 and text.item_text_mask.tolist() == [True, False, True]


def test_build_inputs_counts_a_repeated_pair_once():
    train = Interactions(np.array([0, 0, 0]), np.array([1, 1, 2]), 1, 3)
    assert build_inputs(1, 3, train).train.toarray().tolist() == [[0.0, 1.0, 1.0]]


class RecordsNegatives(Model):
    """BPR-like toy that records every negative item it is trained on."""

    name = "records_negatives"

    def __init__(self, n_users, n_items):
        super().__init__(n_users, n_items)
        self.user = nn.Parameter(torch.randn(n_users, 4) * 0.1)
        self.item = nn.Parameter(torch.randn(n_items, 4) * 0.1)
        self.negatives = []

    def forward(self, batch):
        self.negatives.append(batch.neg.clone())
        u = self.user[batch.users]
        return ForwardOut((u * self.item[batch.pos]).sum(-1), (u.unsqueeze(1) * self.item[batch.neg]).sum(-1))

    def score_all(self, users):
        return self.user[users] @ self.item.T


def without_interactions_on(inputs, items: list[int]):
    """``inputs`` with every training interaction on ``items`` removed (cold items)."""
    train = inputs.train.tolil()
    train[:, items] = 0
    cold_inputs = dataclasses.replace(inputs, train=train.tocsr())
    cold_inputs.train.eliminate_zeros()
    return cold_inputs


@pytest.mark.parametrize("pool", ["all", "trained"])
def test_neg_pool_trained_never_draws_an_item_without_training_interactions(inputs, pool):
    # the bug it guards: on a cold-item split, drawing the held-out items as negatives teaches a content model that
    # exactly those items are never liked
    cold = [3, 12]
    cold_inputs = without_interactions_on(inputs, cold)
    model = RecordsNegatives(N_USERS, N_ITEMS)
    Trainer(dataclasses.replace(CFG, epochs=5, neg_pool=pool), seed=0).fit(model, cold_inputs)
    drawn = torch.cat([n.ravel() for n in model.negatives])
    assert bool(torch.isin(drawn, torch.tensor(cold)).any()) == (pool == "all")


@pytest.mark.parametrize("pool", ["all", "trained"])
def test_neg_pool_trained_keeps_items_without_training_interactions_out_of_the_full_softmax(inputs, pool):
    # full_softmax has no draws: the pool masks the catalogue instead, so a cold item's vector gets no gradient
    cold = [3, 12]
    cold_inputs = without_interactions_on(inputs, cold)
    model = bpr()
    before = model.item_emb.weight.detach().clone()
    Trainer(dataclasses.replace(CFG, epochs=5, neg_pool=pool, loss="full_softmax"), seed=0).fit(model, cold_inputs)
    after = model.item_emb.weight.detach()
    moved = (after - before).abs().sum(1) > 0
    assert not bool(moved[cold].any()) if pool == "trained" else bool(moved[cold].all())
    assert bool(moved[[0, 1, 2]].all())  # trained items move either way


def test_an_epoch_observer_sees_every_epoch_and_can_stop_training(inputs):
    """Observers get each finished epoch (losses, validation, learning rate); StopTraining ends the run after that
    epoch with its reason as stopped_by, the best weights restored."""
    from fusionrec.training import StopTraining

    seen = []

    def observe(log):
        seen.append((log.epoch, log.lr, log.valid["ndcg@10"]))
        if log.epoch == 3:
            raise StopTraining("pruned")

    validate = Scripted([0.1, 0.5, 0.3, 0.9])
    model = bpr()
    result = Trainer(CFG, seed=0, observers=(observe,)).fit(model, inputs, validate)
    assert result.stopped_by == "pruned" and result.epochs_run == 3 and result.best_epoch == 2
    assert seen == [(1, CFG.lr, 0.1), (2, CFG.lr, 0.5), (3, CFG.lr, 0.3)]
    state, best = model.state_dict(), validate.snapshots[1]
    assert all(torch.equal(state[k], best[k]) for k in best)
    assert result.history[0].lr == CFG.lr
