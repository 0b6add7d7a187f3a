"""Negative sampling without false negatives: uniform items a user has not interacted with in training; the shared
candidate sets of the sampled softmax (in-batch positives plus draws from a proposal, with their expected counts);
and (for models with a knowledge-graph loss) batches of triples with corrupted tails that are never true triples."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import DataError

_REJECTION_ROUNDS = 8  # redraw rounds before the exact fallback (only users who saw most of the catalogue reach it)
_BITMAP_CELLS = 1 << 25  # up to this many user x item cells (32 MiB), look collisions up in a dense bool map


class NegativeSampler:
    """Draws items uniformly among those a user has NOT interacted with in ``train``.

    Sampling is vectorised: draw uniformly over the catalogue, find the draws that hit one of the user's training items
    by binary search in the sorted keys ``user * n_items + item`` (or, for a small matrix, a lookup in a dense bool
    map of those keys, ~7x faster), redraw only those, and after a few rounds place any remaining draw exactly (the
    r-th item the user has not seen, also found by binary search)."""

    def __init__(self, train: sp.csr_matrix, generator: torch.Generator | None = None,
                 pool: np.ndarray | None = None):
        """``train``: (n_users, n_items) matrix whose non-zeros are the pairs never to draw. ``pool``: the item
        indices negatives may be drawn from (None: the whole catalogue); the draw is uniform over the pool items the
        user has not interacted with (sampling works on the pool's columns, then maps back to item indices)."""
        m = sp.csr_matrix(train)
        self._pool = None
        if pool is not None:
            pool = np.unique(np.asarray(pool, dtype=np.int64))
            if len(pool) == 0 or pool[0] < 0 or pool[-1] >= m.shape[1]:
                raise DataError(f"the negative pool must hold item indices in 0..{m.shape[1] - 1}; got "
                                f"{len(pool)} item(s)" + (f" from {pool[0]} to {pool[-1]}" if len(pool) else ""),
                                field="pool")
            m = sp.csr_matrix(m[:, pool])
            self._pool = torch.from_numpy(pool)
        m.sum_duplicates()
        m.sort_indices()
        self.n_users, self.n_items = m.shape
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        indptr = torch.from_numpy(m.indptr.astype(np.int64))
        items = torch.from_numpy(m.indices.astype(np.int64))
        users = torch.repeat_interleave(torch.arange(self.n_users), indptr.diff())
        self._indptr = indptr
        self._degree = indptr.diff()  # (n_users,) training items per user
        self._keys = users * self.n_items + items  # (nnz,), sorted because rows and their indices are sorted
        self._bitmap = None
        if self.n_users * self.n_items <= _BITMAP_CELLS:
            self._bitmap = torch.zeros(self.n_users * self.n_items, dtype=torch.bool)  # (n_users * n_items,)
            self._bitmap[self._keys] = True
        # For the exact fallback: the j-th seen item s_j of a user, minus j, is how many unseen items precede s_j.
        rank_in_row = torch.arange(len(items)) - indptr[:-1].repeat_interleave(self._degree)
        self._gap_keys = users * self.n_items + (items - rank_in_row)  # (nnz,), sorted as well

    def sample(self, users: torch.Tensor, n_neg: int = 1) -> torch.Tensor:
        """users LongTensor (n,) -> negatives LongTensor (n, n_neg), each uniform over that user's unseen items (of
        the pool, when one was given)."""
        neg = self._sample(users, n_neg)
        return neg if self._pool is None else self._pool[neg]

    def _sample(self, users: torch.Tensor, n_neg: int) -> torch.Tensor:
        """As :meth:`sample`, in the sampler's own column indices (pool positions when there is a pool)."""
        users = users.long()
        if users.numel() == 0:
            return torch.zeros(0, n_neg, dtype=torch.long)
        full = self._degree.index_select(0, users) >= self.n_items
        if bool(full.any()):
            bad = int(users[full][0])
            raise DataError(f"user index {bad} has interacted with every one of the {self.n_items} items, so no "
                            "negative item can be drawn for it; drop such users before training", field="user")
        g = self.generator
        neg = torch.randint(self.n_items, (len(users), n_neg), generator=g)
        row_keys = (users * self.n_items).unsqueeze(1)  # (n, 1)
        todo = self._collisions(row_keys + neg)
        for _ in range(_REJECTION_ROUNDS):
            if not bool(todo.any()):
                return neg
            neg[todo] = torch.randint(self.n_items, (int(todo.sum()),), generator=g)
            todo = self._collisions(row_keys + neg)
        if bool(todo.any()):
            rows = todo.nonzero()[:, 0]
            neg[todo] = self._exact(users[rows])
        return neg

    def _collisions(self, keys: torch.Tensor) -> torch.Tensor:
        """Bool mask, same shape as ``keys``: True where the (user, item) key is a training pair."""
        if self._bitmap is not None:  # index_select: ~4x faster than advanced indexing
            return self._bitmap.index_select(0, keys.reshape(-1)).view(keys.shape)
        if len(self._keys) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self._keys, keys).clamp_(max=len(self._keys) - 1)
        return self._keys.index_select(0, pos.reshape(-1)).view(keys.shape) == keys

    def _exact(self, users: torch.Tensor) -> torch.Tensor:
        """One uniform unseen item per entry of ``users`` (m,), without rejection: draw a rank r among the user's
        unseen items, then item = r + (number of seen items s_j with s_j - j <= r)."""
        free = (self.n_items - self._degree[users]).double()
        r = (torch.rand(len(users), generator=self.generator, dtype=torch.float64) * free).long()
        base = users * self.n_items
        seen_before = torch.searchsorted(self._gap_keys, base + r, right=True) - self._indptr[users]
        return r + seen_before


class CandidateSampler:
    """The candidate set a sampled-softmax step shares across its batch, and each candidate's log expected count.

    Candidates: up to ``in_batch`` of the batch's positives (all of them, or a uniform subset of that many when the
    batch is larger; in-batch negatives, repeats kept) followed by ``n_sampled`` items drawn with replacement from a
    proposal over the pool: ``uniform``, or ``popularity`` with q_j proportional to (c_j + 1)^0.75, c_j the item's
    training interactions (word2vec's damping, add-one so that every pool item can be drawn). Since the shuffled
    batch's positives are a uniform draw of the training pairs, an item's expected count in the set is

        E_j = M * c_j / n_train + n_sampled * q_j        (M = min(batch size, in_batch))

    and ``log E_j`` is the log-Q correction of :func:`fusionrec.training.sampled_softmax.sampled_softmax_loss`. Outside the
    pool q_j = 0 and such items are never drawn (in-batch positives have training interactions, so they are in the
    pool 'trained' too)."""

    def __init__(self, train: sp.csr_matrix, in_batch: int, n_sampled: int, distribution: str = "uniform",
                 generator: torch.Generator | None = None, pool: np.ndarray | None = None):
        """``train``: (n_users, n_items) training matrix; ``pool``: item indices the proposal draws from (None:
        every item)."""
        if in_batch < 0 or n_sampled < 0 or in_batch + n_sampled == 0:
            raise DataError(f"a candidate set needs in-batch or sampled items; got {in_batch} and {n_sampled}",
                            field="candidates")
        m = sp.csr_matrix(train)
        n_items = m.shape[1]
        counts = np.bincount(m.indices, minlength=n_items).astype(np.float64)  # (n_items,) c_j
        pool = np.arange(n_items) if pool is None else np.unique(np.asarray(pool, dtype=np.int64))
        if len(pool) == 0 or pool[0] < 0 or pool[-1] >= n_items:
            raise DataError(f"the candidate pool must hold item indices in 0..{n_items - 1}", field="pool")
        if distribution == "uniform":
            weight = np.ones(len(pool))
        elif distribution == "popularity":
            weight = (counts[pool] + 1.0) ** 0.75
        else:
            raise DataError(f"unknown proposal {distribution!r}; available: uniform, popularity", field="distribution")
        q = np.zeros(n_items)
        q[pool] = weight / weight.sum()
        self.in_batch, self.n_sampled, self.distribution = int(in_batch), int(n_sampled), distribution
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self._share = torch.from_numpy(counts / max(m.nnz, 1))  # (n_items,) c_j / n_train, float64
        self._q = torch.from_numpy(q)  # (n_items,) float64
        self._pool = torch.from_numpy(pool)
        self._cdf = torch.from_numpy(np.cumsum(weight / weight.sum()))  # (len(pool),) for popularity draws

    def draw(self, batch_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """batch_pos LongTensor (B,) -> candidates LongTensor (C,) with C = min(B, in_batch) + n_sampled, and their
        log expected counts FloatTensor (C,)."""
        g = self.generator
        n_batch = min(len(batch_pos), self.in_batch)
        in_batch = batch_pos if n_batch == len(batch_pos) else \
            batch_pos.index_select(0, torch.randperm(len(batch_pos), generator=g)[:n_batch])
        if self.distribution == "uniform":
            picks = torch.randint(len(self._pool), (self.n_sampled,), generator=g)
        else:
            u = torch.rand(self.n_sampled, generator=g, dtype=torch.float64) * self._cdf[-1]
            picks = torch.searchsorted(self._cdf, u, right=True).clamp_(max=len(self._pool) - 1)
        candidates = torch.cat([in_batch.long(), self._pool.index_select(0, picks)])  # (C,)
        expected = n_batch * self._share.index_select(0, candidates) \
            + self.n_sampled * self._q.index_select(0, candidates)
        return candidates, expected.log().float()


class TripleBatches:
    """Knowledge-graph batches ``(heads, relations, tails (b,), neg_tails (b, n_neg))`` for a model's KG loss: shuffled
    passes over ``triples`` (n, 3) with tails corrupted uniformly and filtered against every true triple."""

    def __init__(self, triples: torch.Tensor, n_entities: int, batch_size: int, n_neg: int,
                 generator: torch.Generator):
        from fusionrec.knowledge.kg.keys import TripleIndex  # only models with a KG loss need it

        self.triples, self.n_entities, self.batch_size, self.n_neg = triples, int(n_entities), batch_size, n_neg
        self.generator = generator
        self.known = TripleIndex(triples, self.n_entities)
        self._current = iter(())

    def one_pass(self):
        """Iterator over one shuffled pass of all triples."""
        from fusionrec.knowledge.kg.sampling import negative_batches

        return negative_batches(self.triples, self.n_entities, self.batch_size, self.generator, self.n_neg,
                                filtered=True, known=self.known)

    def next(self) -> tuple[torch.Tensor, ...]:
        """The next batch, starting a new pass when one ends (joint training draws one per recommendation batch)."""
        batch = next(self._current, None)
        if batch is None:
            self._current = self.one_pass()
            batch = next(self._current)
        return batch
