"""What a training run reports: each epoch's record (:class:`EpochLog`), the run's result (:class:`TrainResult`), the
observers that see each epoch and may stop training (:class:`StopTraining`), and which way a validation metric
points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from fusionrec.errors import ConfigError

RATING_LOSS = "mse"  # regression on explicit ratings (RatingPredictor.forward_ratings)
LOWER_IS_BETTER = ("rmse", "mae")  # validation metrics whose smaller values are better


def higher_is_better(metric: str) -> bool:
    return metric.split("/")[-1].lower() not in LOWER_IS_BETTER


class StopTraining(Exception):
    """Raised by an epoch observer to end training after this epoch (the best weights come back, as after early
    stopping); ``reason`` becomes the result's ``stopped_by`` (e.g. 'pruned' by a hyper-parameter search)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class EpochLog:
    """One epoch: ``losses`` holds the mean over the epoch's training pairs of the total ``loss``, the recommendation
    loss ``rec`` and each extra term (unweighted); ``valid`` the validation metrics when evaluated."""

    epoch: int
    losses: dict[str, float]
    train_s: float
    valid: dict[str, float] | None = None
    lr: float | None = None  # the learning rate the epoch trained with


EpochObserver = Callable[[EpochLog], None]  # sees each finished epoch; may raise StopTraining


@dataclass
class TrainResult:
    """``stopped_by``: 'early_stopping', 'max_epochs', 'time_budget', 'interrupted' (SIGINT / SIGTERM or
    :attr:`Trainer.stop`) or 'not_trainable'. ``best_score`` is the
    ``valid_metric`` of the restored weights (None without validation); an epoch observer's
    :class:`StopTraining` puts its own reason. ``epoch_seconds``: training time of each
    epoch, validation excluded; ``fit_seconds``: the whole call. ``loss`` and ``batch_size``: what training actually
    used, with ``loss_reason`` / ``batch_size_reason`` saying why when it differs from the config (the full softmax
    switched to the sampled one above ``full_softmax_max_items``; the batch grown by ``max_steps_per_epoch``)."""

    best_epoch: int
    best_score: float | None
    epochs_run: int
    stopped_by: str
    history: list[EpochLog] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    fit_seconds: float = 0.0
    loss: str | None = None
    loss_reason: str | None = None
    batch_size: int | None = None
    batch_size_reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def metric_of(metrics: dict[str, float], name: str) -> float:
    """``metrics[name]``, the name matched case-insensitively; ConfigError (``training.valid_metric``) naming what
    the validation returned when it is absent."""
    if name in metrics:
        return metrics[name]
    lowered = {k.lower(): v for k, v in metrics.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    returned = ", ".join(sorted(metrics)) or "nothing"
    raise ConfigError(f"the validation returned no {name!r}; it returned: {returned}", key="training.valid_metric")
