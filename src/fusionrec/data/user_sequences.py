"""Each user's interactions in the order they happened, as CSR-style ``(offsets, items)`` arrays built once.

The order is the interactions' timestamps (ties and rows without timestamps keep their row order); the sequential
atomic format and the event log give every row one, so a sequence model sees what the user did next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusionrec.data.interactions import Interactions

PAD = -1  # the item index of an empty slot in a window


@dataclass(frozen=True, eq=False)
class UserSequences:
    """User u's items in order are ``items[offsets[u]:offsets[u + 1]]``. ``offsets`` int64 (n_users + 1,),
    ``items`` int64 (n,), ``n_items`` the catalogue size (items index 0 .. n_items - 1)."""

    offsets: np.ndarray
    items: np.ndarray
    n_items: int

    def __post_init__(self) -> None:
        if len(self.offsets) == 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.items) \
                or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must start at 0, never decrease and end at len(items)")
        if len(self.items) and (self.items.min() < 0 or self.items.max() >= self.n_items):
            raise ValueError(f"item index out of range 0..{self.n_items - 1}")

    @classmethod
    def from_interactions(cls, interactions: Interactions) -> "UserSequences":
        """Every user's rows sorted by timestamp (a stable sort: equal or missing timestamps keep row order)."""
        users = interactions.users.astype(np.int64)
        if interactions.timestamps is None:
            order = np.argsort(users, kind="stable")
        else:
            ts = np.nan_to_num(interactions.timestamps.astype(np.float64), nan=-np.inf)
            order = np.lexsort((ts, users))  # by user, then time; lexsort is stable
        counts = np.bincount(users, minlength=interactions.n_users)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(offsets, interactions.items.astype(np.int64)[order], int(interactions.n_items))

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """int64 (n_users,): how many items each user's sequence holds."""
        return np.diff(self.offsets)

    def of(self, user: int) -> np.ndarray:
        """User ``user``'s items in order, int64 (length,)."""
        return self.items[self.offsets[user]:self.offsets[user + 1]]

    def last(self, users: np.ndarray, length: int) -> np.ndarray:
        """The last ``length`` items of each of ``users`` (B,), right-aligned: int64 (B, length), :data:`PAD` on the
        left of a shorter sequence."""
        users = np.asarray(users, dtype=np.int64)
        end = self.offsets[users + 1]
        take = np.minimum(end - self.offsets[users], length)
        return self._right_aligned(end - take, take, length)

    def windows(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Every user's sequence cut into training windows of ``length + 1`` items: ``(windows (W, length + 1) int64,
        users (W,) int64)``. Window k of a user ends ``k * length`` items before the sequence's end, so each item
        after the user's first is the target (a window's item after a non-empty slot) of exactly one window, with up
        to ``length`` items before it as its history. Windows are right-aligned, :data:`PAD` on the left."""
        lengths = self.lengths
        n_windows = np.where(lengths > 1, np.ceil(np.maximum(lengths - 1, 0) / length), 0).astype(np.int64)
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), n_windows)
        k = np.arange(len(users)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
        ends = self.offsets[users + 1] - k * length  # one past each window's last item
        starts = np.maximum(ends - length - 1, self.offsets[users])
        return self._right_aligned(starts, ends - starts, length + 1), users

    def _right_aligned(self, starts: np.ndarray, take: np.ndarray, width: int) -> np.ndarray:
        """(R, width) int64: row r holds ``items[starts[r]:starts[r] + take[r]]`` at its right end, :data:`PAD`
        before (take <= width)."""
        out = np.full((len(starts), width), PAD, dtype=np.int64)
        if width == 0 or len(starts) == 0:
            return out
        rows = np.repeat(np.arange(len(starts)), take)
        col = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)  # 0 .. take-1 within each row
        out[rows, width - np.repeat(take, take) + col] = self.items[np.repeat(starts, take) + col]
        return out
