"""Negative triples by corrupting tails, and shuffled batches of triples for a KG embedding loss."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from fusionrec.errors import DataError
from fusionrec.knowledge.kg.keys import TripleIndex

REDRAW_ROUNDS = 50


def corrupt_tails(triples: torch.Tensor, n_entities: int, generator: torch.Generator | None = None, n_neg: int = 1,
                  filtered: bool = False, known: TripleIndex | None = None) -> torch.Tensor:
    """Random tails ``t'`` for each triple (h, r, t), drawn uniformly from ``0..n_entities-1``.

    ``triples``: LongTensor (B, 3). Returns LongTensor (B, n_neg). Unfiltered, a draw may hit a true triple (rare on
    sparse graphs). ``filtered``: every (h, r, t') returned is absent from ``known`` (default: a
    :class:`TripleIndex` of ``triples`` itself; pass the whole graph's index to filter against all true triples).
    Collisions are redrawn together, vectorised, for up to ``REDRAW_ROUNDS`` rounds; the few draws still colliding
    after that (a head whose relation reaches almost every entity) are drawn from the explicit list of false tails.
    Raises :class:`DataError` when some (h, r) has every entity as a true tail. ``generator`` must live on the
    device of ``triples``."""
    if triples.dim() != 2 or triples.shape[1] != 3:
        raise ValueError(f"triples must have shape (B, 3), got {tuple(triples.shape)}")
    if n_entities <= 0 or n_neg <= 0:
        raise ValueError("n_entities and n_neg must be positive")
    device = triples.device
    tails = torch.randint(n_entities, (len(triples), n_neg), generator=generator, device=device)
    if not filtered:
        return tails
    if known is None:
        known = TripleIndex(triples, n_entities)
    h, r = triples[:, :1], triples[:, 1:2]
    bad = known.contains(h, r, tails)
    for _ in range(REDRAW_ROUNDS):
        n_bad = int(bad.sum())
        if n_bad == 0:
            return tails
        rows, cols = bad.nonzero(as_tuple=True)
        redraw = torch.randint(n_entities, (n_bad,), generator=generator, device=device)
        tails[rows, cols] = redraw
        bad[rows, cols] = known.contains(h[rows, 0], r[rows, 0], redraw)
    rows, cols = bad.nonzero(as_tuple=True)
    all_tails = torch.arange(n_entities, device=device)
    for row, col in zip(rows.tolist(), cols.tolist()):  # only the stubborn leftovers, almost never reached
        free = all_tails[~known.contains(h[row], r[row], all_tails)]
        if len(free) == 0:
            raise DataError(f"head {int(h[row])} with relation {int(r[row])} has every entity as a true tail, so no "
                            "corrupted tail exists", field="kg")
        pick = torch.randint(len(free), (1,), generator=generator, device=device)
        tails[row, col] = free[pick]
    return tails


def triple_batches(triples: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
                   drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Shuffled batches of ``triples`` (n, 3), each a LongTensor (<= batch_size, 3); one pass over all triples."""
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    where = generator.device if generator is not None else triples.device
    order = torch.randperm(len(triples), generator=generator, device=where).to(triples.device)
    stop = len(triples) - (len(triples) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        yield triples[order[start:start + batch_size]]


def negative_batches(triples: torch.Tensor, n_entities: int, batch_size: int,
                     generator: torch.Generator | None = None, n_neg: int = 1, filtered: bool = False,
                     known: TripleIndex | None = None) -> Iterator[tuple[torch.Tensor, ...]]:
    """One shuffled pass yielding ``(h, r, t, t_neg)``: h, r, t LongTensor (b,), t_neg LongTensor (b, n_neg).
    With ``filtered`` and no ``known``, negatives are filtered against all of ``triples``."""
    if filtered and known is None:
        known = TripleIndex(triples, n_entities)
    for batch in triple_batches(triples, batch_size, generator):
        neg = corrupt_tails(batch, n_entities, generator, n_neg, filtered, known)
        yield batch[:, 0], batch[:, 1], batch[:, 2], neg
