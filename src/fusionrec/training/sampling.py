"""Negative sampling without false negatives: uniform items a user has not interacted with in training, and
(for models with a knowledge-graph loss) batches of triples with corrupted tails that are never true triples."""

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
