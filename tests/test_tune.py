"""`fusionrec tune`: Optuna search over config keys on one split, selected on validation, resumable, with the best
config written as a YAML that `fusionrec train` takes; bad search spaces name the file and the key."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fusionrec.cli import main
from fusionrec.config import load_config
from fusionrec.data.synth_atomic import write_synthetic
from fusionrec.errors import ConfigError
from fusionrec.jobs.tune import run_tune
from fusionrec.jobs.tune_space import check_space, read_space

pytest.importorskip("optuna")

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ml-100k" / "bpr.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    write_synthetic(folder, "s", 80, 40, 900, seed=3)
    return folder


def sets(data: Path) -> list[str]:
    return ["dataset.name=s", f"dataset.path={data}", "model.params={embedding_size: 8}", "training.epochs=3",
            "training.patience=0", "training.loss=bpr"]


def space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_search_writes_trials_best_config_and_resumes_where_it_stopped(data, tmp_path, one_thread):
    sp = space(tmp_path, "training.lr: {float: [0.001, 0.05], log: true}\n"
                         "model.params.similarity: {choices: [dot, cosine]}\n")
    out = tmp_path / "tune"
    first = run_tune(CONFIG, sp, 2, out, overrides=sets(data), pruner="none")
    assert first["counts"] == {"complete": 2, "pruned": 0, "fail": 0}
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["0", "1"] and all(r["state"] == "complete" for r in rows)
    best = max(rows, key=lambda r: float(r["valid"]))
    assert first["best"]["trial"] == int(best["trial"])
    assert (out / "trials.png").read_bytes()[:4] == b"\x89PNG"
    cfg = load_config(out / "best.yaml")  # ready for fusionrec train
    assert cfg.training.lr == pytest.approx(float(best["training.lr"]))
    assert cfg.model.params["similarity"] == best["model.params.similarity"]
    valid = json.loads((out / "trials" / f"{int(best['trial']):04d}" / "results.json").read_text())
    assert valid["metrics"]["valid"]["ndcg@10"] == pytest.approx(first["best"]["value"])

    again = run_tune(CONFIG, sp, 3, out, overrides=sets(data), pruner="none")  # carries on: one more trial
    assert again["counts"]["complete"] == 3
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3
    # the resumed process draws a new point, not the first process's first draw again
    assert len({(r["training.lr"], r["model.params.similarity"]) for r in rows}) == 3


def test_a_trial_cut_short_by_a_kill_is_marked_failed_and_not_counted(data, tmp_path, one_thread):
    import optuna

    sp = space(tmp_path, "training.lr: {float: [0.001, 0.05]}\n")
    out = tmp_path / "tune"
    out.mkdir()
    study = optuna.create_study(study_name="fusionrec", storage=f"sqlite:///{out / 'study.db'}",
                                direction="maximize")
    study.ask()  # what a killed process leaves: a trial that stays RUNNING
    summary = run_tune(CONFIG, sp, 1, out, overrides=sets(data), pruner="none")
    assert summary["counts"] == {"complete": 1, "pruned": 0, "fail": 1}


def test_median_pruning_stops_trials_that_fall_behind(data, tmp_path, one_thread):
    """Trials whose learning rate is too small to learn in time fall below the median and are pruned."""
    sp = space(tmp_path, "training.lr: {float: [1.0e-7, 0.05], log: true}\n")
    out = tmp_path / "tune"
    summary = run_tune(CONFIG, sp, 10, out, overrides=[*sets(data), "training.epochs=8"], pruner="median")
    rows = list(csv.DictReader((out / "trials.csv").open()))
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert summary["counts"]["pruned"] == len(pruned) >= 1 and summary["pruner"] == "median"
    assert all(int(r["epochs"]) < 8 and r["stopped_by"] == "pruned" for r in pruned)


def test_successive_halving_stops_most_trials_at_its_first_rungs(data, tmp_path, one_thread):
    """Successive halving (the default) lets a trial past 2 and 6 epochs only while it is in the best third of the
    trials that got there: with 9 trials, most stop at epoch 2 or 6, the best one is among those that went on, and
    the search trains far fewer epochs than 9 full trainings would."""
    sp = space(tmp_path, "training.lr: {float: [1.0e-7, 0.05], log: true}\n")
    out = tmp_path / "tune"
    summary = run_tune(CONFIG, sp, 9, out, overrides=[*sets(data), "training.epochs=8"])
    rows = list(csv.DictReader((out / "trials.csv").open()))
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert summary["pruner"] == "halving" and summary["counts"]["pruned"] == len(pruned) >= 4
    assert {int(r["epochs"]) for r in pruned} <= {2, 6}
    best = next(r for r in rows if int(r["trial"]) == summary["best"]["trial"])
    assert int(best["epochs"]) == 8 and summary["best"]["params"]["training.lr"] > 1e-4  # not a rate too small to learn
    assert sum(int(r["epochs"]) for r in rows) < 0.75 * 9 * 8


@pytest.mark.parametrize("text, key, message", [
    ("training.lr: {float: [0.1, 0.01]}\n", "training.lr", "low < high"),
    ("training.lr: {float: [0, 0.1], log: true}\n", "training.lr", "log scale needs low > 0"),
    ("training.lr: [0.1, 0.2]\n", "training.lr", "must be a mapping"),
    ("model.params.embedding_size: {int: [8, 64], step: 0}\n", "model.params.embedding_size", "step"),
    ("split.ratios: {choices: [[0.8, 0.1, 0.1]]}\n", "split.ratios", "not searchable"),
    ("training.lr: {float: [0.1, 0.2], choices: [1]}\n", "training.lr", "exactly one of"),
])
def test_a_malformed_space_names_the_file_and_the_key(tmp_path, text, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        read_space(space(tmp_path, text))
    assert err.value.key == key and "space.yaml" in str(err.value)


def test_a_key_the_config_lacks_is_refused_before_any_trial(tmp_path):
    path = space(tmp_path, "training.learning_rate: {float: [0.001, 0.01]}\n")
    with pytest.raises(ConfigError, match="does not make a valid config") as err:
        check_space(read_space(path), CONFIG, [], str(path))
    assert err.value.key == "training.learning_rate"
    path = space(tmp_path, "model.params.no_such_param: {choices: [1]}\n")
    with pytest.raises(ConfigError, match="no_such_param"):
        check_space(read_space(path), CONFIG, [], str(path))


def test_cli_tune_prints_the_best_trial(data, tmp_path, capsys, one_thread):
    sp = space(tmp_path, "training.lr: {float: [0.001, 0.05]}\n")
    args = ["tune", "--config", str(CONFIG), "--space", str(sp), "--trials", "1", "--out", str(tmp_path / "t"),
            "--no-prune"] + [a for s in sets(data) for a in ("--set", s)]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["counts"]["complete"] == 1 and printed["best"]["trial"] == 0
