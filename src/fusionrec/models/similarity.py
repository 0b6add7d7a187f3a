"""How a vector model turns a user vector and an item vector into a score.

``dot``: the inner product <u, v>, unbounded. ``cosine``: both vectors L2-normalised first, so every score lies in
[-1, 1]; paired with a softmax loss and a temperature (``training.temperature``) this is the cosine-softmax set-up
that ranks well on many datasets. A model applies :func:`finish` to its final user and item vectors everywhere it
scores (training, ``score_all``, ``serving_vectors``), so serving's dot products are cosines when it is set."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from fusionrec.models.base import ForwardOut, ScoreFactors
from fusionrec.models.graph_ops import check_users

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


class ScoredByFinalVectors:
    """``score_all`` and ``serving_vectors`` of a dot-product model from its ``final_vectors()`` -> (users
    (n_users, d), items (n_items, d)) as scored, computed once while in eval mode (recomputed in training). Listed
    before :class:`~fusionrec.models.base.Model` among a model's bases, so these override Model's defaults."""

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items)."""
        check_users(users, self.n_users)
        user_vecs, item_vecs = self.cached("final_vectors", self.final_vectors)
        return user_vecs[users] @ item_vecs.T

    def serving_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (n_users, d) and (n_items, d) vectors that :meth:`score_all` multiplies."""
        user_vecs, item_vecs = self.cached("final_vectors", self.final_vectors)
        return user_vecs.detach(), item_vecs.detach()
