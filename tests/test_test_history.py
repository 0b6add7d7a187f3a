"""split.test_history: the test scored from train + valid (the leave-one-out protocol of published sequential
tables) versus from train only, on a planted dataset where the test item is predictable only from the valid item.

Items come in pairs (a_k, b_k) that users always take together. Each user has three whole pairs in train, then the
first item a_k of a fourth pair as valid and its partner b_k as test. A history model that reads the valid item
finds b_k at once; from train alone b_k is just one more unseen item."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import fusionrec.models.builtin  # noqa: F401  (registers every model)
from fusionrec.config import config_from_dict
from fusionrec.data import IdMap, Interactions, KnowledgeGraph
from fusionrec.data.dataset import Dataset
from fusionrec.data.splits import check_test_history, make_split
from fusionrec.errors import ConfigError
from fusionrec.evaluation.evaluator import Evaluator
from fusionrec.jobs.experiment import Prepared, run_experiment, use_test_history
from fusionrec.models import get_model_class, model_names
from fusionrec.models.base import HistoryReader
from fusionrec.training import build_inputs, seed_everything

N_PAIRS, N_USERS = 30, 120
N_ITEMS = 2 * N_PAIRS
READERS = sorted(n for n in model_names() if issubclass(get_model_class(n), HistoryReader))

pytestmark = pytest.mark.usefixtures("one_thread")


def paired_dataset(seed: int = 0, timestamps: bool = False) -> Dataset:
    """Item 2k is a_k, item 2k + 1 is b_k. ``presplit`` holds the parts (split method ``given``); with
    ``timestamps`` the rows are ordered train < valid < test per user, so ``leave_one_out`` makes the same parts."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {"train": [], "valid": [], "test": []}
    for u in range(N_USERS):
        pairs = rng.choice(N_PAIRS, 4, replace=False)
        parts["train"] += [(u, 2 * k + side) for k in pairs[:3] for side in (0, 1)]
        parts["valid"].append((u, 2 * pairs[3]))
        parts["test"].append((u, 2 * pairs[3] + 1))

    def inter(rows, t0=0.0):
        a = np.array(rows, dtype=np.int64)
        ts = t0 + np.arange(len(a), dtype=np.float64) if timestamps else None
        return Interactions(a[:, 0], a[:, 1], N_USERS, N_ITEMS, timestamps=ts)

    given = {"train": inter(parts["train"]), "valid": inter(parts["valid"], 1e6), "test": inter(parts["test"], 2e6)}
    rows = [given[p] for p in ("train", "valid", "test")]
    cat = Interactions(np.concatenate([r.users for r in rows]), np.concatenate([r.items for r in rows]),
                       N_USERS, N_ITEMS,
                       timestamps=np.concatenate([r.timestamps for r in rows]) if timestamps else None)
    return Dataset("pairs", IdMap("user", range(N_USERS)), IdMap("item", range(N_ITEMS)), cat,
                   presplit=None if timestamps else given)


def side_inputs(split):
    """Training inputs with random text and a one-entity-per-item graph, so text and KG models can be built."""
    rng = np.random.default_rng(1)
    kg = KnowledgeGraph.from_raw([(f"e{i}", "r", f"g{i % 3}") for i in range(N_ITEMS)],
                                 {str(i): f"e{i}" for i in range(N_ITEMS)}, IdMap("item", range(N_ITEMS)))
    return build_inputs(N_USERS, N_ITEMS, split.train, item_text=rng.standard_normal((N_ITEMS, 8)).astype(np.float32),
                        kg=kg)


def hit(model, split, k: int) -> float:
    ev = Evaluator(ks=(k,), metrics=("hit",))
    return ev.evaluate(model.score_all, split.test, split.exclude("test"))[f"hit@{k}"]


def fitted(name: str, split, params: dict | None = None):
    cls = get_model_class(name)
    inputs = side_inputs(split)
    seed_everything(3)
    model = cls.from_inputs(inputs, cls.Params(**(params or {})))
    model.prepare(inputs)
    return model.eval()


@pytest.mark.parametrize("name,params", [("itemknn", {}), ("ease", {"l2": 10.0})])
@pytest.mark.parametrize("method", ["given", "leave_one_out"])
def test_valid_item_predicts_the_test_item_only_with_train_valid(name, params, method):
    ds = paired_dataset(timestamps=method == "leave_one_out")
    split = make_split(ds, method, test_history="train_valid")
    assert split.test_history == "train_valid" and len(split.valid) == len(split.test) == N_USERS
    model = fitted(name, split, params)
    from_train = hit(model, split, 5)  # control: the same fitted model before it reads the valid items
    assert use_test_history(model, split, log=lambda _: None) is True
    from_train_valid = hit(model, split, 5)
    assert from_train_valid >= 0.95, (name, from_train_valid)  # measured: .99 (itemknn), 1.0 (ease)
    assert from_train <= 0.3, (name, from_train)  # measured: .11, .09; chance is 5 / 53


def test_validation_history_is_train_whatever_the_test_history():
    split = make_split(paired_dataset(), "given", test_history="train_valid")
    train = split.train.to_csr()
    assert (split.history("valid") != train).nnz == 0
    both = split.history("test")
    assert both.nnz == len(split.train) + len(split.valid)
    plain = make_split(paired_dataset(), "given")
    assert plain.test_history == "train" and (plain.history("test") != train).nnz == 0


def test_valid_items_are_never_ranked_for_the_test():
    """A scripted score that puts each user's valid item first and the test item second: hit@1 is 1 only because
    the valid item is excluded from the test ranking (without the exclusion it would be 0)."""
    split = make_split(paired_dataset(), "given", test_history="train_valid")
    valid_item = np.full(N_USERS, -1)
    valid_item[split.valid.users] = split.valid.items
    test_item = np.full(N_USERS, -1)
    test_item[split.test.users] = split.test.items

    def score(users):
        s = torch.zeros(len(users), N_ITEMS)
        s[torch.arange(len(users)), torch.from_numpy(valid_item[users.numpy()])] = 2.0
        s[torch.arange(len(users)), torch.from_numpy(test_item[users.numpy()])] = 1.0
        return s

    ev = Evaluator(ks=(1,), metrics=("hit",))
    assert ev.evaluate(score, split.test, split.exclude("test"))["hit@1"] == 1.0
    assert ev.evaluate(score, split.test, split.train.to_csr())["hit@1"] == 0.0


def test_config_check_names_the_key():
    for method in ("given", "leave_one_out", "random", "temporal"):
        check_test_history(method, "train_valid")
    for method in ("cold_items", "cold_users"):
        with pytest.raises(ConfigError, match="split.test_history"):
            check_test_history(method, "train_valid")
    with pytest.raises(ConfigError, match="split.test_history"):
        make_split(paired_dataset(), "given", test_history="valid")
    with pytest.raises(ConfigError, match="split.test_history"):
        config_from_dict({"split": {"test_history": "everything"}})
    assert config_from_dict({}).split.test_history == "train"


@pytest.mark.parametrize("name", ["lightgcn", "fusionrec"])
def test_graph_models_propagate_over_the_valid_edges_without_retraining(name):
    split = make_split(paired_dataset(), "given", test_history="train_valid")
    model = fitted(name, split)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    before = model.score_all(torch.arange(N_USERS))
    use_test_history(model, split, log=lambda _: None)
    n = N_USERS + N_ITEMS
    adj = sp.csr_matrix((model.adj_values.numpy(), model.adj_indices.numpy()), shape=(n, n))
    rows, cols = split.valid.users, N_USERS + split.valid.items
    assert (np.asarray(adj[rows, cols]).ravel() > 0).all()  # every valid edge, both directions
    assert (np.asarray(adj[cols, rows]).ravel() > 0).all()
    assert adj.nnz == 2 * (len(split.train) + len(split.valid))
    assert all(torch.equal(weights[k], v) for k, v in model.named_parameters())
    assert not torch.allclose(before, model.score_all(torch.arange(N_USERS)))  # the cached propagation was dropped


@pytest.mark.parametrize("name", READERS)
def test_every_history_reader_keeps_its_history_in_the_state_dict(name):
    """Contract for HistoryReader: the training history again changes nothing; a longer one changes the scores and
    survives a state-dict round trip; a history of the wrong shape is refused."""
    split = make_split(paired_dataset(), "given", test_history="train_valid")
    model = fitted(name, split)
    users = torch.arange(N_USERS)
    base = model.score_all(users)
    model.use_history(split.history("valid"))
    torch.testing.assert_close(model.eval().score_all(users), base)
    model.use_history(split.history("test"))
    longer = model.eval().score_all(users)
    assert not torch.allclose(longer, base)
    clone = fitted(name, split)
    clone.load_state_dict(model.state_dict(), assign=True)
    torch.testing.assert_close(clone.eval().score_all(users), longer)
    with pytest.raises(ValueError, match="shape"):
        model.use_history(sp.csr_matrix((N_USERS, N_ITEMS + 1)))


def test_pop_and_bpr_do_not_read_histories():
    assert not issubclass(get_model_class("pop"), HistoryReader)
    assert not issubclass(get_model_class("bpr"), HistoryReader)
    assert {"ease", "itemknn", "content-knn", "kg-knn", "lightgcn", "fusionrec"} <= set(READERS)


def _run(tmp_path, model: str, test_history: str, params: dict | None = None) -> dict:
    ds = paired_dataset()
    cfg = config_from_dict({"model": {"name": model, "params": params or {}},
                            "split": {"method": "given", "test_history": test_history},
                            "training": {"epochs": 2, "batch_size": 256, "progress": False, "valid_metric": "ndcg@5"},
                            "evaluation": {"ks": [1, 5], "metrics": ["hit", "ndcg"]}})
    split = make_split(ds, "given", test_history=test_history)
    out = tmp_path / f"{model}-{test_history}"
    return run_experiment(cfg, out, prepared=Prepared(ds, split, "0" * 64), log=lambda _: None)


def test_run_records_the_protocol_and_saves_the_history_used(tmp_path):
    plain = _run(tmp_path, "itemknn", "train")
    both = _run(tmp_path, "itemknn", "train_valid")
    assert plain["metrics"]["valid"] == both["metrics"]["valid"]  # validation always reads train only
    assert both["metrics"]["test"]["hit@5"] >= 0.95 > 0.3 >= plain["metrics"]["test"]["hit@5"]
    assert both["evaluation"]["test_history"] == "train_valid" and both["evaluation"]["test_history_read_by_model"]
    assert plain["evaluation"]["test_history"] == "train" and not plain["evaluation"]["test_history_read_by_model"]
    saved = json.loads((tmp_path / "itemknn-train_valid" / "results.json").read_text())
    assert saved["evaluation"]["test_history"] == "train_valid"

    from fusionrec.artifacts import load_artifact

    art = load_artifact(tmp_path / "itemknn-train_valid" / "model")
    assert art.meta["scoring_history"] == "train_valid"
    assert art.model.hist_items.numel() == N_USERS * 7  # 6 train items and the valid item per user


def test_a_model_without_histories_keeps_its_trained_vectors(tmp_path):
    plain = _run(tmp_path, "bpr", "train")
    both = _run(tmp_path, "bpr", "train_valid")
    assert both["evaluation"]["test_history_read_by_model"] is False
    assert plain["metrics"]["test"] == both["metrics"]["test"]  # same seed, same vectors: nothing read


def test_exclude_seen_false_ranks_the_users_own_items_as_recbole_sequential_evaluation_does(tmp_path):
    """Every user's valid and test item (0) repeats an item of their training history, the most popular one: Pop can
    hit it only when seen items are ranked too."""
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 10
    train = [(u, i) for u in range(n_users) for i in (0, *rng.choice(np.arange(1, n_items), 3, replace=False))]

    def inter(rows):
        a = np.array(rows, dtype=np.int64)
        return Interactions(a[:, 0], a[:, 1], n_users, n_items)

    given = {"train": inter(train), "valid": inter([(u, 0) for u in range(n_users)]),
             "test": inter([(u, 0) for u in range(n_users)])}
    rows = [given[p] for p in ("train", "valid", "test")]
    ds = Dataset("repeats", IdMap("user", range(n_users)), IdMap("item", range(n_items)),
                 Interactions(np.concatenate([r.users for r in rows]), np.concatenate([r.items for r in rows]),
                              n_users, n_items), presplit=given)
    results = {}
    for exclude in (True, False):
        cfg = config_from_dict({"model": {"name": "pop"}, "split": {"method": "given"},
                                "training": {"progress": False, "valid_metric": "hit@5"},
                                "evaluation": {"ks": [1, 5], "metrics": ["hit"], "exclude_seen": exclude}})
        results[exclude] = run_experiment(cfg, tmp_path / str(exclude), log=lambda _: None,
                                          prepared=Prepared(ds, make_split(ds, "given"), "0" * 64))
    assert results[True]["metrics"]["test"]["hit@5"] == 0 == results[True]["metrics"]["valid"]["hit@5"]
    assert results[False]["metrics"]["test"]["hit@1"] == 1 == results[False]["metrics"]["valid"]["hit@1"]
    assert results[False]["evaluation"]["excluded"] == "nothing (every item ranked)"
    assert results[True]["evaluation"]["excluded"] == "train for valid; train + valid for test"
