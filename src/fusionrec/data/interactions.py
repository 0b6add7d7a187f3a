"""User-item interactions: one row per event, with optional rating, timestamp and weight."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interaction rows over internal indices.

    ``users``, ``items``: int64 arrays of shape (n,); ``ratings`` float32, ``timestamps`` float64 and ``weights``
    float32 are optional arrays of the same shape. ``n_users`` / ``n_items`` give the matrix shape, so a subset keeps
    the full catalogue's shape.
    """

    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.users)
        if len(self.items) != n:
            raise ValueError("users and items must have the same length")
        for name in ("ratings", "timestamps", "weights"):
            col = getattr(self, name)
            if col is not None and len(col) != n:
                raise ValueError(f"{name} must have the same length as users")
        if n and (self.users.min() < 0 or self.users.max() >= self.n_users):
            raise ValueError("user index out of range")
        if n and (self.items.min() < 0 or self.items.max() >= self.n_items):
            raise ValueError("item index out of range")

    def __len__(self) -> int:
        return len(self.users)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def density(self) -> float:
        cells = self.n_users * self.n_items
        return self.to_csr().nnz / cells if cells else 0.0

    def to_csr(self, values: str = "binary") -> sp.csr_matrix:
        """The user x item matrix. ``values``: 'binary' (1 per observed pair), 'count', 'weight' or 'rating'
        (repeated pairs are summed for count/weight, the last one wins for rating)."""
        if values == "binary" or values == "count":
            data = np.ones(len(self), dtype=np.float32)
        elif values == "weight":
            data = self.weights if self.weights is not None else np.ones(len(self), dtype=np.float32)
        elif values == "rating":
            if self.ratings is None:
                raise ValueError("these interactions carry no ratings")
            # keep the last occurrence of a repeated pair
            key = self.users * self.n_items + self.items
            _, last = np.unique(key[::-1], return_index=True)
            keep = len(key) - 1 - last
            m = sp.csr_matrix((self.ratings[keep].astype(np.float32), (self.users[keep], self.items[keep])),
                              shape=self.shape)
            return m
        else:
            raise ValueError(f"values must be binary, count, weight or rating, not {values!r}")
        m = sp.csr_matrix((data.astype(np.float32), (self.users, self.items)), shape=self.shape)
        m.sum_duplicates()
        if values == "binary":
            m.data[:] = 1.0
        return m

    def take(self, rows: np.ndarray) -> "Interactions":
        """A subset (boolean mask or row indices), same matrix shape."""
        pick = (lambda a: None if a is None else a[rows])
        return Interactions(self.users[rows], self.items[rows], self.n_users, self.n_items,
                            pick(self.ratings), pick(self.timestamps), pick(self.weights))

    def resized(self, n_users: int, n_items: int) -> "Interactions":
        """The same rows in a larger matrix (after new users or items were added)."""
        return Interactions(self.users, self.items, n_users, n_items, self.ratings, self.timestamps, self.weights)

    @staticmethod
    def concat(parts: "list[Interactions]") -> "Interactions":
        if not parts:
            raise ValueError("nothing to concatenate")
        n_users = max(p.n_users for p in parts)
        n_items = max(p.n_items for p in parts)

        def col(name, dtype):
            cols = [getattr(p, name) for p in parts]
            if all(c is None for c in cols):
                return None
            fill = np.nan if dtype != np.float32 or name == "ratings" else 1.0
            return np.concatenate([c if c is not None else np.full(len(p), fill, dtype=dtype)
                                   for c, p in zip(cols, parts)]).astype(dtype)

        return Interactions(np.concatenate([p.users for p in parts]), np.concatenate([p.items for p in parts]),
                            n_users, n_items, col("ratings", np.float32), col("timestamps", np.float64),
                            col("weights", np.float32))

    def fingerprint(self) -> bytes:
        """Bytes that identify the rows exactly (for content hashes)."""
        parts = [self.users.astype("<i8").tobytes(), self.items.astype("<i8").tobytes()]
        for col in (self.ratings, self.timestamps, self.weights):
            parts.append(b"-" if col is None else np.asarray(col).astype("<f8").tobytes())
        return b"|".join(parts)
