"""How serving ranks: a user scored by the model (their trained vector), by their folded-in history, or by
popularity, through the top-K index for a model served from vectors or over every item's score otherwise.

Functions of the model, the :class:`~fusionrec.serving.live_state.LiveState` and the index; the Recommender calls
them under its read lock. :func:`top_k` is the one place a score row becomes a ranked list of raw ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.ids import IdMap
from fusionrec.data.user_sequences import PAD
from fusionrec.models.base import Model, standardise
from fusionrec.models.capabilities import SequenceModel
from fusionrec.serving.live_state import LiveState
from fusionrec.serving.topk_index import TopKIndex

Ranked = list[tuple[str, float]]

MODEL = "model"  # scored by the trained user vector alone
HISTORY = "history"  # added interactions folded in (with the trained vector for known users)
POPULARITY = "popularity"  # a new user with no interactions yet: most popular items
_TIE_BREAK = 1e-3  # weight of normalised popularity added to folded-in scores (breaks ties, never reorders much)


@dataclass(frozen=True)
class Recommendation:
    """One user's ranking: ``items`` best first as ``(item_id, score)``; ``source`` is MODEL, HISTORY or
    POPULARITY (how it was scored)."""

    user_id: str
    items: Ranked
    source: str


def ranked(items: IdMap, indices: np.ndarray, scores: np.ndarray) -> Ranked:
    """``(raw id, score)`` pairs of these item indices, best first as given; non-finite scores and negative
    indices (no item) are left out."""
    keep = np.isfinite(scores) & (indices >= 0)
    return list(zip(items.raws(indices[keep]), scores[keep].astype(float).tolist()))


def top_k(scores: torch.Tensor, k: int, items: IdMap) -> list[Ranked]:
    """Scores (B, n_items) -> for each row the ``k`` best items (fewer when fewer are finite)."""
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    return [ranked(items, idx, vals) for vals, idx in zip(top.values.numpy(), top.indices.numpy())]


def score_every_item(model: Model, state: LiveState, raw_users: list[str],
                     index: np.ndarray) -> tuple[torch.Tensor, list[str], sp.csr_matrix]:
    """For a model not served from vectors: scores (B, n_items), each user's source, and the (B, n_items) matrix
    of what each user has seen. A user with added interactions is scored by ``score_histories`` (standardised,
    plus their trained scores when they have a vector); a new user without any by popularity."""
    if isinstance(model, SequenceModel):
        return score_sequences_of(model, state, raw_users, index)
    known, _, has_added, _, history = state.histories(raw_users, index)
    scores = state.popularity.unsqueeze(0).repeat(len(raw_users), 1)  # (B, n_items); popularity by default
    sources = [POPULARITY] * len(raw_users)
    plain = known & ~has_added
    if plain.any():
        scores[torch.from_numpy(np.flatnonzero(plain))] = model.score_all(torch.from_numpy(index[plain]))
    if has_added.any():
        rows = np.flatnonzero(has_added)
        folded = standardise(model.score_histories(history[rows]))
        known_rows = known[rows]
        if known_rows.any():
            trained = standardise(model.score_all(torch.from_numpy(index[rows[known_rows]])))
            folded[torch.from_numpy(np.flatnonzero(known_rows))] += trained
        pop = state.popularity / state.popularity.max().clamp_min(1.0)
        scores[torch.from_numpy(rows)] = folded + _TIE_BREAK * pop
    for r in np.flatnonzero(plain):
        sources[r] = MODEL
    for r in np.flatnonzero(has_added):
        sources[r] = HISTORY
    return scores.float(), sources, history


def ordered_history(model: SequenceModel, state: LiveState, user_id: str, user: int) -> np.ndarray:
    """A user's items in order, int64: the model's stored sequence (``user`` -1: none, a new user) then the items
    of their events added while serving, in the order they came (items added while serving left out: the model
    has no vector for them)."""
    items = model.stored_sequences().of(user) if user >= 0 else np.zeros(0, dtype=np.int64)
    added = np.asarray(state.added_sequence(user_id), dtype=np.int64)
    return np.concatenate([items, added[added < model.n_items]]) if len(added) else items


def history_windows(model: SequenceModel, state: LiveState, raw_users: list[str], index: np.ndarray) -> np.ndarray:
    """(B, max_length) int64: the last items of each user's :func:`ordered_history`, right-aligned, PAD before."""
    length = model.max_length
    windows = np.full((len(raw_users), length), PAD, dtype=np.int64)
    for r, user in enumerate(raw_users):
        items = ordered_history(model, state, user, int(index[r]))[-length:]
        windows[r, length - len(items):] = items
    return windows


def score_sequences_of(model: SequenceModel, state: LiveState, raw_users: list[str],
                       index: np.ndarray) -> tuple[torch.Tensor, list[str], sp.csr_matrix]:
    """:func:`score_every_item` for a sequence model: each user's ordered history is their stored sequence (none
    for a new user) followed by the items of the events added while serving, in the order they came, so the next
    list follows the last clicks at once. A user with no history at all gets popularity. Items added while serving
    have no vector in the model: they are neither read in a history nor recommended to a user scored by it."""
    known, _, has_added, _, history = state.histories(raw_users, index)
    windows = history_windows(model, state, raw_users, index)
    scores = state.popularity.unsqueeze(0).repeat(len(raw_users), 1)  # (B, n_items); popularity by default
    read = np.flatnonzero((windows != PAD).any(1))
    if len(read):
        scores[torch.from_numpy(read), :model.n_items] = model.score_sequences(torch.from_numpy(windows[read]))
        scores[torch.from_numpy(read), model.n_items:] = -torch.inf
    sources = [HISTORY if has_added[r] else MODEL if (windows[r] != PAD).any() else POPULARITY
               for r in range(len(raw_users))]
    return scores.float(), sources, history


def rank_every_item(model: Model, state: LiveState, raw_users: list[str], index: np.ndarray, k: int,
                    exclude_seen: bool, allowed: torch.Tensor | None) -> list[Recommendation]:
    """One chunk of users ranked over every item's score (:func:`score_every_item`)."""
    scores, sources, seen = score_every_item(model, state, raw_users, index)
    if allowed is not None:
        scores[:, ~allowed] = -torch.inf
    if exclude_seen:
        coo = seen.tocoo()
        scores[torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))] = -torch.inf
    return [Recommendation(user, items, source)
            for user, source, items in zip(raw_users, sources, top_k(scores, k, state.items))]


def most_popular(state: LiveState, k: int, allowed: torch.Tensor | None) -> Ranked:
    pop = state.popularity.clone()
    if allowed is not None:
        pop[~allowed] = -torch.inf
    return top_k(pop.unsqueeze(0), k, state.items)[0]


def rank_by_index(index: TopKIndex, user_vecs: np.ndarray, state: LiveState, raw_users: list[str],
                  users: np.ndarray, k: int, exclude_seen: bool, allowed: torch.Tensor | None,
                  model: Model | None = None) -> list[Recommendation]:
    """One chunk of users ranked by the top-K index: a trained user by their vector, a user with added
    interactions by a folded-in vector (:func:`fold_in`; for a sequence ``model``, the state after their ordered
    history, :func:`ordered_history`), a new user without interactions by popularity."""
    known, added, has_added, trained_seen, history = state.histories(raw_users, users)
    queries = np.zeros((len(raw_users), index.dim), dtype=np.float32)
    plain = known & ~has_added
    queries[plain] = user_vecs[users[plain]]
    folded = np.flatnonzero(has_added)
    if len(folded) and isinstance(model, SequenceModel):  # one encoder pass for the chunk's folded users
        windows = history_windows(model, state, [raw_users[r] for r in folded], users[folded])
        read = (windows != PAD).any(1)  # every added item may be one the model has no vector for
        if read.any():
            queries[folded[read]] = model.states_after(torch.from_numpy(windows[read])).numpy()
    elif len(folded):
        queries[folded] = fold_in(index.vectors, user_vecs, users[folded], trained_seen[folded], added[folded])
    by_vector = np.flatnonzero(known | has_added)
    scores, found = index.search(queries[by_vector], k, history[by_vector] if exclude_seen else None,
                                 None if allowed is None else allowed.numpy())
    by_row = {row: ranked(state.items, idx, vals) for row, vals, idx in zip(by_vector, scores, found)}
    popular = None
    out = []
    for row, user in enumerate(raw_users):
        if row in by_row:
            out.append(Recommendation(user, by_row[row], HISTORY if has_added[row] else MODEL))
            continue
        if popular is None:  # the same for every new user without interactions: computed once per chunk
            popular = most_popular(state, k, allowed)
        out.append(Recommendation(user, popular, POPULARITY))
    return out


def fold_in(item_vecs: np.ndarray, user_vecs: np.ndarray, users: np.ndarray, trained_seen: sp.csr_matrix,
            added: sp.csr_matrix) -> np.ndarray:
    """Query vectors (m, d) for users with added interactions, built from item vectors (n_items, d), never an
    item-item matrix. ``users`` (m,) their trained index into ``user_vecs`` or -1; ``trained_seen`` / ``added``
    (m, n_items) weights.

    The added part is the weighted mean of the added items' vectors: its score for item j, ``mean_i v_i . v_j``,
    is the model's own affinity between the history and j (and one LightGCN step from items to a user is such a
    weighted sum). A new user is that mean alone. A trained user's vector already summarises their training
    items, so it is kept and blended with the added mean rescaled to the trained vector's norm, each weighted by
    how many interactions it stands for: ``(n_train u + n_added s m) / (n_train + n_added)``. A few new events
    nudge a long history; many new events (or a short training history) move it a lot."""
    weight = np.asarray(added.sum(axis=1), dtype=np.float64).ravel()  # (m,)
    mean = np.asarray(added @ item_vecs, dtype=np.float64) / np.maximum(weight, 1e-12)[:, None]  # (m, d)
    out = mean.copy()
    known = np.flatnonzero(users >= 0)
    if len(known):
        u = user_vecs[users[known]].astype(np.float64)
        n_train = np.diff(trained_seen.indptr)[known].astype(np.float64)
        m = mean[known]
        m_norm = np.linalg.norm(m, axis=1, keepdims=True)
        scale = np.where(m_norm > 1e-12, np.linalg.norm(u, axis=1, keepdims=True) / np.maximum(m_norm, 1e-12), 0.0)
        w_added = weight[known][:, None]
        out[known] = (n_train[:, None] * u + w_added * scale * m) / np.maximum(n_train[:, None] + w_added, 1e-12)
    return out.astype(np.float32)


def similar_by_vectors(item_vecs: np.ndarray, item: int, k: int, items: IdMap) -> Ranked:
    """Top-k by cosine over item vectors, the item itself left out; one (n_items, d) x (d,) product."""
    vectors = torch.from_numpy(item_vecs)
    norms = vectors.norm(dim=1)
    scores = (vectors @ vectors[item]) / (norms * norms[item]).clamp_min(1e-12)
    scores[item] = -torch.inf
    return top_k(scores.unsqueeze(0), min(k, len(scores) - 1), items)[0]


def similar_by_model(model: Model, item: int, k: int, items: IdMap) -> Ranked:
    """Top-k by the model's own item-item similarity (as fold-in uses it), the item itself left out."""
    one_hot = sp.csr_matrix(([1.0], ([0], [item])), shape=(1, len(items)), dtype=np.float32)
    scores = model.score_histories(one_hot)[0].clone()
    scores[item] = -torch.inf
    return top_k(scores.unsqueeze(0), min(k, len(scores) - 1), items)[0]
