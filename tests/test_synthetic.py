"""Synthetic generator: sizes, determinism, and that the planted clusters show in behaviour, text and graph."""

import numpy as np
import pytest

from fusionrec.data.synthetic import FILLER, make_synthetic, topic_words


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(n_users=120, n_items=80, n_clusters=4, interactions_per_user=10, seed=3, noise=0.1)


def test_sizes_and_raw_ids(syn):
    ds = syn.dataset
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (120, 80, 1200)
    assert ds.users.raw(12) == "u12" and ds.items.index("i7") == 7
    per_user = ds.interactions.to_csr().sum(axis=1).A.ravel()
    assert (per_user == 10).all()  # 10 distinct items for every user
    assert syn.item_cluster.shape == (80,) and np.bincount(syn.item_cluster).tolist() == [20, 20, 20, 20]
    ts = ds.interactions.timestamps
    users = ds.interactions.users
    assert (np.diff(users) >= 0).all() and (np.diff(ts)[np.diff(users) == 0] >= 0).all()  # by user, then time


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_synthetic(seed=5), make_synthetic(seed=5)
    assert a.dataset.content_hash() == b.dataset.content_hash()
    assert (a.item_cluster == b.item_cluster).all()
    assert make_synthetic(seed=6).dataset.content_hash() != a.dataset.content_hash()


def test_users_concentrate_on_their_clusters(syn):
    inter = syn.dataset.interactions
    ic = syn.item_cluster[inter.items]
    own = (ic == syn.user_cluster[inter.users]) | (ic == syn.user_second_cluster[inter.users])
    # chance would put ~1/4 (one cluster) to ~1/2 (two clusters) of the rows in the preferred clusters
    assert own.mean() > 0.85
    assert (syn.user_second_cluster >= 0).any() and (syn.user_second_cluster != syn.user_cluster).all()
    # ratings are planted too: high inside the preferred clusters, low outside
    assert inter.ratings[own].min() >= 4 and inter.ratings[~own].max() <= 3


def test_without_noise_every_interaction_is_in_a_preferred_cluster():
    s = make_synthetic(n_users=50, n_items=60, n_clusters=3, interactions_per_user=8, noise=0.0, seed=1,
                       second_cluster_share=0.0)
    inter = s.dataset.interactions
    assert (s.item_cluster[inter.items] == s.user_cluster[inter.users]).all()


def test_item_text_words_identify_the_cluster(syn):
    info = syn.dataset.item_info
    vocab = [set(topic_words(c)) for c in range(4)]
    for j, text in enumerate(info.text["description"]):
        words = set(text.rstrip(".").split())
        hits = [len(words & v) for v in vocab]
        assert int(np.argmax(hits)) == syn.item_cluster[j] and sorted(hits)[-2] == 0
        assert words & set(FILLER)  # shared filler mixed in
    assert all(info.categorical["genre"][j] == (info.categorical["genre"][0][0],)
               for j in np.flatnonzero(syn.item_cluster == syn.item_cluster[0]))


def test_knowledge_graph_reveals_the_cluster(syn):
    kg = syn.dataset.kg
    assert kg.n_linked_items == 80
    in_genre = kg.relations.index("in_genre")
    t = kg.triples[kg.triples[:, 1] == in_genre]
    item_of_entity = {int(e): i for i, e in enumerate(kg.item_entity.tolist())}
    genre_of_item = {item_of_entity[int(h)]: int(tail) for h, _, tail in t.tolist()}
    # items share a genre entity exactly when they share a hidden cluster
    for i in range(80):
        for j in range(i + 1, 80, 7):
            assert (genre_of_item[i] == genre_of_item[j]) == (syn.item_cluster[i] == syn.item_cluster[j])


def test_more_clusters_than_named_topics_and_bad_sizes():
    s = make_synthetic(n_users=20, n_items=40, n_clusters=10, interactions_per_user=5)
    assert "topic9word0" in topic_words(9) and len(set(s.item_cluster.tolist())) == 10
    with pytest.raises(ValueError, match="interactions_per_user"):
        make_synthetic(n_items=10, interactions_per_user=11)
