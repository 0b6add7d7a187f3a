"""FusionRec's cold-start path: the ``align`` term (content scores of warm items pulled toward their full scores) by
hand, that it moves only the content path, and that a model trained with it ranks a never-seen item of the user's
cluster above the other clusters' items."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fusionrec.config import TrainingConfig
from fusionrec.data.synthetic import make_synthetic
from fusionrec.errors import ConfigError
from fusionrec.models import Batch
from fusionrec.models.fusionrec import FusionRec, FusionRecParams
from fusionrec.training import Trainer, build_inputs, seed_everything

N_CLUSTERS, TEXT_DIM = 4, 16

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds contention


@pytest.fixture(scope="module")
def planted():
    """make_synthetic's clusters, text vectors that reveal the cluster, and items 7 and 20 without any training
    interaction (cold)."""
    syn = make_synthetic(n_users=80, n_items=48, n_clusters=N_CLUSTERS, interactions_per_user=10, seed=3)
    ds = syn.dataset
    rng = np.random.default_rng(0)
    text = np.eye(N_CLUSTERS, TEXT_DIM)[syn.item_cluster] + 0.3 * rng.standard_normal((ds.n_items, TEXT_DIM))
    cold = np.array([7, 20])
    inter = ds.interactions
    train = inter.take(np.flatnonzero(~np.isin(inter.items, cold)))
    inputs = build_inputs(ds.n_users, ds.n_items, train, item_text=text.astype(np.float32),
                          item_text_mask=np.ones(ds.n_items, dtype=bool))
    return inputs, syn.item_cluster, syn.user_cluster, syn.user_second_cluster, cold


def model(inputs, **params) -> FusionRec:
    seed_everything(0)
    m = FusionRec.from_inputs(inputs, FusionRecParams(embedding_size=16, use_kg=False, fusion="gate", **params))
    m.prepare(inputs)
    return m.train()


BATCH = Batch(torch.tensor([0, 3, 9]), torch.tensor([1, 2, 3]), torch.tensor([[7, 5], [6, 20], [8, 9]]))


def test_align_term_is_off_by_default_and_out_of_range_is_a_config_error(planted):
    inputs = planted[0]
    assert set(model(inputs)(BATCH).terms) == {"reg"}
    with pytest.raises(ConfigError, match="content_align"):
        model(inputs, content_align=-1.0)


def test_align_term_matches_the_formula_over_warm_items_only(planted):
    inputs = planted[0]
    m = model(inputs, content_align=0.5, source_dropout=0.0)
    out = m(BATCH)
    with torch.no_grad():
        users, items, content = m.propagate()
        u = users[BATCH.users]
        idx = torch.cat([BATCH.pos.unsqueeze(1), BATCH.neg], 1)
        gaps = [float(u[b] @ content[i] - u[b] @ items[i]) for b in range(3) for i in idx[b].tolist()
                if i not in (7, 20)]  # the cold items 7 and 20 have no full score to align to
    assert len(gaps) == 7
    assert float(out.terms["align"].detach()) == pytest.approx(0.5 * np.mean(np.square(gaps)), rel=1e-5)
    assert torch.allclose(out.pos, (u * items[BATCH.pos]).sum(-1))  # no dropout: the full scores


def test_align_term_moves_only_the_content_path(planted):
    m = model(planted[0], content_align=1.0)
    m(BATCH).terms["align"].backward()
    assert m.text_proj.weight.grad is not None and float(m.text_proj.weight.grad.abs().sum()) > 0
    for name in ("user_emb", "item_emb"):
        grad = getattr(m, name).weight.grad
        assert grad is None or float(grad.abs().sum()) == 0.0, f"{name} moved by the align term"


def test_cold_item_of_the_users_cluster_ranks_above_other_clusters(planted):
    # the cold items have no interactions: only the content path, trained by source dropout and align, places them
    scores = trained_scores(planted[0], content_align=1.0, source_dropout=0.5)
    for c, users in cold_item_audiences(planted):
        assert_above_other_clusters(scores, c, users, planted[1])


def trained_scores(inputs, **params) -> torch.Tensor:
    """Every user's scores (n_users, n_items) from a model trained on the planted data without the cold items."""
    m = model(inputs, **params)
    cfg = TrainingConfig(epochs=40, batch_size=64, lr=0.02, neg_samples=2, patience=0, progress=False,
                         neg_pool="trained")
    Trainer(cfg, seed=0).fit(m, inputs)
    with torch.no_grad():
        return m.score_all(torch.arange(inputs.n_users))


def cold_item_audiences(planted):
    """(cold item, the users wholly in its cluster) pairs."""
    _, item_cluster, user_cluster, user_second, cold = planted
    return [(c, np.flatnonzero((user_cluster == item_cluster[c]) & (user_second < 0))) for c in cold]


def assert_above_other_clusters(scores, c, users, item_cluster):
    other = torch.from_numpy(np.flatnonzero(item_cluster != item_cluster[c]))
    above = (scores[users, c:c + 1] > scores[users][:, other]).float().mean(1)
    assert len(users) >= 5 and above.min() > 0.8, f"cold item {c}: {above.tolist()}"


def test_default_params_score_as_before_the_align_term(planted):
    # content_align 0 leaves forward's scores and terms as they were: the full or, dropped, the content score
    inputs = planted[0]
    m = model(inputs, source_dropout=0.0)
    out = m(BATCH)
    users, items, _ = m.propagate()
    u = users[BATCH.users]
    assert torch.allclose(out.neg, (u.unsqueeze(1) * items[BATCH.neg]).sum(-1))
    assert dataclasses.asdict(m.params)["content_align"] == 0.0


# -- cold_path: neighbours ------------------------------------------------------------------------------------------
def test_neighbours_path_borrows_the_formula_from_the_most_text_similar_warm_items(planted):
    inputs, _, _, _, cold = planted
    m = model(inputs, source_dropout=0.0, cold_path="neighbours", cold_neighbours=3, cold_temperature=0.1,
              cold_scale=1.5).eval()
    _, items, _ = m.propagate()  # dot similarity: the final vectors are the propagated ones
    text = torch.nn.functional.normalize(inputs.item_text, dim=1)
    warm = torch.nonzero(torch.from_numpy(np.asarray(inputs.train.sum(0)).ravel() > 0)).squeeze(1)
    with torch.no_grad():
        _, served = m.serving_vectors()
        for c in cold:
            cos = text[c] @ text[warm].T
            top, where = cos.topk(3)
            w = torch.softmax(top / 0.1, 0)
            nbr = items[warm[where]]
            mix = (w[:, None] * nbr).sum(0)
            expected = mix / mix.norm() * 1.5 * (w * nbr.norm(dim=1)).sum()
            assert torch.allclose(served[c], expected, atol=1e-5)
        assert torch.equal(served[warm], items[warm])  # warm items keep their own vectors


def test_neighbours_path_gives_a_new_item_its_text_twins_vector(planted):
    # an item added while serving, whose text is warm item 0's, borrows (with one neighbour) exactly item 0's vector
    inputs = planted[0]
    m = model(inputs, source_dropout=0.0, cold_path="neighbours", cold_neighbours=1).eval()
    with torch.no_grad():
        _, served = m.serving_vectors()
        new = m.content_vectors(inputs.item_text[[0, 0]], torch.tensor([True, False]), None)
    assert torch.allclose(new[0], served[0], atol=1e-6)
    assert not torch.allclose(new[1], served[0])  # without text it falls back to the (fused) content vector


def test_neighbours_path_places_a_cold_item_among_its_clusters_warm_items(planted):
    # no source dropout, no align: the cold items are placed only by borrowing their text neighbours' vectors, so
    # they rank above the other clusters and in the middle of their own cluster's warm items, not above all of them
    # (the untrained content path of the same model puts them above 97 % of those: cold items flooding the lists)
    inputs, item_cluster = planted[0], planted[1]
    degree = np.asarray(inputs.train.sum(0)).ravel()
    scores = trained_scores(inputs, source_dropout=0.0, cold_path="neighbours")
    for c, users in cold_item_audiences(planted):
        assert_above_other_clusters(scores, c, users, item_cluster)
        own = torch.from_numpy(np.flatnonzero((item_cluster == item_cluster[c]) & (degree > 0)))
        among_own = (scores[users, c:c + 1] > scores[users][:, own]).float().mean()
        assert 0.25 < among_own < 0.9, f"cold item {c} is above {among_own:.2f} of its own cluster's warm items"


@pytest.mark.parametrize("params, key", [({"cold_path": "nearest"}, "cold_path"),
                                         ({"cold_path": "neighbours", "use_text": False}, "cold_path"),
                                         ({"cold_neighbours": 0}, "cold_neighbours"),
                                         ({"cold_temperature": 0.0}, "cold_temperature"),
                                         ({"cold_scale": -1.0}, "cold_scale")])
def test_neighbours_path_settings_are_checked(planted, params, key):
    with pytest.raises(ConfigError) as err:
        FusionRec(10, 10, FusionRecParams(**params), text_dim=4)
    assert err.value.key == f"model.params.{key}"


def test_neighbours_model_round_trips_and_an_older_state_dict_without_its_buffers_still_loads(planted):
    inputs = planted[0]
    m = model(inputs, source_dropout=0.0, cold_path="neighbours").eval()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    fresh = FusionRec(**{**m.init_args(), "params": m.params})
    fresh.load_state_dict(state, assign=True)
    assert torch.equal(fresh.eval().score_all(torch.arange(5)), m.score_all(torch.arange(5)))
    plain = model(inputs, source_dropout=0.0).eval()  # an artifact saved before cold_path existed lacks the buffers
    old = {k: v.clone() for k, v in plain.state_dict().items() if not k.startswith("cold_nbr")}
    again = FusionRec(**{**plain.init_args(), "params": plain.params})
    again.load_state_dict(old, assign=True)
    assert torch.equal(again.eval().score_all(torch.arange(5)), plain.score_all(torch.arange(5)))


# -- use_id: false (text as the item's base representation) ----------------------------------------------------------
def test_without_the_id_source_every_item_is_its_content_and_new_items_rank_with_their_cluster(planted):
    """use_id false: the fused vector of every item is its content vector (the id table is read by nothing), and
    a model trained so places the never-seen items 7 and 20 above the other clusters' items like its warm ones."""
    inputs, item_cluster = planted[0], planted[1]
    m = model(inputs, source_dropout=0.0, use_id=False).eval()
    with torch.no_grad():
        vecs = m.item_vectors()
    assert torch.allclose(vecs["full"], vecs["content"])
    scores = trained_scores(inputs, source_dropout=0.0, use_id=False)
    for c, users in cold_item_audiences(planted):
        assert_above_other_clusters(scores, c, users, item_cluster)
    with pytest.raises(ConfigError) as err:
        FusionRecParams(use_id=False, use_text=False, use_kg=False)
    assert err.value.key == "model.params.use_id"
