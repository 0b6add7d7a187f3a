"""User side information aligned to the user id map (RecBole's ``NAME.user`` fields: age, gender, occupation,
country, ...), and the sparse user x feature matrix a model reads it as."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class UserSideInfo:
    """Per-user fields, every list/array of length ``n_users`` and indexed by internal user index.

    ``categorical``: field -> list of token tuples (empty when missing), e.g. gender or occupation; ``numeric``:
    field -> float array (NaN when missing), e.g. age. ``origin``: field -> how the reader decided its kind."""

    n_users: int
    categorical: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in (self.categorical, self.numeric):
            for name, values in kind.items():
                if len(values) != self.n_users:
                    raise ValueError(f"user field '{name}' has {len(values)} values for {self.n_users} users")

    @property
    def fields(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    def resized(self, n_users: int) -> "UserSideInfo":
        """Padded to ``n_users`` (users added after reading, e.g. from an event store: no fields)."""
        extra = n_users - self.n_users
        return UserSideInfo(n_users, {k: v + [()] * extra for k, v in self.categorical.items()},
                            {k: np.concatenate([v, np.full(extra, np.nan)]) for k, v in self.numeric.items()},
                            origin=dict(self.origin))

    def feature_matrix(self, bins: int = 4) -> tuple[sp.csr_matrix, list[str]]:
        """(n_users, n_features) float32 CSR and the feature names: one feature per ``field=token`` of a categorical
        field, and per quantile bin of a numeric field (``field=q0`` .. ``q{bins-1}``, edges over the users that
        have a value); each row averages the user's features (sums to 1; a user without any: an empty row)."""
        rows, cols, names = [], [], []
        for name, values in self.categorical.items():
            vocab: dict[str, int] = {}
            for user, tokens in enumerate(values):
                for token in dict.fromkeys(tokens):
                    if token not in vocab:
                        vocab[token] = len(names)
                        names.append(f"{name}={token}")
                    rows.append(user)
                    cols.append(vocab[token])
        for name, values in self.numeric.items():
            known = np.flatnonzero(~np.isnan(values))
            if not len(known):
                continue
            edges = np.unique(np.quantile(values[known], np.linspace(0, 1, bins + 1)[1:-1]))
            which = np.searchsorted(edges, values[known], side="right")
            first = len(names)
            names.extend(f"{name}=q{b}" for b in range(len(edges) + 1))
            rows.extend(known.tolist())
            cols.extend((first + which).tolist())
        matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(self.n_users, len(names)))
        counts = np.asarray(matrix.sum(axis=1)).ravel()
        scale = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0).astype(np.float32)
        return sp.csr_matrix(sp.diags(scale) @ matrix, dtype=np.float32), names

    def fingerprint(self) -> bytes:
        parts = []
        for name in sorted(self.categorical):
            parts.append(("C" + name + "\x1e" + "\x1f".join("\x1d".join(t) for t in self.categorical[name])).encode())
        for name in sorted(self.numeric):
            parts.append(("N" + name).encode() + self.numeric[name].astype("<f8").tobytes())
        return b"|".join(parts)
