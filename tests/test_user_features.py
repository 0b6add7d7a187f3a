"""The users' own fields (RecBole's NAME.user) as a source: read by kind and aligned to the user map, turned into a
user x feature matrix, and learnt where planted: users whose own training history is too short to place them, but
whose features name their taste group, are ranked better by fusionrec with ``use_user_features`` than by the same
model given features drawn at random (the control) or no features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.config import TrainingConfig
from fusionrec.data.atomic import read_atomic
from fusionrec.data.user_side_info import UserSideInfo
from fusionrec.errors import DataError
from fusionrec.models import get_model_class
from fusionrec.models.fusionrec_params import FusionRecParams
from fusionrec.training import Trainer, build_inputs, seed_everything

from test_social import N_ITEMS, N_USERS, group_of_user, planted, poor_users_own_group_auc

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" \
        "u1\ti1\t5\t1\nu2\ti2\t4\t2\nu3\ti1\t3\t3\nu4\ti2\t2\t4\n"
USER = "user_id:token\tage:float\tgender:token\ttags:token_seq\temb:float_seq\n" \
       "u1\t20\tF\trock pop\t0.1 0.2\nu2\t40\tM\tjazz\t0.3 0.4\nu3\t\tF\t\t0.5 0.6\nu9\t60\tM\trock\t0.7 0.8\n"
TRAIN = TrainingConfig(epochs=60, batch_size=64, lr=0.02, neg_samples=4, patience=0, progress=False)

pytestmark = pytest.mark.usefixtures("one_thread")


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_user_fields_are_read_by_kind_and_aligned_to_the_user_map(tmp_path):
    ds = read_atomic(write(tmp_path, {"s.inter": INTER, "s.user": USER}), "s")
    info, u = ds.user_info, ds.users.index
    assert info.n_users == ds.n_users == 5  # u9 has no interaction: a user of the map all the same
    assert info.categorical["gender"][u("u2")] == ("M",) and info.categorical["tags"][u("u1")] == ("rock", "pop")
    assert info.categorical["tags"][u("u3")] == () and info.categorical["gender"][u("u4")] == ()  # u4: no row
    assert info.numeric["age"][u("u9")] == 60 and np.isnan(info.numeric["age"][u("u3")])
    assert "emb" not in info.fields and any("float_seq field 'emb' skipped" in n for n in ds.notes)
    assert any("1 user(s) have no row in" in n for n in ds.notes)
    assert ds.stats()["user_fields"] == ["gender", "tags", "age"]
    (tmp_path / "plain").mkdir()
    plain = read_atomic(write(tmp_path / "plain", {"s.inter": INTER}), "s")
    assert plain.user_info is None and plain.content_hash() != ds.content_hash()


def test_a_second_row_for_one_user_names_file_line_and_field(tmp_path):
    write(tmp_path, {"s.inter": INTER, "s.user": USER + "u1\t30\tM\tjazz\t0 0\n"})
    with pytest.raises(DataError, match="user 'u1' has a second row") as err:
        read_atomic(tmp_path, "s")
    assert "s.user" in str(err.value) and err.value.line == 6 and err.value.field == "user_id"


def test_feature_matrix_one_hot_tokens_and_quantile_bins_averaged_per_user():
    info = UserSideInfo(4, {"gender": [("F",), ("M",), ("F",), ()]},
                        {"age": np.array([10.0, 20.0, 30.0, np.nan])})
    matrix, names = info.feature_matrix(bins=2)
    assert names == ["gender=F", "gender=M", "age=q0", "age=q1"]
    dense = matrix.toarray()
    np.testing.assert_allclose(dense[0], [0.5, 0, 0.5, 0])  # F, young
    np.testing.assert_allclose(dense[2], [0.5, 0, 0, 0.5])  # F, old (above the median 20)
    np.testing.assert_allclose(dense[3], [0, 0, 0, 0])  # nothing known
    assert info.resized(6).feature_matrix(bins=2)[0].shape == (6, 4)


def features(seed: int, planted_group: bool) -> sp.csr_matrix:
    """One categorical feature per user: their taste group (the planted signal) or a group drawn at random (the
    control, the same number of users per value)."""
    groups = np.array([group_of_user(u) for u in range(N_USERS)])
    if not planted_group:
        groups = np.random.default_rng(seed).permutation(groups)
    info = UserSideInfo(N_USERS, {"segment": [(f"g{g}",) for g in groups]})
    return info.feature_matrix()[0]


def fitted(train, user_features, use: bool, seed: int):
    inputs = build_inputs(N_USERS, N_ITEMS, train, user_features=user_features)
    seed_everything(seed)
    params = FusionRecParams(embedding_size=16, use_text=False, use_kg=False, use_user_features=use)
    model = get_model_class("fusionrec").from_inputs(inputs, params)
    Trainer(TRAIN, seed=seed).fit(model, inputs)
    return model.eval()


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_user_features_place_users_their_history_cannot(seed):
    train = planted(seed)
    with_signal = poor_users_own_group_auc(fitted(train, features(seed, True), True, seed), train)
    control = poor_users_own_group_auc(fitted(train, features(seed, False), True, seed), train)
    without = poor_users_own_group_auc(fitted(train, features(seed, True), False, seed), train)
    # measured (seeds 0, 1): planted .752 / .754, random features .469 / .495, no features .507 / .466 (chance .5)
    assert with_signal > 0.7, with_signal
    assert with_signal > control + 0.2, (with_signal, control)
    assert with_signal > without + 0.2, (with_signal, without)


def test_without_user_features_the_model_says_what_it_needs():
    inputs = build_inputs(N_USERS, N_ITEMS, planted())
    params = FusionRecParams(embedding_size=16, use_text=False, use_kg=False, use_user_features=True)
    model = get_model_class("fusionrec").from_inputs(inputs, params)
    with pytest.raises(DataError, match="NAME.user"):
        model.prepare(inputs)
    with pytest.raises(DataError, match="user features have 3 rows"):
        build_inputs(N_USERS, N_ITEMS, planted(), user_features=sp.csr_matrix((3, 2)))


def test_a_saved_model_scores_as_before_with_its_user_features(tmp_path):
    from safetensors.torch import load_file, save_file

    from fusionrec.typed_config import build

    model = fitted(planted(0), features(0, True), True, 0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    args = dict(model.init_args())
    args["params"] = build(FusionRecParams, args["params"])
    loaded = get_model_class("fusionrec")(**args)
    loaded.load_state_dict(load_file(str(tmp_path / "w.safetensors")), assign=True)
    users = torch.arange(N_USERS)
    torch.testing.assert_close(loaded.eval().score_all(users), model.score_all(users))


def test_fusionrec_trains_on_user_fields_with_the_item_item_source_and_serves(tmp_path, capsys):
    """End to end: `fusionrec train` reads NAME.user for use_user_features, chooses the item-item share on
    validation (results.json), and the artifact serves a known user and a user added while serving; a dataset
    without NAME.user gets an error that names what is missing."""
    import json

    from fusionrec.cli import main
    from fusionrec.data.synth_atomic import write_synthetic
    from fusionrec.serving.event_store import Event
    from fusionrec.serving.recommender import Recommender

    write_synthetic(tmp_path / "data", "s", 120, 60, 1500, seed=1)
    ds = read_atomic(tmp_path / "data", "s")
    (tmp_path / "data" / "s.user").write_text("user_id:token\tsegment:token\tage:float\n" + "".join(
        f"{u}\tg{k % 4}\t{20 + k % 50}\n" for k, u in enumerate(ds.users.to_list())))
    config = Path(__file__).resolve().parents[1] / "configs" / "ml-100k" / "lightgcn.yaml"
    args = ["train", "--config", str(config), "--set", "model.name=fusionrec", "--set",
            "model.params={embedding_size: 8, use_text: false, use_kg: false, use_user_features: true, "
            "item_item: true, item_item_l2: 50.0}", "--set", "dataset.name=s", "--set", "training.epochs=2",
            "--set", "training.loss=bpr", "--quiet"]
    assert main([*args, "--set", f"dataset.path={tmp_path / 'data'}", "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["dataset_stats"]["user_fields"] == ["segment", "age"]
    assert len(results["chosen_on_validation"]["tried"]) == 11
    share = results["chosen_on_validation"]["chosen"]["item_item_share"]
    served = Recommender.load(tmp_path / "run" / "model", new_users=True)
    assert (served.served_vectors() is None) == (share > 0)  # a share of the regression: no single dot product
    assert len(served.recommend(ds.users.to_list()[0], k=5)) == 5
    items = ds.items.to_list()
    served.add_interactions([Event("newcomer", items[0]), Event("newcomer", items[1])])
    top = served.recommend("newcomer", k=5)
    assert len(top) == 5 and not {items[0], items[1]} & {item for item, _ in top}

    (tmp_path / "data" / "s.user").unlink()
    assert main([*args, "--set", f"dataset.path={tmp_path / 'data'}", "--out", str(tmp_path / "run2")]) == 2
    assert "needs the users' own fields" in capsys.readouterr().err
