"""The sampled softmax over a candidate set shared by the batch, computed in row chunks.

The loss: softmax over the positive and the shared candidates, with the log-Q correction: each candidate's logit
``s_j / t`` minus ``log_count[j]``, the log of its expected number of copies in the set, and every candidate equal to
the row's positive (an accidental hit) left out. Then ``exp(pos/t) + sum_j exp(s_j/t - log_count_j)`` estimates the
full softmax's denominator without bias (each item other than the positive is counted once in expectation), and with
every item as a candidate exactly once (``log_count`` 0) the loss is the full softmax. The positive, always present,
gets no correction.

Why chunks: at 20,000 items the shipped configs score batches of ~20,000 rows against ~3,000 candidates per step; as
composed torch operations that is a dozen passes over (B, C) tensors of 250 MB each, and it made an epoch cost 28x
ml-100k's for 10x the interactions (docs/benchmarks.md). Here each chunk of rows is scored, exponentiated and reduced
while it is in cache; only the softmax numerators are kept for backward. When the scores come as
:class:`~fusionrec.models.base.ScoreFactors` (users x candidate vectors) the scores themselves and their gradient
are never formed either: the temperature and the log-Q correction ride in the product (``[u / t, 1] . [v, -log Q]``)
and the backward multiplies the numerators straight into the two factors, the row weights applied on the thin
(B, d) side. Accidental hits are a short list of (row, candidate) pairs (:func:`accidental_hits`), not a (B, C)
mask: forming and applying that mask was ~10 % of a step at 20,000 rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from fusionrec.models.base import ScoreFactors

CHUNK_ELEMENTS = 1 << 18  # scores per chunk (rows = CHUNK_ELEMENTS // C): a chunk of the buffer stays in cache


class HitPairs(NamedTuple):
    """The (row, candidate) pairs where a candidate is the row's own positive, ``rows`` ascending; both (n_hits,)."""

    rows: torch.Tensor
    cols: torch.Tensor


def accidental_hits(candidates: torch.Tensor, positives: torch.Tensor) -> HitPairs:
    """Every (b, j) with ``candidates[j] == positives[b]``, rows ascending, from one sort of the C candidates and a
    binary search per row: O((B + C) log C), no (B, C) comparison."""
    ordered, order = torch.sort(candidates)
    lo = torch.searchsorted(ordered, positives)
    count = torch.searchsorted(ordered, positives, right=True) - lo  # (B,) copies of each row's positive
    rows = torch.repeat_interleave(torch.arange(len(positives)), count)
    offset = torch.arange(len(rows)) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    return HitPairs(rows, order[torch.repeat_interleave(lo, count) + offset])


def sampled_softmax_loss(pos: torch.Tensor, cand: torch.Tensor | ScoreFactors, log_count: torch.Tensor,
                         hits: torch.Tensor | HitPairs, temperature: float = 1.0) -> torch.Tensor:
    """The mean sampled-softmax loss (module docstring). pos (B,) the positives' scores; cand the candidates' scores,
    a (B, C) tensor or :class:`ScoreFactors` (users (B, d), items (C, d)); log_count (C,); hits the accidental hits,
    :class:`HitPairs` or a bool (B, C) mask, True where a candidate is the row's own positive -> scalar."""
    if not isinstance(hits, HitPairs):
        rows, cols = hits.nonzero(as_tuple=True)  # row-major: rows ascending
        hits = HitPairs(rows, cols)
    if isinstance(cand, ScoreFactors):
        return _FactoredSampledSoftmax.apply(pos, cand.users, cand.items, log_count, hits.rows, hits.cols,
                                             float(temperature))
    return _DenseSampledSoftmax.apply(pos, cand, log_count, hits.rows, hits.cols, float(temperature))


def sampled_softmax_reference(pos: torch.Tensor, cand: torch.Tensor, log_count: torch.Tensor, hits: torch.Tensor,
                              temperature: float = 1.0) -> torch.Tensor:
    """The same loss composed from torch operations (autograd's gradient): the definition the chunked versions are
    tested against. cand (B, C) tensor; hits a bool (B, C) mask."""
    logits = (cand / temperature - log_count).masked_fill(hits, float("-inf"))  # (B, C)
    logits = torch.cat([(pos / temperature).unsqueeze(1), logits], dim=1)  # (B, 1 + C)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def _chunks(n_rows: int, n_cand: int):
    step = max(1, CHUNK_ELEMENTS // max(n_cand, 1))
    return ((lo, min(lo + step, n_rows)) for lo in range(0, n_rows, step))


def _softmax_forward(ctx, pos: torch.Tensor, hit_rows: torch.Tensor, hit_cols: torch.Tensor, temperature: float,
                     n_cand: int, fill: Callable[[int, int, torch.Tensor], None]) -> tuple[torch.Tensor, ...]:
    """Shared forward: ``fill(lo, hi, out)`` writes rows lo:hi of the corrected logits ``s / t - log_count`` into
    ``out``; the chunk's hits become -inf, then it is turned into ``exp(logit - row max)`` in place (the row max
    includes the positive's logit) and reduced to the loss ``log(e_pos + sum e_j) + max - pos / t``. Keeps the
    numerators, 1 / the row sums and the positives' numerators for backward; returns the mean loss, the numerators
    (B, C), 1 / the row sums (B,) and e_pos (B,)."""
    n_rows = pos.shape[0]
    inv_t = 1.0 / temperature
    with torch.no_grad():
        numer = pos.new_empty((n_rows, n_cand))  # (B, C) exp(logit - row max)
        inv_sum = torch.empty_like(pos)  # (B,)
        e_pos = torch.empty_like(pos)  # (B,)
        total = pos.new_zeros((), dtype=torch.float64)
        minus_inf = pos.new_tensor(float("-inf"))
        for lo, hi in _chunks(n_rows, n_cand):
            z = numer[lo:hi]
            fill(lo, hi, z)
            first, last = torch.searchsorted(hit_rows, torch.tensor([lo, hi])).tolist()
            if last > first:
                z.index_put_((hit_rows[first:last] - lo, hit_cols[first:last]), minus_inf)
            zp = pos[lo:hi] * inv_t
            top = torch.maximum(z.amax(dim=1), zp) if n_cand else zp
            z.sub_(top.unsqueeze(1)).exp_()
            ep = (zp - top).exp_()
            denom = z.sum(dim=1).add_(ep)
            e_pos[lo:hi], inv_sum[lo:hi] = ep, denom.reciprocal()
            total += (denom.log_() + top - zp).sum(dtype=torch.float64)
    ctx.scale = inv_t / max(n_rows, 1)  # d(mean loss) / d(score) = softmax / (t B)
    return (total / max(n_rows, 1)).to(pos.dtype), numer, inv_sum, e_pos


def _row_weights(ctx, grad: torch.Tensor, inv_sum: torch.Tensor, e_pos: torch.Tensor):
    """(B,) the factor turning a row's numerators into d loss / d score, and d loss / d pos."""
    row = inv_sum * (grad * ctx.scale)
    return row, e_pos * row - grad * ctx.scale


class _DenseSampledSoftmax(torch.autograd.Function):
    """cand (B, C) a tensor: its gradient is the numerators times the row weights (one product)."""

    @staticmethod
    def forward(ctx, pos, cand, log_count, hit_rows, hit_cols, temperature):
        inv_t = 1.0 / temperature

        def fill(lo: int, hi: int, out: torch.Tensor) -> None:
            torch.mul(cand[lo:hi], inv_t, out=out).sub_(log_count)

        loss, numer, inv_sum, e_pos = _softmax_forward(ctx, pos, hit_rows, hit_cols, temperature, cand.shape[1], fill)
        ctx.save_for_backward(numer, inv_sum, e_pos)
        return loss

    @staticmethod
    def backward(ctx, grad):
        numer, inv_sum, e_pos = ctx.saved_tensors
        row, grad_pos = _row_weights(ctx, grad, inv_sum, e_pos)
        return grad_pos, numer * row.unsqueeze(1), None, None, None, None


class _FactoredSampledSoftmax(torch.autograd.Function):
    """Logits ``[users / t, 1] @ [items, -log_count].T`` formed per chunk in forward; in backward, with the row
    weights w (B,) and the numerators N, ``d users = w * (N @ items)`` and ``d items = N.T @ (w * users)``, chunk by
    chunk: no (B, C) gradient is formed."""

    @staticmethod
    def forward(ctx, pos, users, items, log_count, hit_rows, hit_cols, temperature):
        with torch.no_grad():
            left = torch.cat([users / temperature, users.new_ones(len(users), 1)], dim=1)  # (B, d + 1)
            right = torch.cat([items, -log_count.unsqueeze(1).to(items.dtype)], dim=1)  # (C, d + 1)

        def fill(lo: int, hi: int, out: torch.Tensor) -> None:
            torch.mm(left[lo:hi], right.T, out=out)

        loss, numer, inv_sum, e_pos = _softmax_forward(ctx, pos, hit_rows, hit_cols, temperature, items.shape[0],
                                                       fill)
        ctx.save_for_backward(users, items, numer, inv_sum, e_pos)
        return loss

    @staticmethod
    def backward(ctx, grad):
        users, items, numer, inv_sum, e_pos = ctx.saved_tensors
        row, grad_pos = _row_weights(ctx, grad, inv_sum, e_pos)
        weighted_users = users * row.unsqueeze(1)  # (B, d)
        grad_users = torch.empty_like(users)
        grad_items = torch.zeros_like(items)
        for lo, hi in _chunks(users.shape[0], items.shape[0]):
            torch.mm(numer[lo:hi], items, out=grad_users[lo:hi])
            grad_items.addmm_(numer[lo:hi].T, weighted_users[lo:hi])
        return grad_pos, grad_users.mul_(row.unsqueeze(1)), grad_items, None, None, None, None
