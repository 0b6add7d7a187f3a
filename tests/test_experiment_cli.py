"""End to end through the command line on a small planted dataset: train, results.json, artifact, recommend, compare."""

import json

import numpy as np
import pytest

from fusionrec.cli import main
from fusionrec.serving.recommender import Recommender

RESULT_KEYS = {"model", "dataset", "split", "metrics", "segments", "config", "seed", "data_sha256", "versions",
               "timings"}


def write_two_group_inter(root, n_users: int, group_size: int, per_user: int, seed: int):
    """``root/planted.inter``: users u0.. in two groups by parity; a user of group g has ``per_user`` random items of
    group g (items i{g * group_size} .. i{g * group_size + group_size - 1}), rating 5, timestamps 1000, 1001, ...
    Returns ``root``."""
    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(n_users):
        group = u % 2
        items = rng.choice(np.arange(group * group_size, group * group_size + group_size), size=per_user,
                           replace=False)
        for t, i in enumerate(items):
            lines.append(f"u{u}\ti{i}\t5\t{1000 + t}")
    (root / "planted.inter").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """Two user groups, two item groups: users of group g interact with items of group g (atomic files)."""
    return write_two_group_inter(tmp_path_factory.mktemp("planted"), n_users=60, group_size=30, per_user=12, seed=0)


@pytest.fixture(scope="module")
def config_file(dataset_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "bpr.yaml"
    path.write_text(f"""
seed: 3
dataset: {{name: planted, path: {dataset_dir}}}
model: {{name: bpr, params: {{embedding_size: 16}}}}
training: {{epochs: 15, batch_size: 128, lr: 0.05, patience: 5, progress: false}}
evaluation: {{ks: [5, 10]}}
""")
    return path


@pytest.fixture(scope="module")
def trained(config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--config", str(config_file), "--out", str(out)]) == 0
    return out


def test_results_json_records_everything(trained):
    results = json.loads((trained / "results.json").read_text())
    assert RESULT_KEYS <= set(results)
    assert results["model"] == "bpr" and results["seed"] == 3
    assert len(results["data_sha256"]) == 64
    assert {"ndcg@10", "recall@5", "precision@10", "hit@10", "mrr@10", "map@10"} <= set(results["metrics"]["test"])
    assert all(k == k.lower() for k in results["metrics"]["test"])
    assert results["timings"]["epochs"] >= 1 and results["timings"]["fit_s"] > 0
    assert "torch" in results["versions"] and results["config"]["model"]["params"] == {"embedding_size": 16}


def test_model_learns_the_planted_groups(trained):
    results = json.loads((trained / "results.json").read_text())
    # 30 candidate items in the user's group out of 60: a random ranking would put ~half the top 10 in the wrong
    # group; a model that learned the groups gets recall far above the random baseline (~10/60 of targets).
    assert results["metrics"]["test"]["recall@10"] > 0.35


def test_recommend_uses_raw_ids_and_excludes_seen(trained, dataset_dir):
    rec = Recommender.load(trained / "model")
    seen = {line.split("\t")[1] for line in (dataset_dir / "planted.inter").read_text().splitlines()[1:]
            if line.split("\t")[0] == "u0"}
    items = rec.recommend("u0", k=10)
    assert len(items) == 10 and all(isinstance(i, str) and i.startswith("i") for i, _ in items)
    assert not seen & {i for i, _ in items}
    assert [s for _, s in items] == sorted((s for _, s in items), reverse=True)
    # user u0 is in group 0 -> items i0..i29
    assert sum(int(i[1:]) < 30 for i, _ in items) >= 8


def test_recommend_candidates_and_exclude(trained):
    rec = Recommender.load(trained / "model")
    got = rec.recommend(["u0", "u1"], k=3, exclude_seen=False, candidates=["i1", "i2", "i40", "i41"], exclude=["i2"])
    assert len(got) == 2
    for items in got:
        assert {i for i, _ in items} <= {"i1", "i40", "i41"} and len(items) == 3


def test_unknown_user_is_a_clear_error(trained):
    from fusionrec.errors import UnknownIdError

    rec = Recommender.load(trained / "model")
    with pytest.raises(UnknownIdError, match="unknown user id 'nobody'"):
        rec.recommend("nobody")


def test_recommend_cli_prints_items(trained, capsys):
    assert main(["recommend", "--model", str(trained / "model"), "--user", "u1", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["u1"]) == 3 and {"item_id", "score"} <= set(out["u1"][0])


def test_bad_config_key_exits_with_message(config_file, tmp_path, capsys):
    code = main(["train", "--config", str(config_file), "--set", "training.nope=1", "--out", str(tmp_path)])
    assert code == 2 and "'training.nope': unknown key" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_compare_writes_table_json_and_chart(config_file, tmp_path):
    assert main(["compare", "--config", str(config_file), "--models", "pop,bpr", "--out", str(tmp_path),
                 "--quiet"]) == 0
    table = (tmp_path / "comparison.md").read_text()
    assert "| pop |" in table and "| bpr |" in table
    summary = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["model"] for r in summary["rows"]] == ["pop", "bpr"]
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # both trained on the same split of the same data
    a = json.loads((tmp_path / "pop" / "results.json").read_text())
    b = json.loads((tmp_path / "bpr" / "results.json").read_text())
    assert a["data_sha256"] == b["data_sha256"] and a["split"]["sizes"] == b["split"]["sizes"]


def test_sampled_mode_saves_negatives_and_reports_metrics(config_file, tmp_path):
    import numpy as np

    out = tmp_path / "sampled"
    assert main(["train", "--config", str(config_file), "--set", "evaluation.mode=sampled",
                 "--set", "evaluation.sampled_negatives=20", "--out", str(out)]) == 0
    neg = np.load(out / "negatives-test.npy", allow_pickle=False)
    assert neg.shape == (60, 20)
    results = json.loads((out / "results.json").read_text())
    assert results["evaluation"]["mode"] == "sampled"
    # 20 negatives + the user's few targets: a ranking that learned the groups puts targets near the top
    assert results["metrics"]["test"]["hit@10"] > 0.8


@pytest.mark.parametrize("override, message", [
    ("model.name=nope", "'model.name': unknown model 'nope'; available: biased-mf, bpr,"),
    ("model.params.embedding_size=-4",
     "--set model.params.embedding_size=-4: 'model.params.embedding_size': -4 is out of range: must be >= 1"),
    ("model.params.n_layers=-1", "--set model.params.n_layers=-1: 'model.params.n_layers': -1 is out of range"),
    ("model.params.similarity=cos", "'model.params.similarity': expected one of 'dot', 'cosine', got 'cos'"),
    ("training.lr=.nan", "--set training.lr=.nan: 'training.lr': expected a finite number"),
    ("training.lr=-0.01", "'training.lr': -0.01 is out of range: must be > 0"),
    ("training.batch_size=0", "'training.batch_size': 0 is out of range: must be >= 1"),
])
def test_a_bad_model_fails_with_one_line_before_any_data_are_read(config_file, tmp_path, capsys, override, message):
    # the dataset path does not exist: had the data been read first, the error would be about it
    code = main(["train", "--config", str(config_file), "--set", "model.name=lightgcn", "--set", override,
                 "--set", f"dataset.path={tmp_path / 'no-such-dataset'}", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and "no-such-dataset" not in err
    assert not (tmp_path / "run" / "results.json").exists()
