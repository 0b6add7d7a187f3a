"""With the id signal removed, FusionRec's text and KG sources alone recover the planted clusters.

The synthetic data plant one cluster per item in its words (description) and in the graph (``in_genre``). FusionRec
is trained with source dropout, then every item is scored by its *content* vector only (the fusion of text and/or
KG, no id embedding): each user must score the unseen items of their own cluster above the other clusters' items.
An untrained model fails the same check (the control), so the assertion measures learning, not the data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.config import KnowledgeConfig, TrainingConfig
from fusionrec.data.synthetic import make_synthetic
from fusionrec.knowledge.kg import build_item_graph
from fusionrec.models.fusionrec import FusionRec, FusionRecParams
from fusionrec.training import Trainer, build_inputs, seed_everything

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def planted():
    syn = make_synthetic(n_users=120, n_items=60, n_clusters=4, interactions_per_user=12, seed=11)
    ds = syn.dataset
    docs = [f"{t} {d}".lower().split() for t, d in zip(ds.item_info.text["title"], ds.item_info.text["description"])]
    vocab = {w: i for i, w in enumerate(sorted({w for doc in docs for w in doc}))}
    bow = np.zeros((ds.n_items, len(vocab)), dtype=np.float32)  # a frozen bag-of-words "text embedding"
    for row, doc in enumerate(docs):
        for w in doc:
            bow[row, vocab[w]] += 1.0
    bow /= np.linalg.norm(bow, axis=1, keepdims=True)
    kg = build_item_graph(ds, KnowledgeConfig())
    inputs = build_inputs(ds.n_users, ds.n_items, ds.interactions, item_text=bow,
                          item_text_mask=np.ones(ds.n_items, dtype=bool), kg=kg)
    return inputs, syn.item_cluster, syn.user_cluster, syn.user_second_cluster


def content_win_rate(model: FusionRec, planted) -> float:
    """Share of single-cluster users whose mean content-only score of unseen own-cluster items beats the mean over
    other clusters' items."""
    inputs, item_cluster, user_cluster, user_second = planted
    model.eval()
    with torch.no_grad():
        users, _, content = model.propagate()
        scores = (users @ content.T).numpy()
    seen = sp.csr_matrix(inputs.train).toarray() > 0
    own = item_cluster[None, :] == user_cluster[:, None]
    single = user_second < 0
    own_mean = np.nanmean(np.where(own & ~seen, scores, np.nan), axis=1)
    other_mean = np.nanmean(np.where(~own, scores, np.nan), axis=1)
    return float((own_mean > other_mean)[single].mean())


def build(inputs, use_text: bool, use_kg: bool) -> FusionRec:
    seed_everything(0)
    params = FusionRecParams(embedding_size=16, n_layers=1, use_text=use_text, use_kg=use_kg, fusion="attention",
                             source_dropout=0.5)
    model = FusionRec.from_inputs(inputs, params)
    model.prepare(inputs)
    return model


@pytest.mark.parametrize("use_text,use_kg", [(True, False), (False, True), (True, True)],
                         ids=["text", "kg", "text+kg"])
def test_content_sources_alone_recover_the_planted_clusters(planted, use_text, use_kg):
    inputs = planted[0]
    model = build(inputs, use_text, use_kg)
    assert content_win_rate(model, planted) < 0.75  # control: untrained, the content path knows no user
    cfg = TrainingConfig(epochs=30, batch_size=128, lr=0.02, neg_samples=2, patience=0, progress=False,
                         kg_mode="joint", kg_alpha=1.0, kg_batch_size=256)
    Trainer(cfg, seed=0).fit(model, inputs)
    rate = content_win_rate(model, planted)
    assert rate > 0.9, f"text={use_text} kg={use_kg}: own cluster first for {rate:.2f} of users"
