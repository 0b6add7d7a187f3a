"""FusionRec's text path: the frozen PCA read by ``text_components`` (orthonormal basis, a round trip through
save/load, items added while serving projected the same way as catalogue items), and the training shortcut that
fuses the content view only for items without training interactions (same propagated vectors as the full pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.artifacts import load_artifact, save_artifact
from fusionrec.data.ids import IdMap
from fusionrec.errors import ConfigError
from fusionrec.models.fusionrec import FusionRec, FusionRecParams
from fusionrec.training import seed_everything

from test_fusionrec_cold import planted  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def build(inputs, **params) -> FusionRec:
    seed_everything(0)
    m = FusionRec.from_inputs(inputs, FusionRecParams(embedding_size=8, use_kg=False, fusion="gate", **params))
    m.prepare(inputs)
    return m


def test_components_are_an_orthonormal_pca_of_the_item_text(planted):  # noqa: F811
    inputs = planted[0]
    m = build(inputs, text_components=4)
    basis = m.text_basis
    assert basis.shape == (16, 4)
    assert torch.allclose(basis.T @ basis, torch.eye(4), atol=1e-5)
    x = inputs.item_text
    assert torch.allclose(m.text_mean, x.mean(0), atol=1e-6)
    # the first component is the direction of largest variance: no other basis direction holds more
    var = ((x - x.mean(0)) @ basis).var(0)
    assert bool((var[:-1] >= var[1:] - 1e-6).all())
    assert m.text_proj.in_features == 4


def test_too_many_components_is_a_config_error(planted):  # noqa: F811
    with pytest.raises(ConfigError, match="text_components"):
        build(planted[0], text_components=17)


def test_components_survive_save_and_load_and_apply_to_new_items(planted, tmp_path):  # noqa: F811
    inputs = planted[0]
    m = build(inputs, text_components=4).eval()
    users = IdMap.from_list("user", [str(u) for u in range(inputs.n_users)])
    items = IdMap.from_list("item", [str(i) for i in range(inputs.n_items)])
    save_artifact(tmp_path / "model", m, users, items, inputs.train)
    loaded = load_artifact(tmp_path / "model").model
    all_users = torch.arange(inputs.n_users)
    assert torch.equal(loaded.score_all(all_users), m.score_all(all_users))
    # an item added while serving with a catalogue item's text lands on that item's content vector
    with torch.no_grad():
        own = loaded.item_vectors()["content"][5]
        new = loaded.content_vectors(inputs.item_text[5:6], torch.ones(1, dtype=torch.bool), None)[0]
    assert torch.allclose(new, own, atol=1e-5)


def test_training_shortcut_gives_the_same_propagation(planted):  # noqa: F811
    # source_dropout 0: in training the content view is fused only for cold items; the propagated vectors must
    # equal those of the two-view pass (eval mode computes both views for every item)
    inputs = planted[0]
    m = build(inputs, source_dropout=0.0)
    m.train()
    users_t, items_t, content_t = m.propagate()
    m.eval()
    with torch.no_grad():
        users_e, items_e, content_e = m.propagate()
    assert torch.allclose(users_t, users_e, atol=1e-6) and torch.allclose(items_t, items_e, atol=1e-6)
    cold = m.item_degree <= 0
    assert bool(cold.any()), "the fixture has cold items"
    assert torch.allclose(content_t[cold], content_e[cold], atol=1e-6)
