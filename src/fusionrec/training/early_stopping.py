"""Early stopping on a validation score where bigger is better."""

from __future__ import annotations

import math


class EarlyStopping:
    """Counts evaluations without improvement; ``patience`` 0 never stops.

    >>> stop = EarlyStopping(patience=2)
    >>> [stop.update(s, epoch) for epoch, s in enumerate([0.1, 0.3, 0.2, 0.25], 1)]
    [True, True, False, False]
    >>> stop.should_stop, stop.best_epoch, stop.best_score
    (True, 2, 0.3)
    """

    def __init__(self, patience: int):
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.patience = patience
        self.best_score = -math.inf
        self.best_epoch = 0
        self.bad_evals = 0

    def update(self, score: float, epoch: int) -> bool:
        """Records one evaluation; True when it is a new best (a NaN score never is)."""
        if score > self.best_score:  # False for NaN
            self.best_score, self.best_epoch, self.bad_evals = float(score), epoch, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_evals >= self.patience

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the best score and epoch and the evaluations since."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict) -> None:
        self.best_score = float(state["best_score"])
        self.best_epoch, self.bad_evals = int(state["best_epoch"]), int(state["bad_evals"])
