"""One int64 key per (head, relation, tail) triple: deduplication and fast membership tests by binary search."""

from __future__ import annotations

import torch


def triple_keys(triples: torch.Tensor, n_entities: int, n_relations: int) -> torch.Tensor:
    """``(h * n_relations + r) * n_entities + t`` for ``triples`` LongTensor (n, 3) -> LongTensor (n,).

    Distinct triples get distinct keys while every index is in range; the key space ``n_entities^2 * n_relations``
    must fit in int64 (about 3e9 entities for a single relation, far beyond any graph we load)."""
    if n_entities * n_entities * max(n_relations, 1) >= 2**63:
        raise ValueError(f"a graph of {n_entities} entities and {n_relations} relations is too large for int64 keys")
    return (triples[:, 0] * n_relations + triples[:, 1]) * n_entities + triples[:, 2]


def unique_triples(triples: torch.Tensor, n_entities: int, n_relations: int) -> torch.Tensor:
    """``triples`` (n, 3) without repeats, keeping each triple's first occurrence, in the original order -> (m, 3)."""
    if len(triples) == 0:
        return triples
    keys = triple_keys(triples, n_entities, n_relations)
    sorted_keys, order = torch.sort(keys, stable=True)
    first = torch.ones_like(sorted_keys, dtype=torch.bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    keep, _ = torch.sort(order[first])
    return triples[keep]


class TripleIndex:
    """The set of true triples of a graph, for membership tests: a sorted key array searched with ``searchsorted``.

    ``triples``: LongTensor (n, 3). ``n_entities`` / ``n_relations`` default to one more than the largest index seen;
    a query whose relation or entity lies outside that range is simply not a member."""

    def __init__(self, triples: torch.Tensor, n_entities: int | None = None, n_relations: int | None = None):
        if triples.dtype != torch.long or triples.dim() != 2 or triples.shape[1] != 3:
            raise ValueError("triples must be a LongTensor of shape (n, 3)")
        empty = len(triples) == 0
        self.n_entities = int(n_entities if n_entities is not None
                              else (0 if empty else int(triples[:, [0, 2]].max()) + 1))
        self.n_relations = int(n_relations if n_relations is not None
                               else (0 if empty else int(triples[:, 1].max()) + 1))
        self.keys = torch.unique(triple_keys(triples, self.n_entities, self.n_relations))  # sorted

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Bool tensor of the broadcast shape of ``heads``, ``relations``, ``tails``: True where the triple is known."""
        h, r, t = torch.broadcast_tensors(heads, relations, tails)
        in_range = ((h >= 0) & (h < self.n_entities) & (t >= 0) & (t < self.n_entities)
                    & (r >= 0) & (r < self.n_relations))
        if len(self.keys) == 0:
            return torch.zeros_like(in_range)
        keys = (h * self.n_relations + r) * self.n_entities + t
        pos = torch.searchsorted(self.keys, keys.reshape(-1)).clamp_(max=len(self.keys) - 1).reshape(keys.shape)
        return in_range & (self.keys[pos] == keys)
