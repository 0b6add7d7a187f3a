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
