"""Ordered histories: the data layer's sequences and windows, the trainer's window batches, and a planted next-item
rule that a sequence model learns while order-blind models (and the same model on shuffled order) do not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import TrainingConfig
from fusionrec.data import Interactions
from fusionrec.data.synthetic_sequences import planted_sequences
from fusionrec.data.user_sequences import PAD, UserSequences
from fusionrec.evaluation.evaluator import Evaluator
from fusionrec.models import get_model_class
from fusionrec.models.base import window_targets
from fusionrec.training import Trainer, build_inputs, seed_everything
from fusionrec.training.batch_sources import WindowBatches, n_pairs
from fusionrec.typed_config import build


def _sequences(rows: dict[int, list[int]], n_items: int = 20) -> UserSequences:
    users = np.concatenate([[u] * len(v) for u, v in rows.items()]).astype(np.int64)
    items = np.concatenate(list(rows.values())).astype(np.int64)
    return UserSequences.from_interactions(Interactions(users, items, max(rows) + 1, n_items))


def test_sequences_follow_timestamps_and_keep_row_order_on_ties():
    inter = Interactions(np.array([1, 0, 1, 0, 1]), np.array([5, 6, 7, 8, 9]), 3, 10,
                         timestamps=np.array([30.0, 2.0, 10.0, 1.0, 10.0]))
    seqs = UserSequences.from_interactions(inter)
    assert seqs.of(0).tolist() == [8, 6]
    assert seqs.of(1).tolist() == [7, 9, 5]  # 7 and 9 tie at t=10: row order
    assert seqs.of(2).tolist() == []
    assert seqs.lengths.tolist() == [2, 3, 0]


def test_last_is_right_aligned_and_padded_on_the_left():
    seqs = _sequences({0: [1, 2, 3, 4], 1: [7], 2: []})
    assert seqs.last(np.array([0, 1, 2]), 3).tolist() == [[2, 3, 4], [PAD, PAD, 7], [PAD, PAD, PAD]]


@pytest.mark.parametrize("length", [1, 2, 3, 10])
def test_windows_make_every_following_item_a_target_exactly_once(length):
    rows = {0: [1, 2, 3, 4, 5, 6, 7], 1: [9], 2: [3, 4], 3: []}
    seqs = _sequences(rows)
    windows, users = seqs.windows(length)
    assert windows.shape[1] == length + 1
    inputs, mask, targets = window_targets(torch.from_numpy(windows))
    pairs = sorted(zip(users.repeat(mask.sum(1).numpy()).tolist(), inputs[mask].tolist(), targets.tolist()))
    expected = sorted((u, a, b) for u, items in rows.items() for a, b in zip(items, items[1:]))
    assert pairs == expected
    assert n_pairs(seqs) == len(expected)
    for row, user in zip(windows, users):  # each window is a run of the user's own sequence, right-aligned
        present = row[row != PAD].tolist()
        assert row[-1] != PAD and row[: len(row) - len(present)].tolist() == [PAD] * (len(row) - len(present))
        items = rows[int(user)]
        assert any(items[k:k + len(present)] == present for k in range(len(items)))


def test_window_batches_carry_the_pairs_users_and_negatives_the_trainer_checks():
    seqs = _sequences({0: [1, 2, 3, 4], 1: [5, 6, 7], 2: [8, 9]})
    inter_csr = Interactions(np.array([0, 0, 0, 0, 1, 1, 1, 2, 2]), np.array([1, 2, 3, 4, 5, 6, 7, 8, 9]), 3,
                             20).to_csr()
    from fusionrec.training.sampling import NegativeSampler

    source = WindowBatches(seqs, 2, batch_size=3, sampler=NegativeSampler(inter_csr), neg_samples=2)
    seen = []
    for batch in source.epoch(torch.Generator().manual_seed(0)):
        _, mask, targets = window_targets(batch.windows)
        assert torch.equal(batch.pos, targets) and len(batch.users) == len(batch.pos) == len(batch.neg)
        for user, neg in zip(batch.users.tolist(), batch.neg.tolist()):
            assert not set(neg) & set(inter_csr[user].indices.tolist())  # never one of the user's own items
        seen += list(zip(batch.users.tolist(), batch.pos.tolist()))
    assert sorted(seen) == [(0, 2), (0, 3), (0, 4), (1, 6), (1, 7), (2, 9)]


# -- the planted next-item rule ------------------------------------------------------------------------------------
SASREC = {"embedding_size": 32, "n_layers": 1, "n_heads": 1, "dropout": 0.1}
FIT = {"sasrec": TrainingConfig(loss="full_softmax", epochs=12, lr=3e-3, batch_size=512, progress=False),
       "bpr": TrainingConfig(epochs=20, lr=5e-3, progress=False)}


def _ndcg_at_10(name: str, train: Interactions, test: Interactions, params: dict | None = None) -> float:
    cls = get_model_class(name)
    inputs = build_inputs(train.n_users, train.n_items, train, sequences=True)
    seed_everything(0)
    model = cls.from_inputs(inputs, build(cls.Params, params or {}))
    Trainer(FIT.get(name, TrainingConfig(progress=False)), seed=0).fit(model, inputs)
    model.eval()
    result = Evaluator(ks=(10,), metrics=("ndcg",)).evaluate(model.score_all, test, train.to_csr())
    return float(result["ndcg@10"])


@pytest.fixture(scope="module")
def planted():
    return planted_sequences(n_users=1200, n_items=300, runs=10, run_length=3, seed=0)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_sasrec_learns_a_planted_next_item_rule(planted, norm):
    assert _ndcg_at_10("sasrec", planted.train, planted.test, {**SASREC, "norm": norm}) > 0.8


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_the_newest_state_is_the_full_encoders_last_under_either_norm(norm):
    from fusionrec.models.sequence_encoder import CausalEncoder

    torch.manual_seed(0)
    encoder = CausalEncoder(16, 10, 2, 2, 0.0, norm).eval()
    vectors, present = torch.randn(3, 6, 16), torch.ones(3, 6, dtype=torch.bool)
    present[0, :2] = False
    assert torch.allclose(encoder(vectors, present)[:, -1], encoder.newest(vectors, present), atol=1e-5)
    assert torch.allclose(encoder.last_attention(vectors, present).sum(1), torch.ones(3))
    assert encoder.last_attention(vectors, present)[0, :2].max() == 0  # empty slots are never read


@pytest.mark.parametrize("name", ["ease", "bpr"])
def test_order_blind_models_do_not_learn_it(planted, name):
    """The control: from the bag of items the successor of the LAST one is one of ~20 open run ends."""
    assert _ndcg_at_10(name, planted.train, planted.test) < 0.4


def test_sasrec_without_the_order_does_not_learn_it(planted):
    """The same data with each user's training order shuffled: the rule is gone, and so is the lift."""
    rng = np.random.default_rng(1)
    train = planted.train
    shuffled = Interactions(train.users, train.items, train.n_users, train.n_items,
                            timestamps=rng.permutation(len(train)).astype(np.float64))
    assert _ndcg_at_10("sasrec", shuffled, planted.test, SASREC) < 0.4


@pytest.mark.parametrize("ordered", [True, False])
def test_the_item_item_share_is_chosen_by_the_data(planted, ordered):
    """fusionrec-seq with the item-item regression source: where the order decides the next item the validation
    keeps the regression out (share <= 0.2); on the same items with the order shuffled away the regression (the
    bag of items) is all that is left, and it takes most of the score (share >= 0.5)."""
    from fusionrec.jobs.experiment import choose_on_validation

    train = planted.train
    if not ordered:
        rng = np.random.default_rng(1)
        train = Interactions(train.users, train.items, train.n_users, train.n_items,
                             timestamps=rng.permutation(len(train)).astype(np.float64))
    cls = get_model_class("fusionrec-seq")
    inputs = build_inputs(train.n_users, train.n_items, train, sequences=True)
    seed_everything(0)
    model = cls.from_inputs(inputs, build(cls.Params, {**SASREC, "use_text": False, "item_item": True}))
    Trainer(FIT["sasrec"], seed=0).fit(model, inputs)
    evaluator = Evaluator(ks=(10,), metrics=("ndcg",))
    out = choose_on_validation(model.eval(), lambda m: evaluator.evaluate(m.score_all, planted.test, train.to_csr()),
                               "ndcg@10", log=lambda _: None)
    share = out["chosen"]["item_item_share"]
    assert model.chosen() == out["chosen"] and len(out["tried"]) == len(model.validation_grid())
    assert (share <= 0.2) if ordered else (share >= 0.5), out["tried"]


def test_the_item_item_source_refuses_a_catalogue_beyond_its_memory_cap():
    from fusionrec.errors import ConfigError

    cls = get_model_class("fusionrec-seq")
    params = build(cls.Params, {"use_text": False, "item_item": True, "item_item_max_memory_gb": 0.001})
    cls(10, 200, params)  # 12 bytes x 200² = 0.48 MB: under the 1 MB cap
    with pytest.raises(ConfigError, match="item_item_max_memory_gb"):
        cls(10, 1000, params)  # 12 MB
