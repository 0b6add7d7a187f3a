"""``fusionrec pretrain``: the text-side sequential model trained on one or more source datasets in turn, each
stage starting from the one before, and saved for ``model.init_from`` (fine-tuning, or zero-shot with
``training.epochs: 0``) on a target dataset that shares no ids with them, only the text encoder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fusionrec.config import RunConfig
from fusionrec.util import atomic_io

TEXT_ONLY = {"use_id": False, "use_text": True, "use_kg": False, "text_components": 0}
MODEL = "fusionrec-seq"


def text_only(cfg: RunConfig, init_from: str | None) -> RunConfig:
    """``cfg`` with its model made the text-only ``fusionrec-seq`` (its other hyper-parameters kept when it already
    is one), starting from ``init_from``."""
    params = dict(cfg.model.params) if cfg.model.name == MODEL else {}
    return replace(cfg, model=replace(cfg.model, name=MODEL, params={**params, **TEXT_ONLY}, init_from=init_from))


def run_pretraining(configs: list[RunConfig], out_dir: str | Path, log) -> dict:
    """Trains on each config's dataset in order; the last stage writes ``out_dir/model`` and
    ``out_dir/results.json``, earlier ones ``out_dir/stages/K-NAME``; ``out_dir/pretrain.json`` lists the stages
    (dataset, data hash, valid and test metrics, epochs). Returns that summary."""
    from fusionrec.jobs.experiment import run_experiment

    out_dir = Path(out_dir)
    stages, previous = [], None
    for k, cfg in enumerate(configs, 1):
        staged = text_only(cfg, previous)
        stage_dir = out_dir if k == len(configs) else out_dir / "stages" / f"{k}-{cfg.dataset.name}"
        log(f"pretrain stage {k}/{len(configs)}: {MODEL} (text only) on {cfg.dataset.name}"
            + (f", from {previous}" if previous else ""))
        results = run_experiment(staged, stage_dir, log=log)
        previous = str(stage_dir / "model")
        stages.append({"dataset": results["dataset"], "data_sha256": results["data_sha256"], "out": str(stage_dir),
                       "epochs": results["timings"]["epochs"], "best_epoch": results["best_epoch"],
                       "valid": results["metrics"]["valid"], "test": results["metrics"]["test"]})
        if results["interrupted"]:
            break
    summary = {"model": previous, "stages": stages, "text_only": TEXT_ONLY}
    atomic_io.write_json(out_dir / "pretrain.json", summary)
    return summary
