"""Synthetic user and item vectors with the structure of trained embeddings, for serving benchmarks at a scale no
dataset here has (a million items).

Trained recommender embeddings are not isotropic Gaussians: items form clusters (genres, topics), most of the
variance lies in a few directions, popular items have longer vectors (so inner-product ranking favours them) and a
user's vector points at the few clusters they consume. Random Gaussian vectors have none of that and are the worst
case for a graph index such as HNSW, so a latency figure measured on them says little about recall on real vectors.

:func:`clustered_vectors` draws:

- ``n_clusters`` cluster centres from a Gaussian whose variances decay as ``(j + 1) ** -spectrum_decay`` along the
  axes of a random rotation (a low effective rank), cluster sizes skewed (weight ``(rank + 1) ** -0.8``);
- each item as its centre plus ``item_spread`` times noise of the same spectrum, rescaled to the norm
  ``exp(norm_sigma * g)``, where ``g`` is the item's latent popularity (standard normal); its popularity weight is
  ``exp(popularity_sigma * g')`` with ``g'`` correlated ``norm_popularity_corr`` with ``g``;
- each user as a Dirichlet mixture of 1 to ``max_user_clusters`` clusters (picked by cluster weight) plus
  ``user_spread`` times noise, with norms of coefficient of variation about 0.3;
- each user's seen items from their clusters (popularity-weighted), a ``seen_noise`` share from the whole catalogue
  (popularity-weighted), so seen items are among the high scorers, as they are for a trained model.

The defaults were set against a BPR model trained on ml-100k (configs/ml-100k/bpr.yaml; 64-d): its item vectors keep
50 / 64 / 77 % of their variance in the top 4 / 8 / 16 principal directions, item norms have a coefficient of
variation of .21 and a Spearman correlation of .93 with popularity, user norms .31. :func:`vector_stats` reports
these figures for any vectors. The same arguments give the same vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusteredVectors:
    """users (n_users, d) and items (n_items, d) float32; item_cluster (n_items,) int64; user_clusters
    (n_users, max_user_clusters) int64, -1 where a user has fewer; popularity (n_items,) float64 weights summing
    to 1; seen: (rows, cols) int64 index arrays of the seen (user, item) pairs, duplicates possible."""

    users: np.ndarray
    items: np.ndarray
    item_cluster: np.ndarray
    user_clusters: np.ndarray
    popularity: np.ndarray
    seen: tuple[np.ndarray, np.ndarray]


def clustered_vectors(n_users: int, n_items: int, dim: int = 64, seed: int = 0, *, n_clusters: int = 1000,
                      spectrum_decay: float = 1.2, item_spread: float = 0.6, user_spread: float = 0.5,
                      max_user_clusters: int = 3, norm_sigma: float = 0.2, popularity_sigma: float = 1.5,
                      norm_popularity_corr: float = 0.93, seen_per_user: int = 20,
                      seen_noise: float = 0.2) -> ClusteredVectors:
    """Vectors with planted clusters, a decaying spectrum and popularity-skewed norms (see the module docstring)."""
    if n_users < 1 or n_items < 1 or dim < 1:
        raise ValueError("need n_users, n_items and dim >= 1")
    if not 1 <= n_clusters <= n_items:
        raise ValueError(f"n_clusters must be in 1..n_items ({n_items}), not {n_clusters}")
    if max_user_clusters < 1 or seen_per_user < 0 or not 0.0 <= seen_noise <= 1.0:
        raise ValueError("need max_user_clusters >= 1, seen_per_user >= 0 and seen_noise in [0, 1]")
    rng = np.random.default_rng(seed)
    scale = (np.arange(dim) + 1.0) ** (-spectrum_decay / 2)  # standard deviation per principal axis
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))

    def spectral_noise(n: int) -> np.ndarray:  # (n, dim) float32, covariance R diag(scale^2) R^T
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 1 << 16):
            stop = min(n, start + (1 << 16))
            out[start:stop] = (rng.standard_normal((stop - start, dim)) * scale) @ rotation.T
        return out

    centres = spectral_noise(n_clusters)
    cluster_weight = (np.arange(n_clusters) + 1.0) ** -0.8
    cluster_weight = rng.permutation(cluster_weight / cluster_weight.sum())
    item_cluster = rng.choice(n_clusters, size=n_items, p=cluster_weight).astype(np.int64)
    g = rng.standard_normal(n_items)
    items = spectral_noise(n_items)
    items *= item_spread
    items += centres[item_cluster]
    items *= (np.exp(norm_sigma * g) / np.maximum(np.linalg.norm(items, axis=1), 1e-12)).astype(np.float32)[:, None]
    g_pop = norm_popularity_corr * g + np.sqrt(max(0.0, 1 - norm_popularity_corr ** 2)) * rng.standard_normal(n_items)
    popularity = np.exp(popularity_sigma * g_pop)
    popularity /= popularity.sum()

    n_own = rng.integers(1, max_user_clusters + 1, size=n_users)
    user_clusters = rng.choice(n_clusters, size=(n_users, max_user_clusters), p=cluster_weight).astype(np.int64)
    user_clusters[np.arange(max_user_clusters)[None, :] >= n_own[:, None]] = -1
    mix = rng.dirichlet(np.ones(max_user_clusters), size=n_users) * (user_clusters >= 0)
    mix /= mix.sum(axis=1, keepdims=True)
    users = np.einsum("uc,ucd->ud", mix, centres[np.maximum(user_clusters, 0)]).astype(np.float32)
    users /= np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
    noise = spectral_noise(n_users)
    noise /= np.sqrt((scale ** 2).sum())  # unit expected norm
    users += user_spread * noise
    users *= (np.exp(0.3 * rng.standard_normal(n_users)) / np.linalg.norm(users, axis=1)).astype(np.float32)[:, None]

    seen = _seen_pairs(rng, item_cluster, popularity, user_clusters, mix, n_clusters, seen_per_user, seen_noise)
    return ClusteredVectors(users, items, item_cluster, user_clusters, popularity, seen)


def _seen_pairs(rng: np.random.Generator, item_cluster: np.ndarray, popularity: np.ndarray,
                user_clusters: np.ndarray, mix: np.ndarray, n_clusters: int, per_user: int,
                noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``per_user`` draws per user: a cluster from the user's mixture (or, with probability ``noise``, the whole
    catalogue), then an item of it with probability proportional to popularity. Vectorised: items sorted by
    cluster, one cumulative popularity, a draw is a searchsorted inside its cluster's span."""
    n_users = len(user_clusters)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    pick = (rng.random((n_users * per_user, 1)) > np.cumsum(mix, axis=1)[rows]).sum(axis=1)
    pick = np.minimum(pick, user_clusters.shape[1] - 1)
    cluster = user_clusters[rows, pick]
    order = np.argsort(item_cluster, kind="stable")
    cum = np.cumsum(popularity[order])
    bounds = np.searchsorted(item_cluster[order], np.arange(n_clusters + 1))  # cluster c: order[bounds[c]:bounds[c+1]]
    lo = np.where(bounds[:-1] > 0, cum[np.maximum(bounds[:-1] - 1, 0)], 0.0)
    hi = cum[np.maximum(bounds[1:] - 1, 0)]
    anywhere = (rng.random(len(rows)) < noise) | (cluster < 0)
    low = np.where(anywhere, 0.0, lo[np.maximum(cluster, 0)])
    high = np.where(anywhere, cum[-1], hi[np.maximum(cluster, 0)])
    target = low + rng.random(len(rows)) * (high - low)
    cols = order[np.minimum(np.searchsorted(cum, target, side="right"), len(order) - 1)]
    return rows, cols.astype(np.int64)


def vector_stats(users: np.ndarray, items: np.ndarray, popularity: np.ndarray | None = None,
                 sample: int = 20_000, seed: int = 0) -> dict:
    """Figures to compare synthetic vectors with trained ones: share of item variance in the top 4 / 8 / 16
    principal directions, coefficient of variation of item and user norms and, given popularity (n_items,), the
    Spearman correlation of item norm with it. Computed on at most ``sample`` rows of each."""
    rng = np.random.default_rng(seed)

    def rows(x):
        return x if len(x) <= sample else x[rng.choice(len(x), sample, replace=False)]

    it = rows(np.asarray(items, dtype=np.float64))
    var = np.linalg.svd(it - it.mean(axis=0), compute_uv=False) ** 2
    cum = np.cumsum(var) / var.sum()
    item_norm = np.linalg.norm(items, axis=1)
    user_norm = np.linalg.norm(users, axis=1)
    out = {f"item_variance_top{j}": round(float(cum[min(j, len(cum)) - 1]), 3) for j in (4, 8, 16)}
    out["item_norm_cv"] = round(float(item_norm.std() / item_norm.mean()), 3)
    out["user_norm_cv"] = round(float(user_norm.std() / user_norm.mean()), 3)
    if popularity is not None:
        a = np.argsort(np.argsort(item_norm)).astype(np.float64)
        b = np.argsort(np.argsort(popularity)).astype(np.float64)
        out["item_norm_popularity_spearman"] = round(float(np.corrcoef(a, b)[0, 1]), 3)
    return out
