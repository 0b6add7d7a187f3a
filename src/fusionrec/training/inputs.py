"""Builds the :class:`ModelInputs` a model learns from, checking that every piece has the catalogue's shape."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.interactions import Interactions
from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.data.user_sequences import UserSequences
from fusionrec.errors import DataError
from fusionrec.models.base import ModelInputs
from fusionrec.util.sparse_ops import binary_csr


def build_inputs(n_users: int, n_items: int, train: Interactions, item_text: torch.Tensor | np.ndarray | None = None,
                 kg: KnowledgeGraph | None = None, *, item_text_mask: torch.Tensor | np.ndarray | None = None,
                 social: sp.spmatrix | None = None, user_features: sp.spmatrix | None = None,
                 ratings: sp.spmatrix | None = None,
                 sequences: bool = False,
                 log: Callable[[str], None] | None = None, progress: bool = False) -> ModelInputs:
    """``train``: the training interactions (any repeated pair counts once). ``item_text``: (n_items, d_text) frozen
    text vectors; ``item_text_mask``: bool (n_items,), False where an item has no text (default: all True).
    ``kg``: a knowledge graph whose ``item_entity`` covers the ``n_items`` items (grown if it covers fewer).
    ``social``: a (n_users, n_users) user-user matrix (any stored value is an edge), made symmetric and 0/1.
    ``ratings``: a (n_users, n_items) matrix of the training pairs' explicit ratings (the pairs of ``train``).
    ``user_features``: a (n_users, n_features) matrix of the users' own features (a row: one user's weights).
    ``sequences``: also give each user's training items in order (by timestamp; a sequence model's input).
    ``log``, ``progress``: where a model's ``prepare`` reports a long fit, and whether it may show a progress bar."""
    if train.n_users > n_users or train.n_items > n_items:
        raise DataError(f"training interactions have shape ({train.n_users}, {train.n_items}), larger than the "
                        f"({n_users}, {n_items}) users x items of the id maps", field="train")
    if train.shape != (n_users, n_items):
        train = train.resized(n_users, n_items)
    matrix = train.to_csr("binary")

    text = mask = None
    if item_text is not None:
        text = torch.as_tensor(item_text).float()
        if text.dim() != 2 or text.shape[0] != n_items:
            raise DataError(f"item text vectors must have shape ({n_items}, d), got {tuple(text.shape)}",
                            field="item_text")
        if item_text_mask is None:
            mask = torch.ones(n_items, dtype=torch.bool)
        else:
            mask = torch.as_tensor(np.asarray(item_text_mask, dtype=bool))
            if mask.shape != (n_items,):
                raise DataError(f"item text mask must have shape ({n_items},), got {tuple(mask.shape)}",
                                field="item_text_mask")
        if not bool(torch.isfinite(text[mask]).all()):
            raise DataError("item text vectors hold NaN or infinite values", field="item_text")
    elif item_text_mask is not None:
        raise DataError("an item text mask was given without item text vectors", field="item_text_mask")

    if kg is not None:
        if kg.n_items > n_items:
            raise DataError(f"the knowledge graph links {kg.n_items} items but the catalogue has {n_items}", field="kg")
        if kg.n_items < n_items:
            kg = kg.resized(n_items)
    if social is not None:
        if social.shape != (n_users, n_users):
            raise DataError(f"the social graph has shape {social.shape}, the users are {n_users}", field="social")
        either_way = sp.csr_matrix(social + social.T)
        social = binary_csr(either_way - sp.diags(either_way.diagonal()))  # symmetric 0/1, no self-loops
    if user_features is not None:
        if user_features.shape[0] != n_users:
            raise DataError(f"the user features have {user_features.shape[0]} rows, the users are {n_users}",
                            field="user_features")
        user_features = sp.csr_matrix(user_features, dtype=np.float32)
        if not np.isfinite(user_features.data).all():
            raise DataError("the user features hold NaN or infinite values", field="user_features")
    if ratings is not None:
        ratings = sp.csr_matrix(ratings, dtype=np.float32)
        if ratings.shape != (n_users, n_items):
            raise DataError(f"the ratings have shape {ratings.shape}, the users x items are ({n_users}, {n_items})",
                            field="rating")
        if not np.isfinite(ratings.data).all():
            raise DataError("the ratings hold NaN or infinite values", field="rating")
        ratings.sort_indices()
    ordered = UserSequences.from_interactions(train) if sequences else None
    return ModelInputs(n_users=n_users, n_items=n_items, train=matrix, item_text=text, item_text_mask=mask, kg=kg,
                       social=social, ratings=ratings, user_features=user_features, sequences=ordered, log=log, progress=progress)
