"""Where the trainer's batches come from: shuffled (user, item) training pairs for most models, shuffled windows of
the users' ordered training sequences for a sequence model. Either way a batch's ``users`` and ``pos`` are its
training pairs, so the losses, the negative samplers and the shape checks are the same for both."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.user_sequences import UserSequences
from fusionrec.models.base import Batch, window_targets
from fusionrec.training.distributed import Ranks, this_ranks_part
from fusionrec.training.sampling import NegativeSampler


class SharedShuffle:
    """For a batch source under data-parallel training: one generator per epoch, seeded by ``shared_seed`` and the
    epoch's number, so every rank draws the same shuffle and cuts the same global batches."""

    def __init__(self, ranks: Ranks | None, shared_seed: int):
        self.ranks, self.shared_seed, self.epochs_drawn = ranks or Ranks(), shared_seed, 0

    def next_generator(self) -> torch.Generator:
        self.epochs_drawn += 1
        return torch.Generator().manual_seed(self.shared_seed * 100_003 + self.epochs_drawn)


class PairBatches(SharedShuffle):
    """Every training interaction once per epoch, shuffled, ``batch_size`` at a time; with a
    :class:`NegativeSampler`, ``neg_samples`` negatives per pair drawn for the whole epoch at once; with
    ``ratings`` (n_users, n_items), each pair's rating in ``Batch.ratings``.

    With ``ranks`` of several processes (data-parallel training) every rank draws the same shuffle from a generator
    seeded by ``shared_seed`` and the epoch, cuts the same global batches of ``batch_size`` and keeps its own part of
    each (:func:`~fusionrec.training.distributed.this_ranks_part`): the ranks take the same number of steps on
    disjoint pairs, and their averaged gradients are those of the global batch."""

    def __init__(self, train: sp.csr_matrix, batch_size: int, sampler: NegativeSampler | None, neg_samples: int,
                 ratings: sp.csr_matrix | None = None, ranks: Ranks | None = None, shared_seed: int = 0):
        users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
        items = train.indices.astype(np.int64)
        self.users, self.items = torch.from_numpy(users), torch.from_numpy(items)
        self.batch_size, self.sampler, self.neg_samples = batch_size, sampler, neg_samples
        self.ratings = None if ratings is None else torch.from_numpy(
            np.asarray(sp.csr_matrix(ratings)[users, items], dtype=np.float32).ravel())
        super().__init__(ranks, shared_seed)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        if self.ranks.active:
            yield from self._sharded_epoch(generator)
            return
        order = torch.randperm(len(self.users), generator=generator)
        users, items = self.users.index_select(0, order), self.items.index_select(0, order)
        ratings = self.ratings.index_select(0, order) if self.ratings is not None else None
        neg = self.sampler.sample(users, self.neg_samples) if self.sampler is not None \
            else torch.zeros(len(users), 0, dtype=torch.long)  # (n, neg_samples)
        for lo in range(0, len(users), self.batch_size):
            hi = lo + self.batch_size
            yield Batch(users[lo:hi], items[lo:hi], neg[lo:hi],
                        ratings=ratings[lo:hi] if ratings is not None else None)


    def _sharded_epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(len(self.users), generator=self.next_generator())  # the same on every rank
        parts = [this_ranks_part(order[lo:lo + self.batch_size], self.ranks)
                 for lo in range(0, len(order), self.batch_size)]
        mine = torch.cat(parts)
        users = self.users.index_select(0, mine)
        neg = self.sampler.sample(users, self.neg_samples) if self.sampler is not None \
            else torch.zeros(len(users), 0, dtype=torch.long)  # this rank's own draws
        start = 0
        for part in parts:
            rows = slice(start, start + len(part))
            start += len(part)
            yield Batch(users[rows], self.items.index_select(0, part), neg[rows],
                        ratings=self.ratings.index_select(0, part) if self.ratings is not None else None)


class WindowBatches(SharedShuffle):
    """Every user's training sequence cut into windows of ``max_length + 1`` items
    (:meth:`UserSequences.windows`); a batch holds windows of about the same length carrying about ``batch_size``
    training pairs (each item that follows another is one), with ``neg_samples`` negatives per pair when a
    :class:`NegativeSampler` is given.

    Each epoch shuffles the windows, orders them by length (a stable sort, so equal lengths stay shuffled), cuts
    that order into batches and shuffles the batches: a batch is padded to its own longest window, not to
    ``max_length`` (on sparse data most histories are a few items long; one long window would otherwise make every
    batch it lands in ~10x as costly).

    With ``ranks`` of several processes every rank draws the same shuffles from a generator seeded by
    ``shared_seed`` and the epoch, cuts the same global batches and keeps every world-th window of each
    (:func:`~fusionrec.training.distributed.this_ranks_part`; a batch's windows have about the same length, so the
    ranks' shares carry about the same number of pairs)."""

    def __init__(self, sequences: UserSequences, max_length: int, batch_size: int,
                 sampler: NegativeSampler | None, neg_samples: int, ranks: Ranks | None = None,
                 shared_seed: int = 0):
        windows, users = sequences.windows(max_length)
        self.windows, self.window_users = torch.from_numpy(windows), torch.from_numpy(users)
        self.pairs = window_targets(self.windows)[1].sum(1)  # (W,) training pairs per window
        self.batch_size, self.sampler, self.neg_samples = batch_size, sampler, neg_samples
        super().__init__(ranks, shared_seed)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        if self.ranks.active:  # the same windows, batches and batch order on every rank
            generator = self.next_generator()
        shuffled = torch.randperm(len(self.windows), generator=generator)
        order = shuffled[torch.sort(self.pairs[shuffled], stable=True).indices]
        ends = torch.cumsum(self.pairs[order], 0)
        # batch k holds the windows whose running pair count falls in [k * batch_size, (k + 1) * batch_size)
        batch_of = torch.div(ends - 1, self.batch_size, rounding_mode="floor")
        bounds = torch.searchsorted(batch_of, torch.arange(int(batch_of[-1]) + 2)) if len(order) else []
        chunks = [order[lo:hi] for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()) if hi > lo] \
            if len(order) else []
        for k in torch.randperm(len(chunks), generator=generator).tolist():
            chunk = this_ranks_part(chunks[k], self.ranks) if self.ranks.active else chunks[k]
            windows = self.windows.index_select(0, chunk)
            present = int((windows >= 0).sum(1).max())
            windows = windows[:, windows.shape[1] - present:]  # cut to this batch's longest window
            _, mask, pos = window_targets(windows)
            users = self.window_users.index_select(0, chunk).repeat_interleave(mask.sum(1))
            neg = self.sampler.sample(users, self.neg_samples) if self.sampler is not None \
                else torch.zeros(len(users), 0, dtype=torch.long)
            yield Batch(users, pos, neg, windows=windows)


def n_pairs(sequences: UserSequences) -> int:
    """Training pairs of a sequence model: every item that follows another in its user's sequence."""
    return int(np.maximum(sequences.lengths - 1, 0).sum())
