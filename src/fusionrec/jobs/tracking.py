"""Experiment tracking: a run's configuration, per-epoch loss terms, validation metrics, learning rate and timings,
and its final metrics, sent to TensorBoard (event files under ``OUT/tensorboard``) or to an MLflow tracking server.

Off by default; each backend is an optional extra imported only when asked for (``pip install fusionrec[track]``
for TensorBoard, ``fusionrec[mlflow]`` for MLflow). Where MLflow writes is the tracking URI given on the command line
(``--track-uri``) or the usual ``MLFLOW_TRACKING_URI`` of the environment, never a value read from a config or an
artifact.
"""

from __future__ import annotations

import abc
import re
from pathlib import Path

from fusionrec.errors import ConfigError
from fusionrec.training.run_record import EpochLog

BACKENDS = ("tensorboard", "mlflow")


class Tracker(abc.ABC):
    """One run's tracking: :meth:`start` before training, :meth:`epoch` as the trainer's epoch observer,
    :meth:`finish` with the results (also after an interrupted run, whose results hold what it learnt, and with
    ``{"failed": True}`` after one that raised)."""

    @abc.abstractmethod
    def start(self, config: dict) -> None:
        """The run's configuration (nested dict, as results.json's ``config``)."""

    @abc.abstractmethod
    def epoch(self, log: EpochLog) -> None:
        """One finished epoch: ``loss/<term>``, ``valid/<metric>`` (when validated), ``lr``, ``time/train_s``."""

    @abc.abstractmethod
    def finish(self, results: dict) -> None:
        """The final ``valid/`` and ``test/`` metrics (at the best epoch), then closes."""


def epoch_scalars(log: EpochLog) -> dict[str, float]:
    """The scalars of one epoch under the names every backend uses."""
    out = {f"loss/{term}": value for term, value in log.losses.items()}
    out.update({f"valid/{name}": value for name, value in (log.valid or {}).items()})
    if log.lr is not None:
        out["lr"] = log.lr
    out["time/train_s"] = log.train_s
    return out


def final_scalars(results: dict) -> dict[str, float]:
    metrics = results.get("metrics", {})
    return {f"{part}_final/{name}": float(value) for part in ("valid", "test")
            for name, value in metrics.get(part, {}).items() if isinstance(value, (int, float))}


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """``{"training.lr": "0.005", ...}`` from a nested config (lists and None as text)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, name + "."))
        else:
            out[name] = str(value)
    return out


class TensorBoardTracker(Tracker):
    """Scalars in ``folder`` (one event file per run), readable by ``tensorboard --logdir folder``."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--track tensorboard needs the tensorboard package: pip install 'fusionrec[track]'",
                              key="--track") from None
        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def start(self, config: dict) -> None:
        import yaml

        self.writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "\n```", 0)

    def epoch(self, log: EpochLog) -> None:
        for name, value in epoch_scalars(log).items():
            self.writer.add_scalar(name, value, log.epoch)
        self.writer.flush()

    def finish(self, results: dict) -> None:
        step = int(results.get("best_epoch") or 0)
        for name, value in final_scalars(results).items():
            self.writer.add_scalar(name, value, step)
        self.writer.close()


class MLflowTracker(Tracker):
    """One MLflow run: the flattened config as params, per-epoch metrics by step, the final metrics, and the run's
    output folder (results.json, model/) as artifacts. ``uri``: the tracking server or store; None: MLflow's own
    default (``MLFLOW_TRACKING_URI``, else ./mlruns)."""

    def __init__(self, out_dir: Path, uri: str | None, experiment: str):
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--track mlflow needs MLflow: pip install 'fusionrec[mlflow]'", key="--track") from None
        self.mlflow, self.out_dir = mlflow, Path(out_dir)
        if uri:
            mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment)
        self.run = None

    @staticmethod
    def key(name: str) -> str:
        """MLflow's metric names allow letters, digits, ``_ - . / `` and space: ``ndcg@10`` -> ``ndcg_at_10``."""
        return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name.replace("@", "_at_"))

    def start(self, config: dict) -> None:
        self.run = self.mlflow.start_run()
        params = flat_params(config)
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            self.mlflow.log_params(dict(list(params.items())[start:start + 100]))

    def epoch(self, log: EpochLog) -> None:
        self.mlflow.log_metrics({self.key(k): v for k, v in epoch_scalars(log).items()}, step=log.epoch)

    def finish(self, results: dict) -> None:
        self.mlflow.log_metrics({self.key(k): v for k, v in final_scalars(results).items()},
                                step=int(results.get("best_epoch") or 0))
        if self.out_dir.is_dir():
            self.mlflow.log_artifacts(str(self.out_dir))
        self.mlflow.end_run("FAILED" if results.get("failed") else "KILLED" if results.get("interrupted")
                            else "FINISHED")


def make_tracker(backend: str, out_dir: str | Path, uri: str | None = None,
                 experiment: str = "fusionrec") -> Tracker:
    """The tracker of ``backend`` (:data:`BACKENDS`) for a run writing into ``out_dir``."""
    if backend == "tensorboard":
        if uri:
            raise ConfigError("--track-uri is for mlflow; tensorboard writes under DIR/tensorboard", key="--track-uri")
        return TensorBoardTracker(Path(out_dir) / "tensorboard")
    if backend == "mlflow":
        return MLflowTracker(Path(out_dir), uri, experiment)
    raise ConfigError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}", key="--track")
