"""A synthetic dataset with planted structure, for tests that must check a signal is actually learned.

Every item belongs to one hidden cluster. Every user prefers one cluster (some users two) and most of their
interactions fall in it; the rest (``noise``) are drawn at random. The same clusters show in every other source:
item text uses cluster-specific words (real words, so a language model sees the topic too) mixed with shared
filler, the categorical ``genre`` field names the cluster, ratings are high inside the preferred clusters, and the
knowledge graph links each item to an entity whose ``in_genre`` relation points to its cluster's genre entity
(``directed_by`` mostly stays inside the cluster, ``has_tag`` is pure noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.data.ids import IdMap
from fusionrec.data.interactions import Interactions
from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.data.side_info import ItemSideInfo

TOPICS: dict[str, tuple[str, ...]] = {
    "space": ("galaxy", "planet", "rocket", "orbit", "astronaut", "comet", "nebula", "spaceship", "alien", "moon"),
    "ocean": ("sea", "wave", "ship", "sailor", "island", "whale", "coral", "tide", "harbor", "reef"),
    "crime": ("detective", "murder", "police", "heist", "gangster", "thief", "trial", "prison", "clue", "witness"),
    "romance": ("love", "wedding", "kiss", "heart", "couple", "affair", "bride", "passion", "lover", "valentine"),
    "war": ("soldier", "battle", "army", "tank", "general", "trench", "siege", "rifle", "navy", "combat"),
    "music": ("band", "concert", "guitar", "singer", "song", "piano", "jazz", "album", "stage", "drummer"),
    "horror": ("ghost", "zombie", "vampire", "haunted", "curse", "demon", "blood", "scream", "monster", "witch"),
    "sport": ("football", "coach", "team", "stadium", "champion", "race", "boxer", "goal", "league", "athlete"),
}
FILLER = ("story", "film", "classic", "new", "great", "life", "journey", "night", "city", "world", "family",
          "friends", "secret", "last", "first", "day", "year", "home", "dream", "time")
START_TIME = 1_600_000_000.0  # seconds since the epoch (September 2020)
SPAN_S = 365 * 24 * 3600.0


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """The dataset and its ground truth, indexed like the dataset's maps (item ``"i7"`` has index 7).

    ``item_cluster``: int64 (n_items,); ``user_cluster``: int64 (n_users,), each user's main cluster;
    ``user_second_cluster``: int64 (n_users,), a second preferred cluster or -1."""

    dataset: Dataset
    item_cluster: np.ndarray
    user_cluster: np.ndarray
    user_second_cluster: np.ndarray


def topic_name(cluster: int) -> str:
    names = list(TOPICS)
    return names[cluster] if cluster < len(names) else f"topic{cluster}"


def topic_words(cluster: int) -> tuple[str, ...]:
    name = topic_name(cluster)
    return TOPICS.get(name) or tuple(f"{name}word{j}" for j in range(10))


def make_synthetic(n_users: int = 300, n_items: int = 200, n_clusters: int = 5, interactions_per_user: int = 20,
                   seed: int = 0, noise: float = 0.1, *, second_cluster_share: float = 0.2,
                   topic_words_per_item: int = 3, filler_words_per_item: int = 5, director_noise: float = 0.2,
                   n_tags: int = 10, name: str = "synthetic") -> SyntheticData:
    """A dataset with planted clusters (see the module docstring); the same arguments give the same data.

    ``noise``: share of each user's interactions drawn at random from the whole catalogue.
    ``second_cluster_share``: share of users who prefer a second cluster as well. ``topic_words_per_item`` /
    ``filler_words_per_item``: words of the item description from the cluster vocabulary / the shared one.
    ``director_noise``: share of items whose director comes from another cluster."""
    if n_clusters < 1 or n_users < 1 or n_items < n_clusters:
        raise ValueError("need n_users >= 1, n_clusters >= 1 and n_items >= n_clusters")
    if not 0 < interactions_per_user <= n_items:
        raise ValueError(f"interactions_per_user must be in 1..n_items ({n_items}), not {interactions_per_user}")
    if not 0.0 <= noise <= 1.0 or not 0.0 <= second_cluster_share <= 1.0:
        raise ValueError("noise and second_cluster_share must be in [0, 1]")
    rng = np.random.default_rng(seed)
    item_cluster = rng.permutation(np.arange(n_items) % n_clusters).astype(np.int64)
    user_cluster = rng.integers(n_clusters, size=n_users).astype(np.int64)
    second = (user_cluster + rng.integers(1, max(n_clusters, 2), size=n_users)) % n_clusters
    has_second = (rng.random(n_users) < second_cluster_share) & (n_clusters > 1)
    user_second = np.where(has_second, second, -1).astype(np.int64)

    users, items = _sample_interactions(rng, item_cluster, user_cluster, user_second, interactions_per_user, noise)
    preferred = (item_cluster[items] == user_cluster[users]) | (item_cluster[items] == user_second[users])
    ratings = np.where(preferred, rng.integers(4, 6, size=len(users)), rng.integers(1, 4, size=len(users)))
    timestamps = START_TIME + np.floor(rng.random(len(users)) * SPAN_S)
    order = np.lexsort((timestamps, users))
    inter = Interactions(users[order], items[order], n_users, n_items, ratings[order].astype(np.float32),
                         timestamps[order].astype(np.float64))

    item_map = IdMap.from_list("item", [f"i{j}" for j in range(n_items)])
    info = _side_info(rng, item_cluster, topic_words_per_item, filler_words_per_item)
    kg = _knowledge_graph(rng, item_cluster, n_clusters, director_noise, n_tags, n_items)
    dataset = Dataset(name=name, users=IdMap.from_list("user", [f"u{j}" for j in range(n_users)]), items=item_map,
                      interactions=inter, item_info=info, kg=kg, source=f"make_synthetic(seed={seed})")
    return SyntheticData(dataset, item_cluster, user_cluster, user_second)


def _sample_interactions(rng: np.random.Generator, item_cluster: np.ndarray, user_cluster: np.ndarray,
                         user_second: np.ndarray, k: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """k distinct items per user: about (1 - noise) * k from the preferred cluster(s), the rest from the whole
    catalogue. Returns users, items: int64 (n_users * k,). Works on chunks of users (memory: chunk x n_items)."""
    n_users, n_items = len(user_cluster), len(item_cluster)
    chunk = max(1, (1 << 22) // n_items)
    out_u, out_i = [], []
    for lo in range(0, n_users, chunk):
        uc, us = user_cluster[lo:lo + chunk, None], user_second[lo:lo + chunk, None]
        m = len(uc)
        pref = (item_cluster[None, :] == uc) | (item_cluster[None, :] == us)  # (m, n_items)
        n_pref = k - rng.binomial(k, noise, size=m)
        # rank the preferred items of each user in random order; take the first n_pref of them
        keys = np.where(pref, rng.random((m, n_items)), 2.0)
        rank = np.argsort(np.argsort(keys, axis=1), axis=1)
        chosen = pref & (rank < n_pref[:, None])
        # fill up to k with random items not chosen yet (any cluster)
        keys = np.where(chosen, 2.0, rng.random((m, n_items)))
        rank = np.argsort(np.argsort(keys, axis=1), axis=1)
        chosen |= ~chosen & (rank < (k - chosen.sum(1))[:, None])
        rows, cols = np.nonzero(chosen)
        out_u.append(rows + lo)
        out_i.append(cols)
    return np.concatenate(out_u).astype(np.int64), np.concatenate(out_i).astype(np.int64)


def _side_info(rng: np.random.Generator, item_cluster: np.ndarray, n_topic: int, n_filler: int) -> ItemSideInfo:
    """``title`` and ``description`` (text), ``genre`` (categorical: the cluster's topic), ``year`` (numeric)."""
    n_items = len(item_cluster)
    vocab = [topic_words(c) for c in range(int(item_cluster.max()) + 1)]
    if not 1 <= n_topic <= 10 or not 0 <= n_filler <= len(FILLER):
        raise ValueError(f"topic_words_per_item must be in 1..10 and filler_words_per_item in 0..{len(FILLER)}")
    topic_pick = rng.random((n_items, 10)).argsort(axis=1)[:, :n_topic]  # distinct words per item
    filler_pick = rng.random((n_items, len(FILLER))).argsort(axis=1)[:, :max(n_filler, 1)]
    order = rng.random((n_items, n_topic + n_filler)).argsort(axis=1)
    titles, descriptions = [], []
    for j, c in enumerate(item_cluster.tolist()):
        words = [vocab[c][w] for w in topic_pick[j]] + [FILLER[w] for w in filler_pick[j, :n_filler]]
        words = [words[o] for o in order[j]]
        titles.append(f"The {FILLER[filler_pick[j, 0]].capitalize()} of the {vocab[c][topic_pick[j, 0]].capitalize()}")
        descriptions.append("A " + " ".join(words) + ".")
    genre = [(topic_name(c),) for c in item_cluster.tolist()]
    year = rng.integers(1950, 2021, size=n_items).astype(np.float64)
    return ItemSideInfo(n_items, {"title": titles, "description": descriptions}, {"genre": genre}, {"year": year})


def _knowledge_graph(rng: np.random.Generator, item_cluster: np.ndarray, n_clusters: int, director_noise: float,
                     n_tags: int, n_items: int) -> KnowledgeGraph:
    """Item entities ``e_i<j>`` with ``in_genre`` -> ``genre_<c>`` (the cluster), ``directed_by`` -> a director
    of the item's cluster (``director_noise`` of them from another), ``has_tag`` -> a random tag."""
    n_directors = 3 * n_clusters
    director_cluster = np.arange(n_directors) % n_clusters
    own = rng.integers(3, size=n_items) * n_clusters + item_cluster  # a director of the item's cluster
    director = np.where(rng.random(n_items) < director_noise, rng.integers(n_directors, size=n_items), own)
    tag = rng.integers(max(n_tags, 1), size=n_items)
    entity_names = ([f"e_i{j}" for j in range(n_items)] + [f"genre_{topic_name(c)}" for c in range(n_clusters)]
                    + [f"director_{d}_{topic_name(int(director_cluster[d]))}" for d in range(n_directors)]
                    + [f"tag_{t}" for t in range(max(n_tags, 1))])
    genre0, director0, tag0 = n_items, n_items + n_clusters, n_items + n_clusters + n_directors
    heads = np.tile(np.arange(n_items), 3)
    rels = np.repeat(np.arange(3), n_items)
    tails = np.concatenate([genre0 + item_cluster, director0 + director, tag0 + tag])
    triples = torch.from_numpy(np.stack([heads, rels, tails], axis=1).astype(np.int64))
    return KnowledgeGraph(triples, IdMap.from_list("entity", entity_names),
                          IdMap.from_list("relation", ["in_genre", "directed_by", "has_tag"]),
                          torch.arange(n_items, dtype=torch.long))
