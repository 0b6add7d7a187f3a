"""Who knows whom: a social graph over the dataset's users (friendship, trust, following), as social recommenders
(DiffNet, MHCN, SEPT) read it. RecBole keeps it in ``NAME.net`` (``source_id:token target_id:token``, one directed
edge a line; a friendship usually appears in both directions)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import DataError


@dataclass(frozen=True, eq=False)
class SocialGraph:
    """``edges`` (E, 2) int64: directed (source, target) pairs of user indices, each pair once, no self-loops, in the
    order first given; ``n_users``: the user map's size (users without edges included)."""

    edges: np.ndarray
    n_users: int

    @property
    def n_edges(self) -> int:
        return int(len(self.edges))

    def adjacency(self, symmetric: bool = True) -> sp.csr_matrix:
        """(n_users, n_users) 0/1 CSR: ``A[s, t] = 1`` for each edge, and with ``symmetric`` also ``A[t, s]`` (a
        friendship read either way)."""
        s, t = self.edges[:, 0], self.edges[:, 1]
        if symmetric:
            s, t = np.concatenate([s, t]), np.concatenate([t, s])
        a = sp.csr_matrix((np.ones(len(s), dtype=np.float32), (s, t)), shape=(self.n_users, self.n_users))
        a.sum_duplicates()
        a.data[:] = 1.0
        return a

    def users_with_friends(self) -> int:
        """Users at either end of at least one edge."""
        return int(len(np.unique(self.edges)))

    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.edges.astype(np.int64).tobytes() + str(self.n_users).encode()).digest()


def build_social_graph(file: str, sources: Sequence[str], targets: Sequence[str], lines: np.ndarray,
                       user_lookup: dict[str, int], notes: list[str],
                       fields: tuple[str, str] = ("source_id", "target_id")) -> SocialGraph:
    """The graph of these raw-id edges over ``user_lookup``. Edges naming a user the interactions do not know are
    skipped (as RecBole's social datasets do), and so are self-loops and repeated edges; each kind is counted in
    ``notes``. An empty id raises :class:`DataError` naming file, line and field."""
    for values, name in zip((sources, targets), fields):
        for k, value in enumerate(values):
            if not value:
                raise DataError("empty user id", file=file, line=int(lines[k]), field=name)
    src = np.fromiter((user_lookup.get(v, -1) for v in sources), dtype=np.int64, count=len(sources))
    dst = np.fromiter((user_lookup.get(v, -1) for v in targets), dtype=np.int64, count=len(targets))
    known = (src >= 0) & (dst >= 0)
    if not known.all():
        k = int(np.flatnonzero(~known)[0])
        notes.append(f"{file}: skipped {int((~known).sum())} edge(s) naming a user without interactions (first: "
                     f"{sources[k]!r} -> {targets[k]!r} on line {int(lines[k])})")
    loops = known & (src == dst)
    if loops.any():
        notes.append(f"{file}: skipped {int(loops.sum())} self-loop(s)")
    keep = np.flatnonzero(known & ~loops)
    pairs = np.stack([src[keep], dst[keep]], axis=1) if len(keep) else np.zeros((0, 2), dtype=np.int64)
    _, first = np.unique(pairs[:, 0] * max(len(user_lookup), 1) + pairs[:, 1], return_index=True)
    if len(first) < len(pairs):
        notes.append(f"{file}: {len(pairs) - len(first)} repeated edge(s) kept once")
    return SocialGraph(pairs[np.sort(first)], len(user_lookup))
