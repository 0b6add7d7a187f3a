"""The sampled softmax (shared candidates, log-Q correction, accidental hits masked), its candidate sampler, the
forward_catalogue candidates contract of every vector model, the full_softmax -> sampled_softmax switch above
``full_softmax_max_items`` and the batch grown by ``max_steps_per_epoch``."""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.cli import main
from fusionrec.config import TrainingConfig
from fusionrec.data import IdMap, Interactions, KnowledgeGraph
from fusionrec.data.synthetic import make_synthetic
from fusionrec.errors import ConfigError
from fusionrec.models import Batch, ScoreFactors, dense_scores, get_model_class
from fusionrec.training import Trainer, build_inputs, seed_everything
import fusionrec.training.sampled_softmax as chunked
from fusionrec.training.losses import full_softmax_loss
from fusionrec.training.sampled_softmax import accidental_hits, sampled_softmax_loss, sampled_softmax_reference
from fusionrec.training.sampling import CandidateSampler
from fusionrec.typed_config import build

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds contention

VECTOR_MODELS = ("bpr", "cke", "fusionrec", "kgat", "lightgcn")
DROPOUT_OFF = {"fusionrec": {"source_dropout": 0.0}, "kgat": {"mess_dropout": 0.0}}  # draws differ per call
SAMPLED = TrainingConfig(epochs=3, batch_size=32, lr=0.01, loss="sampled_softmax", in_batch_negatives=16,
                         neg_samples=8, temperature=0.2, patience=0, progress=False)


# -- the loss by hand ---------------------------------------------------------------------------------------------
def test_sampled_softmax_by_hand_with_log_q_and_a_masked_hit():
    # one row: positive score 2; candidates scored 1, 2 (the row's own positive: masked) and 0.5, expected counts
    # 2, 1 and 0.5 -> logits [2, 1 - log 2, (masked), 0.5 - log 0.5]
    pos = torch.tensor([2.0])
    cand = torch.tensor([[1.0, 2.0, 0.5]])
    log_count = torch.tensor([math.log(2.0), 0.0, math.log(0.5)])
    hits = torch.tensor([[False, True, False]])
    expected = math.log(math.exp(2.0) + math.exp(1.0) / 2.0 + math.exp(0.5) / 0.5) - 2.0
    assert sampled_softmax_loss(pos, cand, log_count, hits).item() == pytest.approx(expected, rel=1e-6)
    # temperature divides the scores, not the correction: logits [4, 2 - log 2, 1 - log 0.5]
    expected_t = math.log(math.exp(4.0) + math.exp(2.0) / 2.0 + math.exp(1.0) / 0.5) - 4.0
    assert sampled_softmax_loss(pos, cand, log_count, hits, 0.5).item() == pytest.approx(expected_t, rel=1e-6)
    # without the mask the hit would count as its own negative: a different (larger) loss
    assert sampled_softmax_loss(pos, cand, log_count, torch.zeros_like(hits)).item() > expected + 0.1


def test_every_item_once_without_correction_is_the_full_softmax():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 10, generator=g)  # (B, n_items)
    pos_items = torch.tensor([0, 3, 3, 9, 5, 1])
    pos = scores.gather(1, pos_items[:, None]).squeeze(1)
    every = torch.arange(10)
    hits = every[None, :] == pos_items[:, None]
    for t in (1.0, 0.2):
        torch.testing.assert_close(sampled_softmax_loss(pos, scores, torch.zeros(10), hits, t),
                                   full_softmax_loss(pos, scores, t))


def as_factors(cand: torch.Tensor) -> ScoreFactors:
    """cand (B, C) written as users (B, C) @ identity (C, C).T, so both forms hold the same scores."""
    return ScoreFactors(cand, torch.eye(cand.shape[1], dtype=cand.dtype))


@pytest.mark.parametrize("form", ["dense", "factors"])
@pytest.mark.parametrize("chunk", [1, 7, 1 << 18])  # one row per chunk, a ragged last chunk, one chunk
def test_chunked_loss_and_gradients_equal_autograds_composition(monkeypatch, chunk, form):
    monkeypatch.setattr(chunked, "CHUNK_ELEMENTS", chunk * 5)  # 5 candidates: `chunk` rows per chunk
    g = torch.Generator().manual_seed(3)
    pos_items = torch.randint(0, 6, (9,), generator=g)
    cand_items = torch.tensor([0, 1, 1, 4, 5])  # item 1 twice: a row whose positive is 1 masks two candidates
    hits = cand_items[None, :] == pos_items[:, None]
    log_count = torch.rand(5, generator=g, dtype=torch.float64)
    users = torch.randn(9, 3, generator=g, dtype=torch.float64)
    items = torch.randn(5, 3, generator=g, dtype=torch.float64)
    results = []
    for fn in (sampled_softmax_loss, sampled_softmax_reference):
        pos = torch.randn(9, generator=torch.Generator().manual_seed(1), dtype=torch.float64, requires_grad=True)
        u, v = users.clone().requires_grad_(), items.clone().requires_grad_()
        scores = ScoreFactors(u, v) if form == "factors" and fn is sampled_softmax_loss else u @ v.T
        loss = fn(pos, scores, log_count, hits, 0.3)
        (2.5 * loss).backward()  # an upstream gradient other than 1
        results.append((loss.detach(), pos.grad, u.grad, v.grad))
    for fused, reference in zip(*results):
        torch.testing.assert_close(fused, reference)
    assert results[0][1].abs().min() > 0  # every positive is pushed up


def test_accidental_hits_are_the_pairs_of_the_dense_comparison():
    g = torch.Generator().manual_seed(5)
    candidates = torch.randint(0, 12, (40,), generator=g)  # many repeats
    positives = torch.randint(0, 15, (33,), generator=g)  # some never among the candidates
    rows, cols = accidental_hits(candidates, positives)
    dense = candidates[None, :] == positives[:, None]
    assert len(rows) == int(dense.sum()) > len(positives) // 2
    assert bool((rows[1:] >= rows[:-1]).all())  # rows ascending, as the chunked loss reads them
    assert set(zip(rows.tolist(), cols.tolist())) == set(map(tuple, dense.nonzero().tolist()))
    empty = accidental_hits(torch.tensor([1, 2]), torch.tensor([3]))
    assert len(empty.rows) == len(empty.cols) == 0


@pytest.mark.parametrize("form", ["dense", "factors"])
def test_chunked_loss_passes_gradcheck_and_masked_hits_get_no_gradient(form):
    g = torch.Generator().manual_seed(4)
    pos = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    cand = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    log_count, hits = torch.rand(6, generator=g, dtype=torch.float64), torch.zeros(4, 6, dtype=torch.bool)
    hits[1, 2] = True
    make = as_factors if form == "factors" else (lambda c: c)
    assert torch.autograd.gradcheck(lambda p, c: sampled_softmax_loss(p, make(c), log_count, hits, 0.5),
                                    (pos, cand))
    loss = sampled_softmax_loss(pos, make(cand), log_count, hits)
    first = torch.autograd.grad(loss, cand, retain_graph=True)[0]
    assert first[1, 2] == 0 and first[0, 2] != 0
    torch.testing.assert_close(torch.autograd.grad(loss, cand)[0], first)  # the kept numerators are not overwritten


# -- the candidate sampler ----------------------------------------------------------------------------------------
def skewed_train(n_users: int = 60, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """Users with 8 items each, drawn with a popularity skew (item j has weight 1 / (j + 1)); items 25-29 never."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, 26)
    rows, cols = [], []
    for u in range(n_users):
        picked = rng.choice(25, 8, replace=False, p=w / w.sum())
        rows += [u] * 8
        cols += picked.tolist()
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
@pytest.mark.parametrize("pool", [None, "trained"])
def test_log_count_is_the_expected_count_of_each_candidate(distribution, pool):
    # the correction is only right if exp(log_count) is what each item's copies average over many draws
    train = skewed_train()
    pool_items = np.flatnonzero(np.asarray(train.sum(0)).ravel()) if pool else None
    g = torch.Generator().manual_seed(1)
    sampler = CandidateSampler(train, in_batch=12, n_sampled=20, distribution=distribution, generator=g,
                               pool=pool_items)
    pairs = torch.from_numpy(train.tocoo().col.astype(np.int64))  # the positive of every training pair
    n_items, rounds = train.shape[1], 6000
    counts = torch.zeros(n_items, dtype=torch.float64)
    expected = torch.zeros(n_items, dtype=torch.float64)
    for _ in range(rounds):  # a shuffled batch of 40 training pairs, as the trainer's epoch makes them
        batch_pos = pairs.index_select(0, torch.randperm(len(pairs), generator=g)[:40])
        cand, log_count = sampler.draw(batch_pos)
        assert cand.shape == log_count.shape == (32,)
        counts += torch.bincount(cand, minlength=n_items)
        expected[cand] = log_count.double().exp()  # the same for every copy of an item
    mean = counts / rounds
    seen = expected > 0
    torch.testing.assert_close(mean[seen], expected[seen], rtol=0.08, atol=0.01)
    if pool:  # items with no training interactions are never candidates under neg_pool 'trained'
        assert counts[25:].sum() == 0
    else:
        assert (counts[25:] > 0).all()


def test_in_batch_part_is_a_subset_of_the_batch_when_larger():
    sampler = CandidateSampler(skewed_train(), in_batch=5, n_sampled=3, generator=torch.Generator().manual_seed(0))
    batch_pos = torch.arange(20)
    cand, _ = sampler.draw(batch_pos)
    assert len(cand) == 8 and len(set(cand[:5].tolist())) == 5 and set(cand[:5].tolist()) <= set(range(20))
    small, _ = sampler.draw(torch.tensor([3, 4]))
    assert len(small) == 5 and small[:2].tolist() == [3, 4]


# -- the model contract: forward_catalogue on candidates -----------------------------------------------------------
def two_groups():
    """Two user groups x two item groups (16 users, 12 items), text and a graph carrying the group."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(16):
        own = np.arange(6) + 6 * (u // 8)
        picked = rng.choice(own, 4, replace=False)
        users += [u] * 4
        items += picked.tolist()
    group = np.arange(12) // 6
    text = (np.eye(2, 8)[group] + 0.1 * rng.standard_normal((12, 8))).astype(np.float32)
    kg = KnowledgeGraph.from_raw([(f"e{i}", "in_group", f"g{group[i]}") for i in range(12)],
                                 {str(i): f"e{i}" for i in range(12)}, IdMap("item", range(12)))
    return build_inputs(16, 12, Interactions(np.array(users), np.array(items), 16, 12), item_text=text, kg=kg)


@pytest.fixture(scope="module")
def small():
    return two_groups()


def model_for(name: str, inputs, **params):
    seed_everything(3)
    cls = get_model_class(name)
    return cls.from_inputs(inputs, build(cls.Params, params))


@pytest.mark.parametrize("name", VECTOR_MODELS)
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_candidates_are_scored_as_the_whole_catalogue_scores_them(name, similarity, small):
    model = model_for(name, small, similarity=similarity, **DROPOUT_OFF.get(name, {}))
    model.prepare(small)
    model.train()
    users, pos = torch.tensor([0, 9, 5]), torch.tensor([0, 7, 3])
    cands = torch.tensor([4, 0, 11, 4, 7])  # repeats and the rows' own positives included
    empty = torch.zeros(3, 0, dtype=torch.long)
    full = model.forward_catalogue(Batch(users, pos, empty))
    out = model.forward_catalogue(Batch(users, pos, empty, cands))
    assert out.pos.shape == (3,) and out.neg.shape == (3, 5)
    torch.testing.assert_close(dense_scores(out.neg), full.neg[:, cands], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.pos, full.pos, rtol=1e-5, atol=1e-5)
    assert set(out.terms) == set(full.terms)


@pytest.mark.parametrize("name", VECTOR_MODELS)
def test_every_vector_model_trains_under_sampled_softmax(name, small):
    model = model_for(name, small, similarity="cosine")
    result = Trainer(SAMPLED, seed=3).fit(model, small)
    assert result.loss == "sampled_softmax" and result.loss_reason is None and result.epochs_run == 3
    first, last = result.history[0].losses, result.history[-1].losses
    assert all(math.isfinite(v) for v in last.values())
    assert last["rec"] < first["rec"]  # it moves the right way


def test_fusionrec_source_dropout_reaches_candidates_and_the_positive(small):
    # under source dropout each candidate score and each separately scored positive is either the full score or the
    # content vector's, and both kinds occur
    model = model_for("fusionrec", small, source_dropout=0.5)
    model.prepare(small)
    model.train()
    users, pos, cands = torch.arange(16).repeat(4), torch.arange(12).repeat(6)[:64], torch.arange(12)
    torch.manual_seed(0)
    out = model.forward_catalogue(Batch(users, pos, torch.zeros(64, 0, dtype=torch.long), cands))
    with torch.no_grad():
        u, items, content = model.final_vectors()
    for got, full, by_content in ((dense_scores(out.neg), u[users] @ items.T, u[users] @ content.T),
                                  (out.pos, (u[users] * items[pos]).sum(-1), (u[users] * content[pos]).sum(-1))):
        is_full = torch.isclose(got, full, atol=1e-5)
        is_content = torch.isclose(got, by_content, atol=1e-5)
        assert bool((is_full | is_content).all())
        assert bool((is_full & ~is_content).any()) and bool((is_content & ~is_full).any())


# -- it learns ----------------------------------------------------------------------------------------------------
def holdout(seed: int = 0, per_user: int = 4):
    """make_synthetic's clusters, 4 interactions of each user held out: (train inputs, held-out (user, item) mask)."""
    syn = make_synthetic(n_users=150, n_items=240, n_clusters=6, interactions_per_user=20, seed=seed)
    inter = syn.dataset.interactions
    rng = np.random.default_rng(seed)
    test = np.zeros(len(inter), dtype=bool)
    for u in range(inter.n_users):
        rows = np.flatnonzero(inter.users == u)
        test[rng.choice(rows, per_user, replace=False)] = True
    train = inter.take(np.flatnonzero(~test))
    held = np.zeros((inter.n_users, inter.n_items), dtype=bool)
    held[inter.users[test], inter.items[test]] = True
    return build_inputs(inter.n_users, inter.n_items, train), held


def recall_at_10(scores: np.ndarray, inputs, held: np.ndarray) -> float:
    scores = np.where(inputs.train.toarray() > 0, -np.inf, scores)
    top = np.argsort(-scores, axis=1)[:, :10]
    return float(np.take_along_axis(held, top, 1).sum() / held.sum())


@pytest.fixture(scope="module")
def planted():
    return holdout()


def test_sampled_softmax_learns_the_planted_clusters_like_the_full_softmax(planted):
    inputs, held = planted
    pop = np.asarray(inputs.train.sum(0)).ravel().astype(np.float64)
    pop_recall = recall_at_10(np.broadcast_to(pop, held.shape).copy(), inputs, held)
    cfg = dataclasses.replace(SAMPLED, epochs=25, batch_size=128, lr=0.01, in_batch_negatives=64, neg_samples=32)
    recalls = {}
    for loss in ("sampled_softmax", "full_softmax"):
        model = model_for("bpr", inputs, similarity="cosine")
        Trainer(dataclasses.replace(cfg, loss=loss), seed=3).fit(model, inputs)
        with torch.no_grad():
            recalls[loss] = recall_at_10(model.score_all(torch.arange(inputs.n_users)).numpy(), inputs, held)
    # 6 clusters of 40 items: a model that learns the clusters is far above popularity (which ignores the user)
    assert recalls["sampled_softmax"] > 2 * pop_recall, (recalls, pop_recall)
    assert recalls["sampled_softmax"] > 0.85 * recalls["full_softmax"], recalls


# -- the switch and the batch size --------------------------------------------------------------------------------
class StepCounter:
    """Wraps a model's forward_catalogue to record the width of the scores and the batch size of every step."""

    def __init__(self, model):
        self.widths, self.sizes = [], []
        inner = model.forward_catalogue

        def counted(batch):
            out = inner(batch)
            self.widths.append(out.neg.shape[1])
            self.sizes.append(len(batch.users))
            return out

        model.forward_catalogue = counted


def test_full_softmax_above_the_item_cap_trains_sampled_and_says_so(small, caplog):
    model = model_for("bpr", small)
    steps = StepCounter(model)
    cfg = dataclasses.replace(SAMPLED, epochs=1, loss="full_softmax", full_softmax_max_items=10,
                              in_batch_negatives=16, neg_samples=8)
    with caplog.at_level(logging.WARNING, logger="fusionrec.training"):
        result = Trainer(cfg, seed=0).fit(model, small)
    assert result.loss == "sampled_softmax"
    assert "full_softmax_max_items (10)" in result.loss_reason and "12 items" in result.loss_reason
    assert any("sampled_softmax" in r.getMessage() for r in caplog.records)
    assert steps.widths == [16 + 8, 16 + 8]  # 64 pairs in 2 batches of 32: candidates, not the 12 items
    assert result.to_dict()["loss"] == "sampled_softmax"


@pytest.mark.parametrize("cap", [12, None])
def test_full_softmax_at_or_below_the_cap_or_without_one_stays(cap, small):
    model = model_for("bpr", small)
    steps = StepCounter(model)
    cfg = dataclasses.replace(SAMPLED, epochs=1, loss="full_softmax", full_softmax_max_items=cap)
    result = Trainer(cfg, seed=0).fit(model, small)
    assert result.loss == "full_softmax" and result.loss_reason is None
    assert steps.widths == [12, 12]


def test_max_steps_per_epoch_grows_the_batch(small, caplog):
    model = model_for("bpr", small)
    steps = StepCounter(model)
    cfg = dataclasses.replace(SAMPLED, epochs=1, batch_size=8, max_steps_per_epoch=3)
    with caplog.at_level(logging.WARNING, logger="fusionrec.training"):
        result = Trainer(cfg, seed=0).fit(model, small)
    assert result.batch_size == 22 and steps.sizes == [22, 22, 20]  # ceil(64 / 3) = 22
    assert "max_steps_per_epoch 3" in result.batch_size_reason
    assert any("batch size 8 -> 22" in r.getMessage() for r in caplog.records)


def test_max_steps_per_epoch_below_the_batch_changes_nothing(small):
    model = model_for("bpr", small)
    steps = StepCounter(model)
    result = Trainer(dataclasses.replace(SAMPLED, epochs=1, max_steps_per_epoch=2), seed=0).fit(model, small)
    assert result.batch_size == 32 and result.batch_size_reason is None and steps.sizes == [32, 32]  # 64 / 2


@pytest.mark.parametrize("key,value", [("in_batch_negatives", -1), ("full_softmax_max_items", 0),
                                       ("max_steps_per_epoch", 0)])
def test_out_of_range_keys_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        Trainer(dataclasses.replace(SAMPLED, **{key: value}), seed=0)


def test_results_json_records_the_loss_used_and_why(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(30):  # two groups of users, each on its own 15 of the 30 items
        for t, i in enumerate(rng.choice(15, 8, replace=False) + 15 * (u % 2)):
            lines.append(f"u{u}\ti{i}\t5\t{1000 + t}")
    (tmp_path / "tiny.inter").write_text("\n".join(lines) + "\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(f"""
dataset: {{name: tiny, path: {tmp_path}}}
model: {{name: bpr, params: {{embedding_size: 8, similarity: cosine}}}}
training: {{epochs: 2, batch_size: 64, loss: full_softmax, temperature: 0.2, full_softmax_max_items: 20,
           neg_samples: 16, progress: false}}
""")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "results.json").read_text())["training_loss"]
    assert record["loss"] == "sampled_softmax" and "full_softmax_max_items (20)" in record["reason"]
    assert record["batch_size"] == 64 and record["batch_size_reason"] is None
