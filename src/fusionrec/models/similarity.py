"""How a vector model turns a user vector and an item vector into a score.

``dot``: the inner product <u, v>, unbounded. ``cosine``: both vectors L2-normalised first, so every score lies in
[-1, 1]; paired with a softmax loss and a temperature (``training.temperature``) this is the cosine-softmax set-up
that ranks well on many datasets. A model applies :func:`finish` to its final user and item vectors everywhere it
scores (training, ``score_all``, ``serving_vectors``), so serving's dot products are cosines when it is set."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from typing import Literal

from fusionrec.models.base import ForwardOut, ScoreFactors

Similarity = Literal["dot", "cosine"]  # the type of every model's ``similarity`` hyper-parameter


def finish(vectors: torch.Tensor, similarity: str) -> torch.Tensor:
    """The vectors as scored: unchanged for ``dot``, unit length (rows) for ``cosine``."""
    return F.normalize(vectors, dim=-1) if similarity == "cosine" else vectors


def catalogue_out(users: torch.Tensor, items: torch.Tensor, pos: torch.Tensor,
                  terms: dict[str, torch.Tensor] | None = None,
                  candidates: torch.Tensor | None = None) -> ForwardOut:
    """:meth:`Model.forward_catalogue`'s answer from finished vectors: users (B, d) and items (n_items, d) ->
    ``pos`` (B,) the positives' scores and ``neg`` (B, n_items) every item's score (the positive's included).
    With ``candidates`` (C,) (``Batch.candidates``): ``neg`` the scores of those items only, as :class:`ScoreFactors`
    (users, the candidates' vectors) that the sampled softmax multiplies chunk by chunk, and ``pos`` each user's own
    positive, scored apart."""
    if candidates is None:
        scores = users @ items.T  # (B, n_items)
        return ForwardOut(scores.gather(1, pos.unsqueeze(1)).squeeze(1), scores, terms or {})
    neg = ScoreFactors(users, items.index_select(0, candidates))  # (B, C) scores, not formed
    return ForwardOut((users * items.index_select(0, pos)).sum(-1), neg, terms or {})
