"""Ordered histories with a planted next-item rule, for tests that a sequence model learns the order.

Every item has one successor (a random permutation). A user's history is ``runs`` short runs, each starting at a
random item and following successors for ``run_length`` items, and it ends inside a run, so the user's last item
is the successor of the one before. Which items co-occur says little about which is last: an order-blind
(bag-of-items) model sees every run's two open ends (the successor of its last item and the predecessor of its
first) as equally likely next items, about ``2 * runs`` candidates, while a model of the order sees one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusionrec.data.interactions import Interactions


@dataclass(frozen=True, eq=False)
class PlantedSequences:
    """``train``: every user's items but the last (timestamps = positions); ``test``: each user's last item (the
    successor of their last training item); ``successor``: int64 (n_items,), the planted rule."""

    train: Interactions
    test: Interactions
    successor: np.ndarray


def planted_sequences(n_users: int = 1500, n_items: int = 300, runs: int = 10, run_length: int = 3,
                      seed: int = 0) -> PlantedSequences:
    """A dataset whose every user's next item is the successor of their last one (see the module)."""
    if run_length < 2 or runs < 1:
        raise ValueError("need at least one run of at least two items")
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items).astype(np.int64)
    users, items, positions = [], [], []
    for user in range(n_users):
        sequence: list[int] = []
        for _ in range(runs):
            item = int(rng.integers(n_items))
            for _ in range(run_length):
                sequence.append(item)
                item = int(successor[item])
        while int(successor[sequence[-1]]) in sequence:  # the answer must not be an item already seen
            sequence[-1] = int(rng.integers(n_items))
        sequence.append(int(successor[sequence[-1]]))
        users += [user] * len(sequence)
        items += sequence
        positions += range(len(sequence))
    users_a, items_a = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    ts = np.asarray(positions, dtype=np.float64)
    last = np.r_[users_a[1:] != users_a[:-1], True]
    whole = Interactions(users_a, items_a, n_users, n_items, timestamps=ts)
    return PlantedSequences(whole.take(~last), whole.take(last), successor)
