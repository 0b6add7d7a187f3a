"""Recommendation losses over the scores of positives and sampled negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(pos - neg), averaged over every (positive, negative) pair. pos (B,), neg (B, n_neg) -> scalar."""
    return -F.logsigmoid(pos.unsqueeze(1) - neg).mean()


def bce_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, positives labelled 1 and every negative 0, averaged over all B * (1 + n_neg)
    scores. pos (B,), neg (B, n_neg) -> scalar."""
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1)  # (B, 1 + n_neg)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(logits, labels)


def softmax_loss(pos: torch.Tensor, neg: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Sampled softmax: cross-entropy of the positive against its sampled negatives, scores divided by
    ``temperature``: -log(exp(pos/t) / (exp(pos/t) + sum exp(neg/t))), averaged over the batch. With uniform
    negatives it approximates a softmax over the whole catalogue. pos (B,), neg (B, n_neg) -> scalar."""
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1) / temperature  # (B, 1 + n_neg)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def full_softmax_loss(pos: torch.Tensor, scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax over the whole catalogue: -log(exp(pos/t) / sum over every item j of exp(s_j/t)), averaged over the
    batch. pos (B,) the positives' scores; scores (B, n_items) every item's score, the positive's included."""
    return (torch.logsumexp(scores / temperature, dim=1) - pos / temperature).mean()


def sampled_softmax_loss(pos: torch.Tensor, cand: torch.Tensor, log_count: torch.Tensor, hits: torch.Tensor,
                         temperature: float = 1.0) -> torch.Tensor:
    """Softmax over the positive and one candidate set shared by the batch, with the log-Q correction: each
    candidate's logit ``s_j / t`` minus ``log_count[j]``, the log of its expected number of copies in the set, and
    every candidate equal to the row's positive (an accidental hit) left out. Then
    ``exp(pos/t) + sum_j exp(s_j/t - log_count_j)`` estimates the full softmax's denominator without bias (each item
    other than the positive is counted once in expectation), and with every item as a candidate exactly once
    (``log_count`` 0) the loss is the full softmax. The positive, always present, gets no correction.

    Computed by :class:`_SampledSoftmax` in row chunks, one (B, C) buffer for the softmax and one for its gradient:
    a few passes over the B x C scores per step instead of the dozen that autograd's composition makes (the dominant
    cost of an epoch at 20,000 items: docs/benchmarks.md).

    pos (B,) the positives' scores; cand (B, C) the candidates' scores; log_count (C,); hits bool (B, C) -> scalar."""
    return _SampledSoftmax.apply(pos, cand, log_count, hits, float(temperature))


def sampled_softmax_reference(pos: torch.Tensor, cand: torch.Tensor, log_count: torch.Tensor, hits: torch.Tensor,
                              temperature: float = 1.0) -> torch.Tensor:
    """:func:`sampled_softmax_loss` composed from torch operations (autograd's gradient): the definition that the
    fused version is tested against."""
    logits = (cand / temperature - log_count).masked_fill(hits, float("-inf"))  # (B, C)
    logits = torch.cat([(pos / temperature).unsqueeze(1), logits], dim=1)  # (B, 1 + C)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


_CHUNK_ELEMENTS = 1 << 18  # rows per chunk so that one chunk of the (B, C) buffer stays in cache


class _SampledSoftmax(torch.autograd.Function):
    """Forward: per row chunk, logits ``cand / t - log_count`` (hits -inf) written into one (B, C) buffer, shifted by
    the row maximum (the positive's logit included) and exponentiated in place; the loss is
    ``log(e_pos + sum e_j) + max - pos / t``. The buffer is kept for backward, where the gradient of the mean loss
    with respect to ``cand`` is ``e_j / (row sum) / (t B)`` (the softmax), one product of the buffer, and with
    respect to ``pos`` ``(softmax_pos - 1) / (t B)``."""

    @staticmethod
    def forward(ctx, pos, cand, log_count, hits, temperature):
        n_rows, n_cand = cand.shape
        inv_t = 1.0 / temperature
        with torch.no_grad():
            exp = torch.empty_like(cand)  # (B, C): exp(logit - row max)
            inv_sum = torch.empty_like(pos)  # (B,) 1 / the row's softmax denominator (shifted)
            e_pos = torch.empty_like(pos)  # (B,) exp(pos / t - row max)
            total = pos.new_zeros((), dtype=torch.float64)
            step = max(1, _CHUNK_ELEMENTS // max(n_cand, 1))
            for lo in range(0, n_rows, step):
                hi = min(lo + step, n_rows)
                z = exp[lo:hi]
                torch.mul(cand[lo:hi], inv_t, out=z)
                z.sub_(log_count).masked_fill_(hits[lo:hi], float("-inf"))
                zp = pos[lo:hi] * inv_t
                top = torch.maximum(z.amax(dim=1), zp) if n_cand else zp
                z.sub_(top.unsqueeze(1)).exp_()
                ep = (zp - top).exp_()
                denom = z.sum(dim=1).add_(ep)
                e_pos[lo:hi], inv_sum[lo:hi] = ep, denom.reciprocal()
                total += (denom.log_() + top - zp).sum(dtype=torch.float64)
        ctx.save_for_backward(exp, inv_sum, e_pos)
        ctx.scale = inv_t / max(n_rows, 1)
        return (total / max(n_rows, 1)).to(pos.dtype)

    @staticmethod
    def backward(ctx, grad):
        exp, inv_sum, e_pos = ctx.saved_tensors
        row = inv_sum * (grad * ctx.scale)  # (B,)
        grad_cand = exp * row.unsqueeze(1)
        grad_pos = e_pos * row - grad * ctx.scale
        return grad_pos, grad_cand, None, None, None


LOSSES = {"bpr": bpr_loss, "bce": bce_loss, "softmax": softmax_loss, "full_softmax": full_softmax_loss}
CATALOGUE_LOSSES = ("full_softmax",)  # losses whose negatives are every item (Model.forward_catalogue)
SHARED_CANDIDATE_LOSSES = ("sampled_softmax",)  # forward_catalogue on a shared candidate set (sampled_softmax_loss)
TEMPERATURE_LOSSES = ("softmax", "full_softmax")


def rec_loss(name: str, pos: torch.Tensor, neg: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The named recommendation loss ('bpr', 'bce', 'softmax' or 'full_softmax' (``neg``: every item's score));
    ``temperature`` is read by the softmax losses only."""
    try:
        fn = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}") from None
    return fn(pos, neg, temperature) if name in TEMPERATURE_LOSSES else fn(pos, neg)
