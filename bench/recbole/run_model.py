"""Run one RecBole 1.2.1 model on ml-100k under bench/recbole/protocol.yaml and write one JSON result.

Runs in the RecBole venv (bench/.recbole/venv, built by setup.sh), not in fusionrec's::

    bench/.recbole/venv/bin/python bench/recbole/run_model.py BPR --out bench/out/x/BPR.json [--budget-s 480]

Wall-clock cap: ``--budget-s`` or the ``TRAIN_BUDGET_S`` environment variable (default: none). It bounds the
train+validate loop only (not data loading or the final test): after each validated epoch the run stops when
``elapsed + that epoch's train+valid time`` would pass the cap, i.e. when the next epoch would probably overrun;
the best-validation weights are then tested, as after early stopping.

The driver follows ``recbole.quick_start.run_recbole`` step by step (same seeding points, same config, same
best-checkpoint reload before the test) minus its FLOPs count, so that it can time training alone: per epoch it
records the seconds RecBole itself reports for training (``_train_epoch`` only) and, separately, validation.

The JSON (``schema: fusionrec-bench-recbole/1``) holds: model, dataset, status, metrics.valid / metrics.test
(lower-case RecBole keys such as ``ndcg@10``), timings (epoch_train_s list, epoch_s_median = median training
seconds per epoch, epoch_eval_s, fit_s, data_s, test_s, total_s), epochs, best_epoch, stopped_by
(early_stopping | time_budget | max_epochs | single_pass), peak_rss_mb (``ru_maxrss`` of this process at the end),
dataset statistics and versions. On a failure it still writes status "error" with the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

T_START = time.perf_counter()
HERE = Path(__file__).resolve().parent
SCHEMA = "fusionrec-bench-recbole/1"

# Run-time fixes that must precede the RecBole / torch imports (see bench/README.md):
# torch>=2.6 loads with weights_only=True, but RecBole's checkpoint pickles its Config object;
# DGL would otherwise write ~/.dgl/config.json; torch_scatter (KGIN) comes from our shim.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
os.environ.setdefault("DGLBACKEND", "pytorch")
sys.path.insert(0, str(HERE / "shims"))


class BudgetExhausted(Exception):
    """Raised from RecBole's per-epoch callback to end ``Trainer.fit`` at the wall-clock cap."""


class EpochRecorder:
    """Per-epoch timings and the stop reason of one ``Trainer.fit`` call.

    Hooks only the trainer instance: its ``_generate_train_loss_output`` (which RecBole calls with the start and end
    time of ``_train_epoch``) and the ``callback_fn`` that ``fit`` calls after each validation.
    """

    def __init__(self, trainer, budget_s: float | None) -> None:
        self.trainer = trainer
        self.budget_s = budget_s
        self.train_s: list[float] = []
        self.eval_s: list[float] = []
        self.valid_ndcg: list[float] = []
        self.best_epoch: int | None = None
        self.stopped_by = "max_epochs"
        self._fit_start = 0.0
        self._train_end = 0.0
        original = trainer._generate_train_loss_output

        def timed_output(epoch_idx, s_time, e_time, losses):
            self.train_s.append(e_time - s_time)
            self._train_end = time.time()
            return original(epoch_idx, s_time, e_time, losses)

        trainer._generate_train_loss_output = timed_output

    def callback(self, epoch_idx: int, valid_score: float) -> None:
        now = time.time()
        self.eval_s.append(now - self._train_end)
        self.valid_ndcg.append(float(valid_score))
        trainer = self.trainer
        if trainer.cur_step == 0:  # early_stopping() just took this epoch as the new best
            self.best_epoch = epoch_idx
        if trainer.cur_step > trainer.stopping_step:
            return  # RecBole stops by itself right after this callback
        if self.budget_s is None:
            return
        last_epoch = self.train_s[-1] + self.eval_s[-1]
        if epoch_idx + 1 < trainer.epochs and (now - self._fit_start) + last_epoch > self.budget_s:
            self.stopped_by = "time_budget"
            raise BudgetExhausted

    def fit(self, train_data, valid_data, show_progress: bool) -> float:
        """Runs ``trainer.fit``; returns its wall seconds (train + validation)."""
        trainer = self.trainer
        self._fit_start = time.time()
        try:
            trainer.fit(train_data, valid_data, saved=True, show_progress=show_progress, callback_fn=self.callback)
        except BudgetExhausted:
            trainer.logger.info(f"wall-clock cap of {self.budget_s:g} s reached after {len(self.train_s)} epochs")
        fit_s = time.time() - self._fit_start
        if self.stopped_by != "time_budget":
            if trainer.epochs == 1 and trainer.config["epochs"] != 1:
                self.stopped_by = "single_pass"  # TraditionalTrainer (Pop, ItemKNN ...) trains once
            elif len(self.train_s) < trainer.epochs:
                self.stopped_by = "early_stopping"
        return fit_s


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="RecBole model class name: Pop, ItemKNN, BPR, LightGCN, CKE, KGAT ...")
    p.add_argument("--out", required=True, type=Path, help="result JSON path")
    p.add_argument("--dataset", default="ml-100k", help="RecBole dataset name (default: ml-100k, bundled)")
    p.add_argument("--budget-s", type=float, default=None, help="wall-clock cap on train+valid (env TRAIN_BUDGET_S)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--workdir", type=Path, default=None, help="RecBole's log/ and checkpoints (default: a temp dir)")
    p.add_argument("--protocol", type=Path, default=HERE / "protocol.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra RecBole config entry; VALUE is parsed as JSON when it can be (repeatable)")
    args = p.parse_args(argv)
    if args.budget_s is None and os.environ.get("TRAIN_BUDGET_S"):
        args.budget_s = float(os.environ["TRAIN_BUDGET_S"])
    if args.budget_s is not None and args.budget_s <= 0:
        p.error("--budget-s must be > 0")
    overrides = {}
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            p.error(f"--set {item!r} must look like key=value")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    args.overrides = overrides
    return args


def _floats(result) -> dict[str, float] | None:
    return None if result is None else {str(k): float(v) for k, v in dict(result).items()}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(args: argparse.Namespace, out: dict, workdir: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    os.chdir(workdir)  # RecBole writes ./log and ./log_tensorboard relative to the working directory

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    out["versions"] = {"recbole": recbole.__version__, "torch": torch.__version__,
                       "python": sys.version.split()[0]}
    out["torch_threads"] = torch.get_num_threads()
    out["timings"]["import_s"] = round(time.perf_counter() - T_START, 2)

    config_dict = {"checkpoint_dir": str(workdir / "saved")}
    config_dict.update(args.overrides)
    t0 = time.perf_counter()
    config = Config(model=args.model, dataset=args.dataset, config_file_list=[str(args.protocol)],
                    config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    out["timings"]["data_s"] = round(time.perf_counter() - t0, 2)
    out["data"] = {
        "users": int(dataset.user_num - 1),  # RecBole reserves internal id 0 for padding
        "items": int(dataset.item_num - 1),
        "interactions": int(dataset.inter_num),
        "train": int(train_data._dataset.inter_num),
        "valid": int(valid_data._dataset.inter_num),
        "test": int(test_data._dataset.inter_num),
    }
    out["protocol"] = {k: config[k] for k in ("seed", "epochs", "train_batch_size", "learning_rate", "stopping_step",
                                              "valid_metric", "eval_args", "topk", "metrics")}

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    out["parameters"] = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    recorder = EpochRecorder(trainer, args.budget_s)
    fit_s = recorder.fit(train_data, valid_data, show_progress=config["show_progress"])
    t1 = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    test_s = time.perf_counter() - t1
    for ckpt in (workdir / "saved").glob("*.pth"):
        ckpt.unlink()

    out.update(
        status="ok",
        metrics={"valid": _floats(trainer.best_valid_result), "test": _floats(test_result)},
        epochs=len(recorder.train_s),
        best_epoch=recorder.best_epoch,
        stopped_by=recorder.stopped_by,
        valid_ndcg_per_epoch=[round(v, 5) for v in recorder.valid_ndcg],
    )
    out["timings"].update(
        fit_s=round(fit_s, 2),
        epoch_train_s=[round(s, 4) for s in recorder.train_s],
        epoch_s_median=_median(recorder.train_s),
        epoch_eval_s=[round(s, 4) for s in recorder.eval_s],
        epoch_eval_s_median=_median(recorder.eval_s),
        test_s=round(test_s, 2),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_path = args.out.resolve()
    out: dict = {"schema": SCHEMA, "side": "recbole", "model": args.model, "dataset": args.dataset,
                 "status": "error", "budget_s": args.budget_s, "overrides": args.overrides, "timings": {}}
    rc = 0
    with tempfile.TemporaryDirectory(prefix="recbole-bench-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        out["workdir"] = str(workdir) if args.workdir else None
        try:
            run(args, out, workdir)
        except Exception as exc:  # the JSON must still say what went wrong
            traceback.print_exc()
            out["error"] = f"{type(exc).__name__}: {exc}"
            out["traceback"] = traceback.format_exc()[-4000:]
            rc = 1
    out["timings"]["total_s"] = round(time.perf_counter() - T_START, 2)
    out["peak_rss_mb"] = peak_rss_mb()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {out_path}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
