"""The epoch progress bar, whose total follows early stopping so that its ETA is honest.

With validation and a patience, training ends at the latest when ``patience`` evaluations in a row bring no
improvement: at epoch ``best_epoch + patience * eval_every`` (or ``epochs``, whichever comes first). The bar's total
is that epoch, moved on each time the score improves; the description keeps the maximum (``max 300``).
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def expected_last_epoch(max_epochs: int, patience: int, eval_every: int, best_epoch: int,
                        validated: bool) -> int:
    """The epoch training stops at if the score never improves again: ``min(max_epochs, best_epoch + patience *
    eval_every)``; ``max_epochs`` without validation or with patience 0 (never stops early)."""
    if not validated or patience <= 0:
        return max_epochs
    return max(1, min(max_epochs, best_epoch + patience * eval_every))


def epoch_bar(name: str, first_epoch: int, max_epochs: int, total: int, enabled: bool) -> tqdm:
    """A bar over epochs ``first_epoch .. max_epochs`` (a resumed run starts past 1), of ``total`` epochs."""
    return tqdm(range(first_epoch, max_epochs + 1), desc=f"train {name} (max {max_epochs})", unit="epoch",
                initial=first_epoch - 1, total=max(total, first_epoch - 1), file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)


def follow(bar: tqdm, total: int) -> None:
    """Moves the bar's total (and with it the ETA) to ``total`` epochs; never below the epochs already done."""
    total = max(total, bar.n + 1)
    if bar.total != total:
        bar.total = total
