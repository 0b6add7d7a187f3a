"""``fusionrec pretrain`` and ``model.init_from``: the text-side sequential model trained on one dataset starts a
run on another that shares no ids with it (fine-tuned, or as it is with ``training.epochs: 0``)."""

import json

import pytest
import torch

from fusionrec.artifacts import load_artifact
from fusionrec.cli import main
from fusionrec.config import load_config
from fusionrec.data.synth_atomic import write_synthetic
from fusionrec.errors import ConfigError
from fusionrec.jobs.experiment import run_experiment

SMALL = ["model.name=fusionrec-seq", "model.params.embedding_size=16", "model.params.n_heads=1",
         "model.params.n_layers=1", "model.params.max_length=10", "training.loss=full_softmax",
         "training.batch_size=256", "training.progress=false", "evaluation.ks=[10]", "split.method=leave_one_out"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    for name, seed in (("source", 1), ("target", 2)):  # ids are drawn per dataset: nothing shared but the text
        write_synthetic(root / name, name, n_users=150, n_items=120, n_interactions=2400, text=True, seed=seed)
    return root


def _config(root, name: str, *more: str):
    return load_config(None, [f"dataset.name={name}", f"dataset.path={root / name}", *SMALL, *more])


def test_pretrain_then_zero_shot_and_fine_tune_on_another_dataset(datasets, tmp_path, capsys):
    out = tmp_path / "pre"
    assert main(["pretrain", "--config", "/dev/null", "--out", str(out), "--quiet",
                 "--set", "dataset.name=source", "--set", f"dataset.path={datasets / 'source'}",
                 *sum((["--set", s] for s in SMALL + ["training.epochs=3"]), [])]) == 0
    summary = json.loads((out / "pretrain.json").read_text())
    assert [s["dataset"] for s in summary["stages"]] == ["source"]
    pretrained = load_artifact(out / "model").model
    assert pretrained.params.use_id is False  # pretraining is text only, whatever the config said
    state = pretrained.transferable_state()
    assert any(k.startswith("fusion.") for k in state) and any(k.startswith("adapter.") for k in state)

    zero = run_experiment(_config(datasets, "target", "model.params.use_id=false", "training.epochs=0",
                                  f"model.init_from={out / 'model'}"), tmp_path / "zero", log=lambda _: None)
    assert zero["init_from"]["parameters"] == sorted(state)
    used = load_artifact(tmp_path / "zero" / "model").model.transferable_state()
    for key, value in state.items():  # used as it is: not one value moved
        torch.testing.assert_close(used[key], value)

    tuned = run_experiment(_config(datasets, "target", "training.epochs=2", f"model.init_from={out / 'model'}"),
                           tmp_path / "tuned", log=lambda _: None)  # with ids: adapter and encoder carry over
    assert tuned["init_from"]["parameters"] == sorted(k for k in state if not k.startswith("fusion."))
    assert tuned["timings"]["epochs"] == 2


def test_a_model_without_catalogue_free_parameters_refuses_init_from(datasets, tmp_path):
    cfg = load_config(None, [f"dataset.name=target", f"dataset.path={datasets / 'target'}", "model.name=bpr",
                             "training.epochs=1", "training.progress=false", f"model.init_from={tmp_path}"])
    with pytest.raises(ConfigError, match="model.init_from"):
        run_experiment(cfg, tmp_path / "bpr", log=lambda _: None)


def test_a_source_with_another_encoder_norm_is_refused(datasets, tmp_path):
    """Pre-norm and post-norm encoders share most parameter names, but not what they mean: copying one into the
    other would start from weights made for another architecture."""
    pre = run_experiment(_config(datasets, "source", "model.params.use_id=false", "training.epochs=1",
                                 "model.params.norm=pre"), tmp_path / "pre", log=lambda _: None)
    assert pre["timings"]["epochs"] == 1
    cfg = _config(datasets, "target", "model.params.use_id=false", "training.epochs=1", "model.params.norm=post",
                  f"model.init_from={tmp_path / 'pre' / 'model'}")
    with pytest.raises(ConfigError, match=r"encoder: another architecture.*encoder\.norm\.weight.*input_norm") as err:
        run_experiment(cfg, tmp_path / "post", log=lambda _: None)
    assert err.value.key == "model.init_from"
