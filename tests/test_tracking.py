"""`fusionrec train --track tensorboard|mlflow`: the config, each epoch's loss terms, validation metrics, learning
rate and time, and the final metrics reach the backend, read back here with the backend's own reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusionrec.cli import main
from fusionrec.data.synth_atomic import write_synthetic
from fusionrec.errors import ConfigError
from fusionrec.jobs.tracking import MLflowTracker, make_tracker

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ml-100k" / "bpr.yaml"
EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    write_synthetic(folder, "s", 80, 40, 900, seed=3)
    return folder


def train(data: Path, out: Path, *extra: str) -> dict:
    args = ["train", "--config", str(CONFIG), "--set", "dataset.name=s", "--set", f"dataset.path={data}",
            "--set", "model.params={embedding_size: 8}", "--set", f"training.epochs={EPOCHS}",
            "--set", "training.patience=0", "--quiet", "--out", str(out), *extra]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


def test_tensorboard_event_file_holds_every_epochs_scalars_and_the_final_metrics(data, tmp_path, one_thread):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = train(data, tmp_path / "run", "--track", "tensorboard")
    files = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = EventAccumulator(str(files[0])).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/loss", "loss/rec", "valid/ndcg@10", "lr", "time/train_s", "test_final/ndcg@10"} <= tags
    assert [e.step for e in events.Scalars("valid/ndcg@10")] == list(range(1, EPOCHS + 1))
    assert events.Scalars("lr")[0].value == pytest.approx(results["config"]["training"]["lr"])
    history = results["history"]
    assert [e.value for e in events.Scalars("loss/loss")] == pytest.approx([h["losses"]["loss"] for h in history])
    assert events.Scalars("test_final/ndcg@10")[0].value == pytest.approx(results["metrics"]["test"]["ndcg@10"])
    assert "config/text_summary" in events.Tags()["tensors"]


def test_mlflow_run_holds_params_metrics_by_epoch_and_the_artifacts(data, tmp_path, monkeypatch, one_thread):
    pytest.importorskip("mlflow")
    import mlflow

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root (./mlruns) stays inside the test's folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = train(data, tmp_path / "run", "--track", "mlflow", "--track-uri", uri)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("s")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["training.lr"] == str(results["config"]["training"]["lr"])
    steps = client.get_metric_history(run.info.run_id, "valid/ndcg_at_10")
    assert sorted(m.step for m in steps) == list(range(1, EPOCHS + 1))
    assert run.data.metrics["test_final/ndcg_at_10"] == pytest.approx(results["metrics"]["test"]["ndcg@10"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "results.json" in artifacts and "model" in artifacts


def test_backend_names_and_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="one of tensorboard, mlflow"):
        make_tracker("wandb", tmp_path)
    with pytest.raises(ConfigError, match="--track-uri is for mlflow"):
        make_tracker("tensorboard", tmp_path, uri="http://example")
    assert MLflowTracker.key("valid/ndcg@10") == "valid/ndcg_at_10"
