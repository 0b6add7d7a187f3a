"""The item-item source's recency weighting: the history item k places before the newest weighs decay ** k, and a
sequence model chooses the decay on validation beside the share. Planted: users drift from one topic to another and
the next item comes from the newest topic, so a decay < 1 ranks it higher than the bag of items; the control is the
same data with each user's order shuffled, where the newest items say nothing more than the oldest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import TrainingConfig
from fusionrec.data import Interactions
from fusionrec.errors import ConfigError
from fusionrec.evaluation.evaluator import Evaluator
from fusionrec.models import get_model_class
from fusionrec.models.item_item_source import SHARES, ItemItemSource
from fusionrec.training import Trainer, build_inputs, seed_everything
from fusionrec.typed_config import build

N_TOPICS, PER_TOPIC, N_USERS, HALF = 12, 10, 900, 4
DECAYS = (1.0, 0.5)


def test_recency_bag_weighs_each_item_by_its_newest_occurrence():
    source = ItemItemSource(8)
    windows = torch.tensor([[-1, 3, 5, 3, 6], [-1, -1, -1, -1, 2]])
    source.decay.fill_(0.5)
    bag = source.recency_bag(windows)
    assert bag[0].tolist() == [0, 0, 0, 0.5, 0, 0.25, 1.0, 0]  # 3's newest occurrence is one place back
    assert bag[1].tolist() == [0, 0, 1.0, 0, 0, 0, 0, 0]
    source.decay.fill_(1.0)
    assert source.recency_bag(windows)[0].tolist() == [0, 0, 0, 1.0, 0, 1.0, 1.0, 0]  # a bag of items


def _drifting(shuffle: bool, seed: int = 0) -> tuple[Interactions, Interactions, Interactions]:
    """(train, valid, test): each user has HALF items of topic A, then HALF of topic B (A != B); the valid and
    test targets are two further items of topic B. ``shuffle``: each user's training order is random instead."""
    rng = np.random.default_rng(seed)
    users, items, stamps, valid, test = [], [], [], [], []
    for user in range(N_USERS):
        first, second = rng.choice(N_TOPICS, 2, replace=False)
        old = first * PER_TOPIC + rng.choice(PER_TOPIC, HALF, replace=False)
        new = second * PER_TOPIC + rng.choice(PER_TOPIC, HALF + 2, replace=False)
        history = np.concatenate([old, new[:HALF]])
        order = rng.permutation(len(history)) if shuffle else np.arange(len(history))
        users += [user] * len(history)
        items += history.tolist()
        stamps += order.astype(float).tolist()
        valid.append(new[HALF])
        test.append(new[HALF + 1])
    n_items = N_TOPICS * PER_TOPIC
    every = np.arange(N_USERS)
    return (Interactions(np.array(users), np.array(items), N_USERS, n_items, timestamps=np.array(stamps)),
            Interactions(every, np.array(valid), N_USERS, n_items), Interactions(every, np.array(test), N_USERS, n_items))


def _trained(train: Interactions, **params):
    """(fusionrec-seq on ids with the item-item source after one short epoch on ``train``, its inputs); ``params``
    over the small defaults."""
    cls = get_model_class("fusionrec-seq")
    inputs = build_inputs(train.n_users, train.n_items, train, sequences=True)
    seed_everything(0)
    model = cls.from_inputs(inputs, build(cls.Params, {"embedding_size": 16, "n_layers": 1, "n_heads": 1,
                                                       "use_text": False, "item_item": True,
                                                       "item_item_decays": list(DECAYS), **params}))
    Trainer(TrainingConfig(loss="full_softmax", epochs=1, batch_size=512, progress=False), seed=0).fit(model, inputs)
    return model, inputs


def _chosen(shuffle: bool) -> tuple[dict, dict[float, float]]:
    """fusionrec-seq (ids, one short epoch) with the item-item source, chosen on the valid targets: (the choice,
    each decay's valid NDCG@10 with the regression alone)."""
    from fusionrec.jobs.experiment import choose_on_validation

    train, valid, _ = _drifting(shuffle)
    model, _ = _trained(train, item_item_l2=10.0)
    evaluator = Evaluator(ks=(10,), metrics=("ndcg",))
    out = choose_on_validation(model.eval(), lambda m: evaluator.evaluate(m.score_all, valid, train.to_csr()),
                               "ndcg@10", log=lambda _: None)
    assert model.chosen() == out["chosen"] and len(out["tried"]) == 1 + len(DECAYS) * (len(SHARES) - 1)
    alone = {t["setting"]["item_item_decay"]: t["ndcg@10"] for t in out["tried"]
             if t["setting"]["item_item_share"] == 1.0}
    return out["chosen"], alone


def test_a_recency_decay_is_chosen_where_the_newest_items_lead():
    chosen, alone = _chosen(shuffle=False)
    assert alone[0.5] > alone[1.0] + 0.1, alone  # the newest topic ranks the target higher
    assert chosen["item_item_decay"] == 0.5 and chosen["item_item_share"] > 0, chosen


def test_the_bag_of_items_is_kept_where_the_order_says_nothing():
    chosen, alone = _chosen(shuffle=True)
    assert alone[1.0] > alone[0.5] + 0.03, alone  # weighing a random part of the history higher only loses
    assert chosen["item_item_decay"] == 1.0, chosen


@pytest.mark.parametrize("decays", [[], [0.0], [1.2], [0.5, 0.5]])
def test_bad_decays_are_refused_naming_the_parameter(decays):
    cls = get_model_class("fusionrec-seq")
    with pytest.raises(ConfigError) as err:
        build(cls.Params, {"use_text": False, "item_item": True, "item_item_decays": decays}, key="model.params")
    assert "item_item_decays" in str(err.value.key)


def test_a_state_saved_before_the_decay_loads_as_a_bag_of_items():
    cls = get_model_class("fusionrec-seq")
    params = build(cls.Params, {"embedding_size": 8, "n_layers": 1, "n_heads": 1, "use_text": False,
                                "item_item": True})
    saved = cls(3, 10, params)
    saved.item_item.decay.fill_(0.5)
    state = {k: v for k, v in saved.state_dict().items() if k != "item_item.decay"}  # as written before the option
    loaded = cls(3, 10, params)
    loaded.load_state_dict(state)  # strict: no missing-key error
    assert float(loaded.item_item.decay) == 1.0


@pytest.mark.parametrize("decay", [0.5, 1.0])
def test_served_lists_follow_the_newest_posted_items_under_a_decay(tmp_path, decay):
    """A user who posts topic A, then topic B, gets topic B's items on top, and the same items posted in the other
    order give topic A's; with decay 1 (the control: a bag of items) the two lists are the same."""
    from fusionrec.artifacts import save_artifact
    from fusionrec.data.ids import IdMap
    from fusionrec.serving.event_store import Event
    from fusionrec.serving.recommender import Recommender

    train, _, _ = _drifting(shuffle=False)
    model, inputs = _trained(train, item_item_l2=10.0, item_item_decays=[0.5, 1.0])
    model.eval().choose({"item_item_share": 1.0, "item_item_decay": decay})
    path = tmp_path / "model"
    save_artifact(path, model, IdMap("user", [f"u{u}" for u in range(train.n_users)]),
                  IdMap("item", [f"i{i}" for i in range(train.n_items)]), inputs.train)
    rec = Recommender.load(path, new_users=True)
    topic_a, topic_b = [f"i{i}" for i in range(0, 4)], [f"i{PER_TOPIC + i}" for i in range(4)]
    for user, items in (("ann", topic_a + topic_b), ("bob", topic_b + topic_a)):
        rec.add_interactions([Event(user, item, float(t)) for t, item in enumerate(items)])
    top = {user: [item for item, _ in rec.recommend(user, k=5)] for user in ("ann", "bob")}
    in_b = {user: sum(PER_TOPIC <= int(item[1:]) < 2 * PER_TOPIC for item in items) for user, items in top.items()}
    if decay < 1.0:
        assert in_b["ann"] == 5 and in_b["bob"] == 0, top
    else:
        assert top["ann"] == top["bob"], top


def test_score_all_from_cached_states_equals_scoring_the_windows():
    """With a share chosen, score_all reads the encoder's states from the cache and redoes only the mix: the same
    scores as encoding the users' last windows, at every setting of the grid tried one after another."""
    train, _, _ = _drifting(shuffle=False)
    model, _ = _trained(train)
    model.eval()
    users = torch.arange(0, N_USERS, 5)
    windows = torch.from_numpy(model.stored_sequences().last(users.numpy(), model.max_length))
    with torch.no_grad():
        for setting in model.validation_grid()[::7]:
            model.choose(setting)
            torch.testing.assert_close(model.score_all(users), model.score_sequences(windows), atol=1e-5, rtol=1e-5)
