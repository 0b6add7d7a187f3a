"""``fusionrec data synth``: RecBole atomic files with planted structure at a chosen size, for scale benchmarks.

:mod:`fusionrec.data.synthetic` builds small in-memory datasets for tests; this module writes files of any size up
to a few million interactions and 100,000+ items, with the same kind of planted signal and the skew of real data:

* every item belongs to one of ``n_clusters`` hidden clusters (sizes skewed, weight ``(rank + 1) ** -0.5``);
  cluster ``c`` has the topic ``c % 8`` of :data:`fusionrec.data.synthetic.TOPICS` and the setting
  ``SETTINGS[c // 8]``, both real words, so a language model reading the text sees the clusters;
* item popularity follows a power law (weight ``(rank + 1) ** -popularity_exponent`` over a random ranking): a few
  head items and a long tail, as in real catalogues;
* each user prefers 1 to 3 clusters (mixed by Dirichlet weights) and has a log-normal activity (at least
  ``min(5, interactions // users)`` interactions); an interaction picks one of the user's clusters (or, with
  probability ``noise``, the whole catalogue) and then an item in it by popularity; (user, item) pairs are distinct;
* ratings are 4-5 for items of a preferred cluster and 1-3 otherwise; timestamps are spread over a year;
* ``.item``: ``movie_title`` (text, with ``--text``), ``release_year`` and ``class`` (categorical: the cluster's
  topic, sometimes a second one), named as in ml-100k so the shipped configs' text template and attributes work
  unchanged; ``.kg`` / ``.link`` (with ``--kg``): each item's entity ``in_topic`` -> its topic, ``set_in`` -> its
  setting, ``made_by`` -> one of the cluster's creators (20 % from anywhere), ``has_tag`` -> a random tag (noise),
  and each creator ``works_in`` -> its cluster's topic;
* ``.net`` (with ``social`` > 0): about ``social`` friends per user, each friendship written in both directions; a
  share ``homophily`` of them joins two users whose main preferred cluster is the same (the planted social signal),
  the rest two users drawn at random (``homophily`` 0: a control graph that carries no taste).

Interactions are drawn and written per chunk of users (vectorised, memory bounded by the chunk); every file is
written into a temporary folder and renamed into place, so a folder never holds half a dataset. The same arguments
give the same files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusionrec.data.synthetic import FILLER, START_TIME, SPAN_S, TOPICS
from fusionrec.errors import ConfigError

FORMAT_VERSION = 1
SETTINGS = ("paris", "tokyo", "london", "cairo", "berlin", "rome", "mexico", "moscow", "sydney", "chicago",
            "lisbon", "dublin", "madrid", "vienna", "prague", "istanbul", "mumbai", "havana", "alaska", "texas",
            "sahara", "arctic", "jungle", "desert", "village", "suburb", "castle", "forest", "mountain", "valley",
            "harbor", "airport", "hospital", "school", "college", "factory", "farm", "palace", "subway", "casino")
TOPIC_NAMES = tuple(TOPICS)
MAX_CLUSTERS = len(TOPIC_NAMES) * len(SETTINGS)
CREATORS_PER_CLUSTER = 5
N_TAGS = 50
CHUNK_INTERACTIONS = 1 << 20  # interactions drawn and written at a time


@dataclass(frozen=True, eq=False)
class PlantedStructure:
    """The hidden structure, indexed by internal position (raw id ``str(j + 1)`` is position ``j``).

    ``item_cluster``: int64 (n_items,); ``popularity``: float64 (n_items,) sampling weights (sum 1 within the
    catalogue); ``user_clusters``: int64 (n_users, 3), -1 where a user prefers fewer; ``user_mix``: float64
    (n_users, 3) the weight of each preferred cluster (rows sum to 1); ``counts``: int64 (n_users,) interactions
    per user (sum = n_interactions)."""

    item_cluster: np.ndarray
    popularity: np.ndarray
    user_clusters: np.ndarray
    user_mix: np.ndarray
    counts: np.ndarray

    @property
    def n_clusters(self) -> int:
        return int(self.item_cluster.max()) + 1


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_synthetic` wrote: the folder, the dataset name, the files and the sizes."""

    directory: str
    name: str
    files: list[str]
    users: int
    items: int
    interactions: int
    clusters: int
    triples: int
    social_edges: int = 0  # directed edges written to NAME.net (two per friendship)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def default_clusters(n_items: int) -> int:
    """About 250 items per cluster, between 8 and 200."""
    return int(min(200, max(8, n_items // 250), n_items))


def check_sizes(n_users: int, n_items: int, n_interactions: int, n_clusters: int) -> None:
    """Raises ConfigError naming the option when the sizes cannot be generated."""
    if n_users < 1:
        raise ConfigError(f"must be at least 1, got {n_users}", key="--users")
    if n_items < 2:
        raise ConfigError(f"must be at least 2, got {n_items}", key="--items")
    if not 1 <= n_clusters <= min(n_items, MAX_CLUSTERS):
        raise ConfigError(f"must be in 1..{min(n_items, MAX_CLUSTERS)}, got {n_clusters}", key="--clusters")
    cap = max(1, n_items // 2)
    if not n_users <= n_interactions <= n_users * cap:
        raise ConfigError(f"must be between the user count ({n_users}: each user needs one) and users x items / 2 "
                          f"({n_users * cap:,}: each user can have at most half the catalogue), got "
                          f"{n_interactions:,}", key="--interactions")


def planted_structure(n_users: int, n_items: int, n_interactions: int, n_clusters: int | None = None, seed: int = 0,
                      popularity_exponent: float = 0.8) -> PlantedStructure:
    """Clusters, popularity, user preferences and activity (see the module docstring); no interactions yet."""
    n_clusters = default_clusters(n_items) if n_clusters is None else n_clusters
    check_sizes(n_users, n_items, n_interactions, n_clusters)
    rng = np.random.default_rng([seed, 0])
    cluster_weight = rng.permutation((np.arange(n_clusters) + 1.0) ** -0.5)
    cluster_weight /= cluster_weight.sum()
    item_cluster = np.concatenate([np.arange(n_clusters), rng.choice(n_clusters, n_items - n_clusters,
                                                                     p=cluster_weight)])
    item_cluster = rng.permutation(item_cluster).astype(np.int64)  # every cluster has at least one item
    popularity = (rng.permutation(n_items) + 1.0) ** -popularity_exponent
    popularity /= popularity.sum()

    n_own = rng.choice(3, size=n_users, p=[0.5, 0.3, 0.2]) + 1
    user_clusters = rng.choice(n_clusters, size=(n_users, 3), p=cluster_weight).astype(np.int64)
    user_clusters[np.arange(3)[None, :] >= n_own[:, None]] = -1
    mix = rng.dirichlet(np.ones(3), size=n_users) * (user_clusters >= 0)
    mix /= mix.sum(axis=1, keepdims=True)
    counts = _activity(rng, n_users, n_interactions, cap=max(1, n_items // 2))
    return PlantedStructure(item_cluster, popularity, user_clusters, mix, counts)


def _activity(rng: np.random.Generator, n_users: int, total: int, cap: int) -> np.ndarray:
    """int64 (n_users,) summing to ``total``, each in [min(5, total // n_users), cap], log-normally skewed."""
    base = min(5, total // n_users, cap)
    weight = rng.lognormal(0.0, 1.0, size=n_users)
    counts = np.full(n_users, base, dtype=np.int64)
    rest = total - counts.sum()
    while rest > 0:  # hand out the rest by weight; users at the cap drop out (a few rounds at most)
        open_ = counts < cap
        w = np.where(open_, weight, 0.0)
        add = np.floor(w / w.sum() * rest).astype(np.int64)
        if add.sum() == 0:  # fewer left than users: one more each for the heaviest open users
            add[np.argsort(-w)[:rest]] = 1
        counts = np.minimum(counts + add, cap)
        rest = total - counts.sum()
    return counts


def sample_interactions(structure: PlantedStructure, lo: int, hi: int, seed: int,
                        noise: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (user, item) pairs of users ``lo`` .. ``hi - 1``: users, items int64 (m,), sorted by user, with
    ``counts[u]`` items for user ``u``. Deterministic in (structure, lo, hi, seed)."""
    rng = np.random.default_rng([seed, 1, lo])
    item_cluster, n_items = structure.item_cluster, len(structure.item_cluster)
    order = np.argsort(item_cluster, kind="stable")  # items grouped by cluster
    cum = np.cumsum(structure.popularity[order])
    start = np.searchsorted(item_cluster[order], np.arange(structure.n_clusters + 1))  # cluster c: start[c]:start[c+1]
    cum_lo = np.concatenate([[0.0], cum])[start[:-1]]
    cum_hi = cum[start[1:] - 1]
    want = structure.counts[lo:hi]
    users = np.zeros(0, dtype=np.int64)
    items = np.zeros(0, dtype=np.int64)
    need = want.copy()
    for attempt in range(10):
        if not need.any():
            break
        draw = np.where(need > 0, need + need // 4 + 1, 0)  # a few spare draws for the duplicates
        cand_u = np.repeat(np.arange(len(want), dtype=np.int64), draw)
        if attempt < 8:
            pick = (rng.random((len(cand_u), 1)) > np.cumsum(structure.user_mix[lo:hi][cand_u], axis=1)).sum(axis=1)
            cluster = structure.user_clusters[lo + cand_u, np.minimum(pick, 2)]
            anywhere = rng.random(len(cand_u)) < noise
            c = np.maximum(cluster, 0)
            low = np.where(anywhere, 0.0, cum_lo[c])
            high = np.where(anywhere, cum[-1], cum_hi[c])
            pos = np.searchsorted(cum, low + rng.random(len(cand_u)) * (high - low), side="right")
            pos = np.where(anywhere, np.minimum(pos, n_items - 1), np.clip(pos, start[c], start[c + 1] - 1))
            cand_i = order[pos]
        else:  # users whose clusters are nearly exhausted: fill from the whole catalogue, uniformly
            cand_i = rng.integers(n_items, size=len(cand_u))
        # keep the pairs already chosen, then the new distinct pairs in random order, up to each user's count
        all_u = np.concatenate([users, cand_u])
        all_i = np.concatenate([items, cand_i])
        prio = np.concatenate([np.full(len(users), -1.0), rng.random(len(cand_u))])
        by = np.lexsort((prio, all_i, all_u))
        key = all_u[by] * n_items + all_i[by]
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        keep = by[first]  # one row per distinct pair, the best priority
        keep = keep[np.lexsort((prio[keep], all_u[keep]))]
        ku = all_u[keep]
        rank = np.arange(len(ku)) - np.searchsorted(ku, ku)
        keep = keep[rank < want[ku]]
        users, items = all_u[keep], all_i[keep]
        need = want - np.bincount(users, minlength=len(want))
    if need.any():  # the few users who want most of their clusters and more: the rest from their unseen items
        extra_u, extra_i = [], []
        for u in np.flatnonzero(need):
            unseen = np.setdiff1d(np.arange(n_items), items[users == u], assume_unique=True)
            extra_u.append(np.full(need[u], u, dtype=np.int64))
            extra_i.append(rng.permutation(unseen)[:need[u]])
        users, items = np.concatenate([users, *extra_u]), np.concatenate([items, *extra_i])
        by = np.argsort(users, kind="stable")
        users, items = users[by], items[by]
    return users + lo, items


def write_synthetic(out_dir: str | Path, name: str, n_users: int, n_items: int, n_interactions: int, *,
                    text: bool = False, kg: bool = False, seed: int = 0, n_clusters: int | None = None,
                    noise: float = 0.15, popularity_exponent: float = 0.8,
                    chunk_interactions: int = CHUNK_INTERACTIONS, social: float = 0.0,
                    homophily: float = 0.8) -> SynthSummary:
    """Writes ``NAME.inter`` and ``NAME.item`` (plus ``NAME.kg`` and ``NAME.link`` with ``kg``) and
    ``NAME.synth.json`` (the arguments) into ``out_dir``; files of an earlier ``NAME`` there are replaced, and an
    earlier ``NAME.kg`` / ``NAME.link`` removed when ``kg`` is off. ``chunk_interactions`` bounds the memory; each
    chunk of users draws from its own seeded stream, so the files depend on it too: keep the default to compare
    files across runs."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"must be a plain file name, got {name!r}", key="--name")
    if not 0.0 <= noise <= 1.0:
        raise ConfigError(f"must be in [0, 1], got {noise}", key="--noise")
    if not 0.0 <= homophily <= 1.0:
        raise ConfigError(f"must be in [0, 1], got {homophily}", key="--homophily")
    if not 0.0 <= social < max(n_users - 1, 1):
        raise ConfigError(f"must be >= 0 and below the number of users, got {social}", key="--social")
    structure = planted_structure(n_users, n_items, n_interactions, n_clusters, seed, popularity_exponent)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out))
    try:
        _write_inter(tmp / f"{name}.inter", structure, seed, noise, chunk_interactions)
        rng = np.random.default_rng([seed, 2])
        _write_items(tmp / f"{name}.item", structure.item_cluster, rng, text)
        triples = _write_kg(tmp / f"{name}.kg", tmp / f"{name}.link", structure.item_cluster, rng) if kg else 0
        edges = _write_social(tmp / f"{name}.net", structure.user_clusters[:, 0], social, homophily,
                              np.random.default_rng([seed, 5])) if social > 0 else 0
        meta = {"format": FORMAT_VERSION, "generator": "fusionrec data synth", "seed": seed, "users": n_users,
                "items": n_items, "interactions": n_interactions, "clusters": structure.n_clusters, "text": text,
                "kg": kg, "noise": noise, "popularity_exponent": popularity_exponent, "social": social,
                "homophily": homophily,
                "chunk_interactions": chunk_interactions}
        (tmp / f"{name}.synth.json").write_text(json.dumps(meta, indent=2) + "\n")
        files = sorted(p.name for p in tmp.iterdir())
        for stale in (f"{name}.kg", f"{name}.link", f"{name}.net"):
            if stale not in files:
                (out / stale).unlink(missing_ok=True)
        for file in files:
            os.replace(tmp / file, out / file)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SynthSummary(str(out), name, files, n_users, n_items, n_interactions, structure.n_clusters, triples,
                        edges)


def _write_social(path: Path, main_cluster: np.ndarray, friends: float, homophily: float,
                  rng: np.random.Generator) -> int:
    """``NAME.net``: round(n_users x friends / 2) friendships drawn (self-pairs and repeats dropped), a share
    ``homophily`` within a main cluster, both directions written; returns the directed edges written."""
    n = len(main_cluster)
    m = int(round(n * friends / 2))
    src = rng.integers(0, n, size=m)
    order = np.argsort(main_cluster, kind="stable")
    ranked = main_cluster[order]
    lo = np.searchsorted(ranked, main_cluster[src], side="left")
    hi = np.searchsorted(ranked, main_cluster[src], side="right")
    same = order[lo + np.floor(rng.random(m) * (hi - lo)).astype(np.int64)]
    dst = np.where(rng.random(m) < homophily, same, rng.integers(0, n, size=m))
    keep = src != dst
    pairs = np.unique(np.sort(np.stack([src[keep], dst[keep]], axis=1), axis=1), axis=0)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    header = "source_id:token\ttarget_id:token\n"
    path.write_text(header + _tsv([both[:, 0] + 1, both[:, 1] + 1]), encoding="utf-8")
    return len(both)


def _write_inter(path: Path, s: PlantedStructure, seed: int, noise: float, chunk: int) -> None:
    """Draws the interactions per chunk of users (about ``chunk`` interactions each) and appends them to ``path``."""
    ends = np.cumsum(s.counts)
    bounds = np.unique(np.concatenate([[0], np.searchsorted(ends, np.arange(chunk, ends[-1], chunk)) + 1,
                                       [len(s.counts)]]))
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            users, items = sample_interactions(s, int(lo), int(hi), seed, noise)
            rng = np.random.default_rng([seed, 3, int(lo)])
            liked = (s.user_clusters[users] == s.item_cluster[items][:, None]).any(axis=1)
            ratings = np.where(liked, rng.integers(4, 6, size=len(users)), rng.integers(1, 4, size=len(users)))
            times = (START_TIME + np.floor(rng.random(len(users)) * SPAN_S)).astype(np.int64)
            by = np.lexsort((times, users))
            fh.write(_tsv([users[by] + 1, items[by] + 1, ratings[by], times[by]]))


def _tsv(columns: list[np.ndarray]) -> str:
    """Rows of tab-separated cells, each row ending in a newline; ``columns``: arrays of one length (ints or str)."""
    row = np.asarray(columns[0]).astype(str)
    for col in columns[1:]:
        row = np.strings.add(np.strings.add(row, "\t"), np.asarray(col).astype(str))
    return "\n".join(row.tolist()) + "\n" if len(row) else ""


def _write_items(path: Path, item_cluster: np.ndarray, rng: np.random.Generator, text: bool) -> None:
    """``item_id``, ``movie_title`` (with ``text``: two topic words, a filler word and the setting, e.g. "Orbit
    Comet Dream in Lisbon"), ``release_year``, ``class`` (the topic, for a quarter of items a second topic)."""
    n = len(item_cluster)
    topic = item_cluster % len(TOPIC_NAMES)
    setting = item_cluster // len(TOPIC_NAMES)
    names = np.array(TOPIC_NAMES)
    other = (topic + rng.integers(1, len(TOPIC_NAMES), size=n)) % len(TOPIC_NAMES)
    genres = np.where(rng.random(n) < 0.25, np.strings.add(np.strings.add(names[topic], " "), names[other]),
                      names[topic])
    year = rng.integers(1950, 2021, size=n)
    columns: list[np.ndarray] = [np.arange(1, n + 1)]
    header = ["item_id:token"]
    if text:
        words = np.array([[w.capitalize() for w in TOPICS[t]] for t in TOPIC_NAMES])  # (8, 10)
        first = rng.integers(10, size=n)
        second = (first + rng.integers(1, 10, size=n)) % 10
        filler = np.array([w.capitalize() for w in FILLER])[rng.integers(len(FILLER), size=n)]
        places = np.array([w.capitalize() for w in SETTINGS])[setting]
        title = words[topic, first]
        for part in (" ", words[topic, second], " ", filler, " in ", places):
            title = np.strings.add(title, part)
        columns.append(title)
        header.append("movie_title:token_seq")
    columns += [year, genres]
    header += ["release_year:token", "class:token_seq"]
    path.write_text("\t".join(header) + "\n" + _tsv(columns), encoding="utf-8")


def _write_kg(kg_path: Path, link_path: Path, item_cluster: np.ndarray, rng: np.random.Generator) -> int:
    """Item entities ``e<id>`` and their triples (see the module docstring); returns the number of triples."""
    n = len(item_cluster)
    n_clusters = int(item_cluster.max()) + 1
    topic = np.array(TOPIC_NAMES)[item_cluster % len(TOPIC_NAMES)]
    setting = item_cluster // len(TOPIC_NAMES)
    setting = np.where(rng.random(n) < 0.1, rng.integers(len(SETTINGS), size=n), setting)
    creator = item_cluster * CREATORS_PER_CLUSTER + rng.integers(CREATORS_PER_CLUSTER, size=n)
    creator = np.where(rng.random(n) < 0.2, rng.integers(n_clusters * CREATORS_PER_CLUSTER, size=n), creator)
    tag = rng.integers(N_TAGS, size=n)
    entity = np.strings.add("e", np.arange(1, n + 1).astype(str))
    all_creators = np.arange(n_clusters * CREATORS_PER_CLUSTER)
    heads = np.concatenate([np.tile(entity, 4), np.strings.add("creator_", all_creators.astype(str))])
    rels = np.repeat(np.array(["in_topic", "set_in", "made_by", "has_tag", "works_in"]), [n, n, n, n,
                                                                                          len(all_creators)])
    tails = np.concatenate([np.strings.add("topic_", topic), np.strings.add("place_", np.array(SETTINGS)[setting]),
                            np.strings.add("creator_", creator.astype(str)), np.strings.add("tag_", tag.astype(str)),
                            np.strings.add("topic_", np.array(TOPIC_NAMES)[(all_creators // CREATORS_PER_CLUSTER)
                                                                            % len(TOPIC_NAMES)])])
    kg_path.write_text("head_id:token\trelation_id:token\ttail_id:token\n" + _tsv([heads, rels, tails]),
                       encoding="utf-8")
    link_path.write_text("item_id:token\tentity_id:token\n" + _tsv([np.arange(1, n + 1), entity]), encoding="utf-8")
    return len(heads)
