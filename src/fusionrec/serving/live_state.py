"""What serving adds to a trained model, in memory: interactions folded in per user and items added while serving.

A :class:`LiveState` holds no lock and does no I/O: the :class:`~fusionrec.serving.recommender.Recommender` that owns
it guards it with its read lock and writes the event store first. Rankers (:mod:`fusionrec.serving.ranking`) read it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.ids import IdMap
from fusionrec.serving.event_store import MAX_WEIGHT, MIN_WEIGHT, Event, weight_problem

log = logging.getLogger("fusionrec.serving")


class Histories(NamedTuple):
    """What a chunk of B users has seen: ``known`` (B,) bool, trained users; ``added`` (B, n_items) weights added
    while serving and ``has_added`` (B,) bool; ``trained_seen`` (B, n_items) training interactions (empty rows for
    new users); ``history`` = trained_seen + added."""

    known: np.ndarray
    added: sp.csr_matrix
    has_added: np.ndarray
    trained_seen: sp.csr_matrix
    history: sp.csr_matrix


class LiveState:
    """``items``: the id map, trained items first, then those added while serving; ``popularity`` (n_items,)
    training counts (0 for added items); ``seen`` (n_users, n_items) the training interactions; ``new_vectors``
    the vectors of the added items, in order."""

    def __init__(self, items: IdMap, seen: sp.csr_matrix):
        self.items = items
        self.seen = seen  # widened (no copy of its arrays) when items are added
        self.popularity = torch.from_numpy(np.asarray(seen.sum(axis=0), dtype=np.float32).ravel())
        self.new_vectors: list[np.ndarray] = []
        self._added: dict[str, dict[int, float]] = {}  # raw user id -> {item index: summed weight}
        self._order: dict[str, list[int]] = {}  # raw user id -> the items of their added events, in event order

    # -- interactions -------------------------------------------------------------------------------------------------
    @staticmethod
    def replayable(events: list[Event]) -> list[Event]:
        """The stored events whose weight a write would accept now: rows stored before the bound, or written into
        the store by hand, are skipped with a warning."""
        kept = [e for e in events if weight_problem(e.weight) is None]
        if len(kept) < len(events):
            log.warning("event store: %d stored interaction(s) with a weight outside [%g, %g] not replayed",
                        len(events) - len(kept), MIN_WEIGHT, MAX_WEIGHT)
        return kept

    def remember(self, events: Sequence[Event]) -> None:
        index = self.items.indices([e.item_id for e in events], missing="minus_one")
        for e, item in zip(events, index):
            if item < 0:  # an item the current model does not know (a store written for another model)
                continue
            per_user = self._added.setdefault(e.user_id, {})
            per_user[int(item)] = per_user.get(int(item), 0.0) + float(e.weight)
            self._order.setdefault(e.user_id, []).append(int(item))

    def forget(self, user_id: str) -> int:
        """Drops a user's added interactions; returns how many distinct items they had added."""
        self._order.pop(user_id, None)
        return len(self._added.pop(user_id, None) or {})

    def has_added(self, user_id: str) -> bool:
        return user_id in self._added

    def added_items(self, user_id: str) -> dict[int, float]:
        """A copy of the user's added interactions: item index -> summed weight."""
        return dict(self._added.get(user_id, {}))

    def added_sequence(self, user_id: str) -> list[int]:
        """The items of the user's added events in the order they were added (an item repeats if added again)."""
        return list(self._order.get(user_id, ()))

    def added_matrix(self, raw_users: list[str]) -> sp.csr_matrix:
        """(B, n_items) weights of the added interactions of these users."""
        rows, cols, vals = [], [], []
        if not self._added:  # nothing added while serving (the common case): skip the per-user loop
            return sp.csr_matrix((len(raw_users), len(self.items)), dtype=np.float32)
        for r, user in enumerate(raw_users):
            added = self._added.get(user)
            if added:
                rows.extend([r] * len(added))
                cols.extend(added.keys())
                vals.extend(added.values())
        return sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)),
                             shape=(len(raw_users), len(self.items)))

    def histories(self, raw_users: list[str], index: np.ndarray) -> Histories:
        """:class:`Histories` of a chunk of users; ``index`` (B,) their trained indices, -1 for new users."""
        known = index >= 0
        added = self.added_matrix(raw_users)
        has_added = np.diff(added.indptr) > 0
        if known.all():  # no new users in this chunk: their rows of the seen matrix as they are
            trained_seen = self.seen[index]
        else:
            trained_seen = sp.csr_matrix(sp.diags(known.astype(np.float32)) @ self.seen[np.where(known, index, 0)])
        history = sp.csr_matrix(trained_seen + added) if has_added.any() else trained_seen
        return Histories(known, added, has_added, trained_seen, history)

    # -- items --------------------------------------------------------------------------------------------------------
    def append_items(self, ids: list[str], vectors: np.ndarray) -> None:
        """New items join the id map (old indices unchanged), popularity (0), the seen matrix and new_vectors."""
        self.items = self.items.extended(ids)
        self.new_vectors.append(np.asarray(vectors, dtype=np.float32))
        self.popularity = torch.cat([self.popularity, torch.zeros(len(ids))])
        seen = self.seen
        self.seen = sp.csr_matrix((seen.data, seen.indices, seen.indptr), shape=(seen.shape[0], len(self.items)))

    def allowed_items(self, candidates: Sequence[str] | None,
                      exclude: Sequence[str] | None) -> torch.Tensor | None:
        """(n_items,) bool mask of the items a request may rank, or None for all of them."""
        if candidates is None and not exclude:
            return None
        allowed = torch.zeros(len(self.items), dtype=torch.bool)
        if candidates is None:
            allowed[:] = True
        else:
            allowed[torch.from_numpy(self.items.indices(candidates))] = True
        if exclude:
            allowed[torch.from_numpy(self.items.indices(exclude))] = False
        return allowed
