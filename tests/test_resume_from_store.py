"""`fusionrec train --resume-from-store DB`: interactions recorded while serving are folded into the next run."""

import json

import pytest

from fusionrec.artifacts import load_artifact
from fusionrec.cli import main
from fusionrec.data.event_log import fold_events, read_event_table
from fusionrec.data.synthetic import make_synthetic
from fusionrec.errors import DataError
from fusionrec.serving.event_store import Event, EventStore
from test_experiment_cli import write_two_group_inter


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """Atomic files: 40 users, 40 items in two groups."""
    return write_two_group_inter(tmp_path_factory.mktemp("planted"), n_users=40, group_size=20, per_user=8, seed=1)


def write_store(path, events):
    store = EventStore(path)
    store.add(events)
    store.close()
    return path


def test_train_folds_in_a_new_user_and_records_it(dataset_dir, tmp_path, one_thread):
    db = write_store(tmp_path / "events.sqlite", [
        Event("newbie", "i3", 2000.0), Event("newbie", "i5", 2001.0), Event("newbie", "i7", None, 2.0),
        Event("newbie", "not-an-item", 2002.0),  # outside the catalogue: skipped and counted
        Event("u0", "i1", 2003.0),
    ])
    cfg = tmp_path / "bpr.yaml"
    cfg.write_text(f"""
seed: 3
dataset: {{name: planted, path: {dataset_dir}}}
model: {{name: bpr, params: {{embedding_size: 8}}}}
training: {{epochs: 2, batch_size: 128, progress: false}}
evaluation: {{ks: [5, 10]}}
""")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--resume-from-store", str(db)]) == 0

    users = json.loads((out / "model" / "users.json").read_text())
    assert users[:40] == [f"u{u}" for u in range(40)] and users[40:] == ["newbie"]  # old indices unchanged
    art = load_artifact(out / "model")
    seen = set(art.items.raws(art.seen[art.users.index("newbie")].indices))
    assert seen == {"i3", "i5", "i7"}
    assert "i1" in set(art.items.raws(art.seen[art.users.index("u0")].indices))

    folded = json.loads((out / "results.json").read_text())["folded_events"]
    assert folded["db"] == str(db) and folded["rows"] == 5 and folded["folded"] == 4
    assert folded["skipped_unknown_items"] == 1 and folded["new_users"] == 1 and len(folded["sha256"]) == 64
    assert json.loads((out / "model" / "config.json").read_text())["folded_events"] == folded


def test_duplicates_follow_the_dataset_policy(tmp_path):
    ds = make_synthetic(n_users=10, n_items=20, interactions_per_user=4, seed=0).dataset
    u0_items = ds.items.raws(ds.interactions.items[ds.interactions.users == 0])
    db = write_store(tmp_path / "e.sqlite", [Event("u0", u0_items[0]), Event("x", "i1"), Event("x", "i1")])
    raw = read_event_table(db)

    kept, report = fold_events(ds, raw, "keep")
    assert report.folded == 3 and len(kept.interactions) == len(ds.interactions) + 3

    dropped, report = fold_events(ds, raw, "drop")
    assert report.folded == 1 and report.dropped_duplicates == 2
    assert len(dropped.interactions) == len(ds.interactions) + 1 and dropped.users.to_list()[-1] == "x"

    with pytest.raises(DataError) as err:
        fold_events(ds, raw, "error")
    assert err.value.file == str(db) and err.value.line == 1 and err.value.field == "item_id"


def test_the_hash_names_the_events(tmp_path):
    ds = make_synthetic(n_users=5, n_items=10, interactions_per_user=2, seed=0).dataset
    a = fold_events(ds, read_event_table(write_store(tmp_path / "a.sqlite", [Event("u1", "i2", 5.0)])))[1]
    b = fold_events(ds, read_event_table(write_store(tmp_path / "b.sqlite", [Event("u1", "i2", 6.0)])))[1]
    assert a.sha256 != b.sha256


def test_a_temporal_split_needs_event_timestamps(tmp_path):
    ds = make_synthetic(n_users=5, n_items=10, interactions_per_user=2, seed=0).dataset
    db = write_store(tmp_path / "e.sqlite", [Event("u1", "i2", 5.0), Event("u1", "i3")])
    with pytest.raises(DataError) as err:
        fold_events(ds, read_event_table(db), need_timestamps=True)
    assert err.value.line == 2 and err.value.field == "timestamp"


def test_a_missing_store_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(DataError, match="no such event store"):
        read_event_table(tmp_path / "nope.sqlite")


def test_a_new_user_from_the_store_gets_no_friends_and_no_fields(tmp_path):
    """The users' social graph and own fields grow with the user map (a folded-in user has neither), so a model
    that reads them still gets inputs of the right shape."""
    from fusionrec.data.atomic import read_atomic
    from fusionrec.training import build_inputs

    (tmp_path / "s.inter").write_text("user_id:token\titem_id:token\nu1\ti1\nu2\ti2\n")
    (tmp_path / "s.net").write_text("source_id:token\ttarget_id:token\nu1\tu2\n")
    (tmp_path / "s.user").write_text("user_id:token\tgender:token\nu1\tF\nu2\tM\n")
    ds = read_atomic(tmp_path, "s")
    grown, report = fold_events(ds, read_event_table(write_store(tmp_path / "e.sqlite", [Event("new", "i1")])))
    assert report.new_users == 1 and grown.n_users == 3
    assert grown.social.n_users == 3 and grown.social.adjacency()[2].nnz == 0
    assert grown.user_info.n_users == 3 and grown.user_info.categorical["gender"][2] == ()
    features, _ = grown.user_info.feature_matrix()
    inputs = build_inputs(grown.n_users, grown.n_items, grown.interactions, social=grown.social.adjacency(),
                          user_features=features)
    assert inputs.social.shape == (3, 3) and inputs.user_features.shape == (3, 2)
