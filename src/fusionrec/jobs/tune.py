"""`fusionrec tune`: hyper-parameter search with Optuna over any model's config, selected on validation only.

Each trial is one ``run_experiment`` on the same split (loaded once) with the searched keys set (``jobs.tune_space``):
a TPE sampler proposes, and a pruner stops a trial early (:class:`~fusionrec.training.StopTraining`): ``halving``
(the default: successive halving, a trial goes on past 2, 6, 18, ... epochs only while its validation metric is in
the best third of the trials that reached that epoch), ``median`` (below the median of the earlier trials at that
epoch, from the 6th epoch once 5 trials have finished) or ``none``. The study lives in ``DIR/study.db``
(SQLite), so a search that was killed carries on where it stopped when run again with the same ``DIR``: finished and
pruned trials count towards ``--trials``, a trial the kill cut short is marked failed. ``--time-budget`` stops
starting trials once spent and caps the running one's training to what is left.

Writes ``DIR/trials/NNNN/`` (each trial's results.json; no model artifacts), ``DIR/trials.csv`` and
``DIR/trials.png`` (every trial's validation metric, and the best so far), ``DIR/best.yaml`` (the config with the
best trial's values: ready for ``fusionrec train --config``) and ``DIR/tune.json`` (the space, the choice, the
counts, the wall time, versions). The test metrics of each trial are recorded, never used to choose.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path

from fusionrec.config import load_config
from fusionrec.errors import ConfigError, FusionrecError
from fusionrec.jobs.experiment import prepare_data, run_experiment
from fusionrec.jobs.tune_report import write_reports
from fusionrec.jobs.tune_space import check_space, override, read_space
from fusionrec.training import EpochLog, StopTraining
from fusionrec.training.run_record import higher_is_better, metric_of

STUDY = "fusionrec"
PRUNERS = ("halving", "median", "none")


class TrialInterrupted(FusionrecError):
    """SIGINT / SIGTERM stopped a trial: the trial is failed and the search ends (run it again to carry on)."""


class PruneTrial:
    """Epoch observer: reports each validated epoch's metric to the trial and stops a trial Optuna prunes."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric

    def __call__(self, log: EpochLog) -> None:
        if log.valid is None:
            return
        self.trial.report(metric_of(log.valid, self.metric), log.epoch)
        if self.trial.should_prune():
            raise StopTraining("pruned")


def run_tune(config: str | Path, space_file: str | Path, trials: int, out_dir: str | Path,
             overrides: list[str] | None = None, time_budget_s: float | None = None, pruner: str = "halving",
             log=None) -> dict:
    """Runs (or carries on) the search; returns tune.json's content."""
    import optuna

    log = log or (lambda message: None)
    out = Path(out_dir)
    overrides = [*(overrides or []), "training.progress=false"]
    if trials < 1:
        raise ConfigError(f"must be at least 1, got {trials}", key="--trials")
    if pruner not in PRUNERS:
        raise ConfigError(f"must be one of {', '.join(PRUNERS)}, got {pruner!r}", key="--pruner")
    if time_budget_s is not None and time_budget_s <= 0:
        raise ConfigError(f"must be > 0 seconds, got {time_budget_s}", key="--time-budget")
    dimensions = read_space(space_file)
    check_space(dimensions, config, overrides, str(space_file))
    base = load_config(config, overrides)
    metric = base.training.valid_metric
    out.mkdir(parents=True, exist_ok=True)
    with _only_search_in(out):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=STUDY, storage=f"sqlite:///{(out / 'study.db').resolve()}", load_if_exists=True,
            direction="maximize" if higher_is_better(metric) else "minimize",
            pruner=_pruner(pruner))
        # seeded by the config's seed and the trials already stored: a resumed search draws new points instead of
        # repeating the first process's draws
        study.sampler = optuna.samplers.TPESampler(seed=base.seed + len(study.trials))
        for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # cut short by a kill: this DIR is ours
            log(f"trial {stale.number}: cut short by an earlier stop, marked failed")
        done = _finished(study)
        if done:
            log(f"carrying on: {done} of {trials} trials already done in {out / 'study.db'}")
        prepared = prepare_data(base, log)
        started = time.monotonic()
        durations: list[float] = []

        def objective(trial) -> float:
            t0 = time.monotonic()
            values = {dim.key: dim.suggest(trial) for dim in dimensions}
            sets = [*overrides, *(override(k, v) for k, v in values.items())]
            if time_budget_s is not None:
                left = max(time_budget_s - (time.monotonic() - started), 1.0)
                sets.append(f"training.time_budget_s={min(left, base.training.time_budget_s or left)}")
            cfg = load_config(config, sets)
            results = run_experiment(cfg, out / "trials" / f"{trial.number:04d}", prepared=prepared,
                                     log=lambda message: None,
                                     observers=(PruneTrial(trial, metric),) if pruner != "none" else ())
            _remove_artifact(out / "trials" / f"{trial.number:04d}")
            trial.set_user_attr("epochs", results["timings"]["epochs"])
            trial.set_user_attr("stopped_by", results["stopped_by"])
            trial.set_user_attr("test", metric_of(results["metrics"]["test"], metric)
                                if results["metrics"].get("test") else None)
            durations.append(time.monotonic() - t0)
            if results["interrupted"]:
                study.stop()
                raise TrialInterrupted(f"trial {trial.number} interrupted")
            value = metric_of(results["metrics"]["valid"], metric)
            _progress(log, trial.number, value, results, study, trials, durations)
            if results["stopped_by"] == "pruned":
                raise optuna.TrialPruned()
            return value

        left = trials - done
        if left > 0:
            study.optimize(objective, n_trials=left, timeout=time_budget_s, catch=(FusionrecError,))
        wall_s = time.monotonic() - started
        summary = write_reports(study, out, dimensions, metric, base, config, space_file, overrides, wall_s,
                                prepared.data_sha256, trials, pruner)
    if summary["best"] is not None:
        log(f"best: trial {summary['best']['trial']} valid {metric} {summary['best']['value']:.4f} -> "
            f"{out / 'best.yaml'}")
    return summary


def _pruner(name: str):
    """Successive halving from 2 epochs by thirds: most trials stop after 2 or 6 epochs, so a search of N trials costs
    a few full trainings (bench/tune_vs_grid.sh measures it against the median pruner and a grid)."""
    import optuna

    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    return optuna.pruners.NopPruner()


def _finished(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _progress(log, number: int, value: float, results: dict, study, trials: int, durations: list[float]) -> None:
    """One line a trial: its value, the best so far, the time spent and an estimate of what is left (the mean
    trial time so far, pruned ones included, times the trials left)."""
    done = _finished(study) + 1
    pruned = results["stopped_by"] == "pruned"
    try:
        best = study.best_value
        if not pruned:  # a pruned trial's last value is no candidate (best.yaml comes from finished trials)
            best = max(best, value) if study.direction.name == "MAXIMIZE" else min(best, value)
    except ValueError:  # no finished trial yet
        best = None if pruned else value
    mean = sum(durations) / len(durations)
    left = max(trials - done, 0)
    note = f" (pruned at epoch {results['timings']['epochs']})" if pruned else ""
    best_text = "none finished yet" if best is None else f"{best:.4f}"
    log(f"trial {number}: valid {value:.4f}{note} | best {best_text} | {done}/{trials} done, "
        f"~{mean * left / 60:.1f} min left ({mean:.0f} s a trial)")


def _remove_artifact(folder: Path) -> None:
    """A trial keeps its results.json; its model folder would only fill the disk (best.yaml retrains the best)."""
    import shutil

    shutil.rmtree(folder / "model", ignore_errors=True)


@contextlib.contextmanager
def _only_search_in(out: Path):
    """One search at a time in a folder: a second `fusionrec tune` on the same DIR is refused while one runs."""
    with open(out / "tune.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"another fusionrec tune is running in {out}", key="--out") from None
        yield
