"""The Python API over a saved model: raw ids in, raw ids with scores out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fusionrec.artifacts import ModelArtifact, load_artifact, seen_mask_rows
from fusionrec.errors import FusionrecError

Ranked = list[tuple[str, float]]


class Recommender:
    """Recommends from a model artifact (the ``model/`` folder ``fusionrec train`` writes).

    >>> rec = Recommender.load("runs/bpr/model")
    >>> rec.recommend("196", k=3)            # one user -> [(item_id, score), ...]
    >>> rec.recommend(["196", "186"], k=3)   # many users -> one list per user
    """

    def __init__(self, artifact: ModelArtifact, batch_users: int = 1024):
        self.artifact = artifact
        self.model = artifact.model.eval()
        self.users, self.items = artifact.users, artifact.items
        self.batch_users = batch_users

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        return cls(load_artifact(path))

    @property
    def model_name(self) -> str:
        return self.model.name

    def recommend(self, user_ids: str | Sequence[str], k: int = 10, exclude_seen: bool = True,
                  candidates: Sequence[str] | None = None, exclude: Sequence[str] | None = None) -> Ranked | list[Ranked]:
        """Top-``k`` items for each user, best first, as ``(item_id, score)``.

        ``exclude_seen`` drops items the user interacted with; ``candidates`` restricts the ranking to these items;
        ``exclude`` removes these items for every user. Unknown user or item ids raise ``UnknownIdError``. Fewer than
        ``k`` items come back when fewer are eligible."""
        single = isinstance(user_ids, str)
        raw_users = [user_ids] if single else list(user_ids)
        if k < 1:
            raise FusionrecError(f"k must be at least 1, got {k}")
        users = self.users.indices(raw_users)
        allowed = self._allowed_items(candidates, exclude)
        out: list[Ranked] = []
        with torch.no_grad():
            for start in range(0, len(users), self.batch_users):
                chunk = users[start:start + self.batch_users]
                scores = self.model.score_all(torch.from_numpy(chunk)).float().clone()
                if allowed is not None:
                    scores[:, ~allowed] = -torch.inf
                if exclude_seen:
                    rows, cols = seen_mask_rows(self.artifact.seen, chunk)
                    scores[rows, cols] = -torch.inf
                top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
                for vals, idx in zip(top.values.numpy(), top.indices.numpy()):
                    keep = np.isfinite(vals)
                    out.append(list(zip(self.items.raws(idx[keep]), vals[keep].astype(float).tolist())))
        return out[0] if single else out

    def _allowed_items(self, candidates: Sequence[str] | None, exclude: Sequence[str] | None) -> torch.Tensor | None:
        if candidates is None and not exclude:
            return None
        allowed = torch.zeros(len(self.items), dtype=torch.bool)
        if candidates is None:
            allowed[:] = True
        else:
            allowed[torch.from_numpy(self.items.indices(candidates))] = True
        if exclude:
            allowed[torch.from_numpy(self.items.indices(exclude))] = False
        return allowed
