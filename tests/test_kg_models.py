"""CKE, KGAT, content-knn and kg-knn: formulas checked by hand, the shared entity table, KGAT's attention, save/load
through safetensors, and planted clusters (a cold item of the user's cluster ranked by its text or its graph)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from fusionrec.config import KnowledgeConfig, TrainingConfig
from fusionrec.data import IdMap, Interactions, KnowledgeGraph
from fusionrec.data.synthetic import make_synthetic
from fusionrec.errors import DataError, FusionrecError
from fusionrec.knowledge.kg import TransR, build_item_graph, transr_interaction
from fusionrec.models import Batch, get_model_class
from fusionrec.models.cke import CKE
from fusionrec.models.content_knn import ContentKNN
from fusionrec.models.kg_knn import KGKNN
from fusionrec.models.kgat import KGAT
from fusionrec.training import Trainer, build_inputs, seed_everything
from fusionrec.typed_config import build

N_CLUSTERS, TEXT_DIM = 4, 16


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds contention


@dataclasses.dataclass
class Planted:
    inputs: object
    item_cluster: np.ndarray
    user_cluster: np.ndarray
    user_second: np.ndarray  # a second preferred cluster or -1
    cold: int  # an item with no training interactions (text and KG link kept)


@pytest.fixture(scope="module")
def planted() -> Planted:
    """make_synthetic's clusters, with text vectors revealing the cluster (item 5 without text), the synthetic graph
    with inverse relations (genre, mostly-in-cluster director, noise tag), and one cold item."""
    syn = make_synthetic(n_users=80, n_items=48, n_clusters=N_CLUSTERS, interactions_per_user=10, seed=3)
    ds = syn.dataset
    rng = np.random.default_rng(0)
    text = np.eye(N_CLUSTERS, TEXT_DIM)[syn.item_cluster] + 0.3 * rng.standard_normal((ds.n_items, TEXT_DIM))
    mask = np.ones(ds.n_items, dtype=bool)
    mask[5] = False
    cold = 7
    inter = ds.interactions
    train = inter.take(np.flatnonzero(inter.items != cold))
    kg = build_item_graph(ds, KnowledgeConfig())
    inputs = build_inputs(ds.n_users, ds.n_items, train, item_text=text.astype(np.float32), kg=kg,
                          item_text_mask=mask)
    return Planted(inputs, syn.item_cluster, syn.user_cluster, syn.user_second_cluster, cold)


def save_and_reload(model, tmp_path):
    """A fresh model from init_args + the safetensors state dict, as the artifact loader does (no prepare)."""
    path = str(tmp_path / "weights.safetensors")
    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, path)
    cls = type(model)
    args = dict(model.init_args())
    args["params"] = build(cls.Params, dataclasses.asdict(model.params))
    loaded = cls(**args)
    loaded.load_state_dict(load_file(path), assign=True)
    return loaded.eval()


def batch(planted: Planted) -> Batch:
    return Batch(torch.tensor([0, 3, 9]), torch.tensor([1, 2, 3]), torch.tensor([[4, 5], [6, 7], [8, 9]]))


# -- registry and inputs ----------------------------------------------------------------------------------------------
def test_registered_with_the_inputs_they_need():
    assert get_model_class("cke") is CKE and get_model_class("kgat") is KGAT
    assert get_model_class("content-knn") is ContentKNN and get_model_class("kg-knn") is KGKNN
    assert CKE.required_inputs(CKE.Params()) == {"kg", "text"}
    assert CKE.required_inputs(CKE.Params(use_text=False)) == {"kg"}
    assert KGAT.required_inputs(KGAT.Params()) == {"kg"}
    assert ContentKNN.required_inputs(ContentKNN.Params()) == {"text"}
    assert KGKNN.required_inputs(KGKNN.Params()) == {"kg"}
    assert CKE.uses_kg_loss and KGAT.uses_kg_loss and not ContentKNN.trainable and not KGKNN.trainable


def test_missing_graph_or_text_is_a_data_error(planted):
    no_kg = dataclasses.replace(planted.inputs, kg=None)
    no_text = dataclasses.replace(planted.inputs, item_text=None, item_text_mask=None)
    for cls, inputs, field in ((CKE, no_kg, "kg"), (KGAT, no_kg, "kg"), (CKE, no_text, "item_text")):
        with pytest.raises(DataError) as info:
            cls.from_inputs(inputs)
        assert info.value.field == field
    with pytest.raises(DataError, match="item text"):
        ContentKNN(planted.inputs.n_users, planted.inputs.n_items).prepare(no_text)
    with pytest.raises(DataError, match="knowledge graph"):
        KGKNN(planted.inputs.n_users, planted.inputs.n_items).prepare(no_kg)


def test_unprepared_models_say_so(planted):
    for name in ("cke", "kgat", "content-knn", "kg-knn"):
        model = get_model_class(name).from_inputs(planted.inputs)
        with pytest.raises(FusionrecError, match="prepare"):
            model.score_all(torch.tensor([0]))


# -- content-knn and kg-knn -------------------------------------------------------------------------------------------
def test_content_knn_matches_hand_computed_cosine():
    # items 0 and 1 at 60 degrees (cos 0.5), item 2 orthogonal to 0 (cos(1, 2) = sqrt(3)/2), item 3 without text
    text = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2], [0.0, 2.0], [1.0, 0.0]])
    train = Interactions(np.array([0, 1, 1]), np.array([0, 0, 2]), 2, 4)  # u0 {0}; u1 {0, 2}
    inputs = build_inputs(2, 4, train, item_text=text, item_text_mask=np.array([True, True, True, False]))
    model = ContentKNN(2, 4)
    model.prepare(inputs)
    c12 = math.sqrt(3) / 2
    assert torch.allclose(model.score_all(torch.tensor([0]))[0], torch.tensor([0.0, 0.5, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(model.score_all(torch.tensor([1]))[0], torch.tensor([0.0, 0.5 + c12, 0.0, 0.0]),
                          atol=1e-6)  # item 0 and 2 orthogonal; item 3 has no text, so no similarity at all
    mean = ContentKNN(2, 4, ContentKNN.Params(aggregate="mean"))
    mean.prepare(inputs)
    assert torch.allclose(mean.score_all(torch.tensor([1]))[0], torch.tensor([0.0, (0.5 + c12) / 2, 0.0, 0.0]),
                          atol=1e-6)
    one = ContentKNN(2, 4, ContentKNN.Params(k=1))  # item 1 keeps only item 2 (cos 0.87 > 0.5)
    one.prepare(inputs)
    assert torch.allclose(one.score_all(torch.tensor([0, 1])),
                          torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, c12, 0.0, 0.0]]), atol=1e-6)


def tiny_kg() -> KnowledgeGraph:
    """Entities a, b, c (items 0, 1, 2), x, y; a -r-> x, b -r-> x, b -r-> y, c -r-> y; item 3 unlinked."""
    names = ["a", "b", "c", "x", "y"]
    triples = torch.tensor([[0, 0, 3], [1, 0, 3], [1, 0, 4], [2, 0, 4]])
    return KnowledgeGraph(triples, IdMap("entity", names), IdMap("relation", ["r"]), torch.tensor([0, 1, 2, -1]))


def kg_knn_scores(params, users=(0, 1)):
    train = Interactions(np.array([0, 1, 1]), np.array([0, 0, 2]), 2, 4)  # u0 {0}; u1 {0, 2}
    model = KGKNN(2, 4, params)
    model.prepare(build_inputs(2, 4, train, kg=tiny_kg()))
    return model.score_all(torch.tensor(users))


def test_kg_knn_binary_one_hop_by_hand():
    # N(0) = {a, x}, N(1) = {b, x, y}, N(2) = {c, y}: cos(0, 1) = cos(1, 2) = 1/sqrt(6), cos(0, 2) = 0
    s = 1 / math.sqrt(6)
    expected = torch.tensor([[0.0, s, 0.0, 0.0], [0.0, 2 * s, 0.0, 0.0]])
    assert torch.allclose(kg_knn_scores(KGKNN.Params(weighting="binary")), expected, atol=1e-6)


def test_kg_knn_two_hops_by_hand():
    # N2(0) = {a, x, b}, N2(1) = {a, b, c, x, y}, N2(2) = {c, y, b}: cos(0, 2) = 1/3, cos(0, 1) = 3/sqrt(15)
    s01, s02 = 3 / math.sqrt(15), 1 / 3
    expected = torch.tensor([[0.0, s01, s02, 0.0], [s02, 2 * s01, s02, 0.0]])
    assert torch.allclose(kg_knn_scores(KGKNN.Params(weighting="binary", hops=2)), expected, atol=1e-6)


def test_kg_knn_tfidf_by_hand():
    # df: a, b, c 1 of 3 linked items; x (items 0, 1), y (items 1, 2) 2 of 3. w = log(1 + 3 / df)
    hi, lo = math.log(4.0), math.log(2.5)
    s = lo * lo / (math.sqrt(hi**2 + lo**2) * math.sqrt(hi**2 + 2 * lo**2))
    expected = torch.tensor([[0.0, s, 0.0, 0.0], [0.0, 2 * s, 0.0, 0.0]])
    assert torch.allclose(kg_knn_scores(KGKNN.Params()), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["content-knn", "kg-knn"])
def test_knn_ranks_the_cold_item_of_the_users_cluster_first(name, planted):
    # the cold item has no interactions at all: only its text / its graph neighbourhood can place it
    model = get_model_class(name).from_inputs(planted.inputs)
    model.prepare(planted.inputs)
    cluster = planted.item_cluster[planted.cold]
    users = np.flatnonzero((planted.user_cluster == cluster) & (planted.user_second < 0))  # one taste only
    scores = model.score_all(torch.from_numpy(users))
    other = torch.from_numpy(planted.item_cluster != cluster)
    above = (scores[:, planted.cold:planted.cold + 1] > scores[:, other]).float().mean(1)
    assert len(users) >= 5 and above.min() > 0.9, f"{name}: cold item above other-cluster items: {above.tolist()}"


@pytest.mark.parametrize("name", ["content-knn", "kg-knn"])
def test_knn_save_load_round_trip(name, planted, tmp_path):
    model = get_model_class(name).from_inputs(planted.inputs)
    model.prepare(planted.inputs)
    model.eval()
    users = torch.arange(planted.inputs.n_users)
    assert torch.equal(save_and_reload(model, tmp_path).score_all(users), model.score_all(users))


# -- CKE --------------------------------------------------------------------------------------------------------------
def test_cke_item_vector_is_id_plus_entity_plus_projected_text(planted):
    seed_everything(1)
    model = CKE.from_inputs(planted.inputs)
    model.prepare(planted.inputs)
    kg, text, mask = planted.inputs.kg, planted.inputs.item_text, planted.inputs.item_text_mask
    link = kg.item_entity
    entity = model.kg_model.entity_embedding.weight
    w = model.text_proj.weight  # (d, d_text)
    expected = model.item_emb.weight + torch.where((link >= 0)[:, None], entity[link.clamp(min=0)], 0.0)
    expected = expected + torch.where(mask[:, None], text @ w.T, 0.0)
    assert not bool(mask[5])
    assert torch.allclose(model.item_vectors(), expected, atol=1e-6)
    without = CKE.from_inputs(planted.inputs, CKE.Params(use_text=False))
    without.prepare(planted.inputs)
    assert not hasattr(without, "text_proj")


def test_cke_kg_training_moves_item_vectors_through_the_shared_entity_table():
    # items 0, 1 linked to entities e0, e1; item 2 unlinked. Steps on the KG loss alone change the vectors of
    # linked items only: the entity table TransR trains is the one items read.
    kg = KnowledgeGraph(torch.tensor([[0, 0, 2], [1, 0, 2]]), IdMap("entity", ["e0", "e1", "g"]),
                        IdMap("relation", ["r"]), torch.tensor([0, 1, -1]))
    inputs = build_inputs(3, 3, Interactions(np.array([0, 1, 2]), np.array([0, 1, 2]), 3, 3), kg=kg)
    model = CKE.from_inputs(inputs, CKE.Params(use_text=False))
    model.prepare(inputs)
    before = model.item_vectors().detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(3):
        terms = model.kg_terms(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([2, 2]),
                               torch.tensor([[1], [0]]))
        opt.zero_grad()
        (terms["kg"] + terms["kg_reg"]).backward()
        opt.step()
    moved = (model.item_vectors().detach() - before).norm(dim=1)
    assert moved[0] > 1e-4 and moved[1] > 1e-4 and moved[2] == 0


def test_cke_reg_term_matches_formula(planted):
    model = CKE.from_inputs(planted.inputs, CKE.Params(reg_weights=(0.5, 0.0)))
    model.prepare(planted.inputs)
    b = batch(planted)
    v = model.item_vectors()
    u = model.user_emb.weight[b.users]
    norms = u.square().sum() + v[b.pos].square().sum() + v[b.neg].square().sum()
    out = model(b)
    assert torch.allclose(out.terms["reg"], 0.5 * norms / (2 * 3))
    assert torch.allclose(out.pos, (u * v[b.pos]).sum(1)) and torch.allclose(out.neg[:, 1], (u * v[b.neg[:, 1]]).sum(1))


# -- KG terms (both models) -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cke", "kgat"])
def test_kg_terms_finite_and_decreasing(name, planted):
    seed_everything(2)
    model = get_model_class(name).from_inputs(planted.inputs)
    model.prepare(planted.inputs)
    model.train()
    triples = planted.inputs.kg.triples
    gen = torch.Generator().manual_seed(0)
    neg = torch.randint(planted.inputs.kg.n_entities, (len(triples), 2), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        terms = model.kg_terms(triples[:, 0], triples[:, 1], triples[:, 2], neg)
        assert set(terms) == {"kg", "kg_reg"} and all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
        loss = terms["kg"] + terms["kg_reg"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.8 * losses[0], losses


def test_transr_grouped_projection_matches_the_per_row_formula():
    # TransR projects per relation group; it must equal M_r (h - t) with M_r gathered for every row
    torch.manual_seed(0)
    model = TransR(12, 4, ent_dim=6, rel_dim=5, margin=0.0)
    h, r, t = torch.randint(12, (9,)), torch.tensor([3, 0, 3, 1, 1, 3, 0, 2, 3]), torch.randint(12, (9,))
    neg = torch.randint(12, (9, 3))
    ent, rel, proj = model.entity_embedding, model.relation_embedding, model.projection
    assert torch.allclose(model.score(h, r, t), transr_interaction(ent(h), rel(r), ent(t), proj[r]), atol=1e-5)
    by_row = transr_interaction(ent(h)[:, None], rel(r)[:, None], ent(neg), proj[r][:, None])
    assert torch.allclose(model.score(h[:, None], r[:, None], neg), by_row, atol=1e-5)
    m = proj[r]  # (9, d_r, d_e)
    sq = (lambda x: x.square().sum(-1))
    expected = (sq((m @ ent(h)[..., None])[..., 0]) + sq(rel(r)) + sq((m @ ent(t)[..., None])[..., 0])
                + sq((m[:, None] @ ent(neg)[..., None])[..., 0]).mean(1)).mean() / 2
    assert torch.allclose(model.regularization(h, r, t, neg), expected, atol=1e-5)


# -- KGAT -------------------------------------------------------------------------------------------------------------
def test_kgat_attention_rows_sum_to_one_after_epoch_end(planted):
    seed_everything(3)
    model = KGAT.from_inputs(planted.inputs)
    model.prepare(planted.inputs)
    first = model.attention.clone()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    out = model(batch(planted))
    opt.zero_grad()
    (torch.nn.functional.softplus(out.neg - out.pos[:, None]).mean()).backward()
    opt.step()
    model.epoch_end(1)
    att = model.attention
    assert not torch.allclose(att, first)  # recomputed from the moved vectors
    sums = torch.zeros(model.n_nodes).index_add_(0, model.ckg_heads, att)
    has_out = torch.bincount(model.ckg_heads, minlength=model.n_nodes) > 0
    assert torch.allclose(sums[has_out], torch.ones(int(has_out.sum())), atol=1e-5)
    assert bool((att > 0).all())
    # the propagation uses exactly these weights: one layer by hand on the dense matrix
    dense = torch.zeros(model.n_nodes, model.n_nodes).index_put_((model.ckg_heads, model.ckg_tails), att,
                                                                  accumulate=True)
    model.eval()
    e0 = model.kg_model.entity_embedding.weight.detach()
    layer = model.propagation.layers[0]
    e1 = torch.nn.functional.normalize(layer(e0, dense @ e0), dim=1)
    users, _ = model.propagate()
    assert torch.allclose(users[:, e0.shape[1]:e0.shape[1] + e1.shape[1]], e1[model.user_offset:], atol=1e-5)


def test_kgat_graph_holds_users_items_and_entities(planted):
    model = KGAT.from_inputs(planted.inputs)
    model.prepare(planted.inputs)
    kg, train = planted.inputs.kg, planted.inputs.train
    assert model.n_nodes == kg.n_entities + int((kg.item_entity < 0).sum()) + planted.inputs.n_users
    interact = model.ckg_relations == 0
    assert int(interact.sum()) == 2 * train.nnz
    assert int((~interact).sum()) == len(kg.triples)
    assert torch.equal(model.item_node[kg.item_entity >= 0], kg.item_entity[kg.item_entity >= 0])


def test_kgat_trains_and_reloads_with_identical_scores(planted, tmp_path):
    seed_everything(4)
    model = KGAT.from_inputs(planted.inputs)
    config = TrainingConfig(epochs=2, batch_size=128, lr=0.01, patience=0, progress=False, kg_mode="alternating",
                            kg_alpha=1.0, kg_batch_size=256)
    result = Trainer(config, seed=4).fit(model, planted.inputs)
    assert result.epochs_run == 2 and {"rec", "reg", "kg", "kg_reg"} <= set(result.history[-1].losses)
    model.eval()
    users = torch.arange(planted.inputs.n_users)
    before = model.score_all(users)
    assert before.shape == (planted.inputs.n_users, planted.inputs.n_items) and torch.isfinite(before).all()
    loaded = save_and_reload(model, tmp_path)
    assert torch.equal(loaded.attention, model.attention)
    assert torch.equal(loaded.score_all(users), before)


def test_cke_trains_jointly_and_reloads_with_identical_scores(planted, tmp_path):
    seed_everything(5)
    model = CKE.from_inputs(planted.inputs)
    config = TrainingConfig(epochs=2, batch_size=128, lr=0.01, patience=0, progress=False, kg_mode="joint",
                            kg_alpha=1.0, kg_batch_size=256)
    result = Trainer(config, seed=5).fit(model, planted.inputs)
    assert {"rec", "reg", "kg", "kg_reg"} <= set(result.history[-1].losses)
    model.eval()
    users = torch.arange(planted.inputs.n_users)
    before = model.score_all(users)
    assert torch.equal(save_and_reload(model, tmp_path).score_all(users), before)


@pytest.mark.parametrize("name", ["cke", "kgat"])
def test_learns_the_planted_clusters(name, planted):
    seed_everything(6)
    model = get_model_class(name).from_inputs(planted.inputs)
    config = TrainingConfig(epochs=15, batch_size=64, lr=0.02, neg_samples=2, patience=0, progress=False,
                            kg_mode="joint" if name == "cke" else "alternating", kg_alpha=1.0, kg_batch_size=128)
    Trainer(config, seed=6).fit(model, planted.inputs)
    scores = model.score_all(torch.arange(planted.inputs.n_users))
    seen = sp.csr_matrix(planted.inputs.train).toarray() > 0
    own = planted.item_cluster[None, :] == planted.user_cluster[:, None]
    scores = scores.numpy()
    unseen_own = np.where(own & ~seen, scores, np.nan)
    other = np.where(~own, scores, np.nan)
    # mean score of the user's unseen own-cluster items above the mean of other-cluster items, for most users
    wins = np.nanmean(unseen_own, 1) > np.nanmean(other, 1)
    assert wins.mean() > 0.9, f"{name}: {wins.mean():.2f}"
