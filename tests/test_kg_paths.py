"""KG path search on a hand-written graph whose paths are known.

    entities: 0 film_a, 1 film_b, 2 director_d, 3 genre_g, 4 film_c, 5 x, 6 y, 7 hub, 8..17 leaves of the hub
    relations: 0 directed_by, 1 in_genre, 2 linked, 3 about

    film_a -directed_by-> director_d <-directed_by- film_b           (a to b: 2 hops)
    film_c -linked-> x <-linked- y -linked-> film_b                    (c to b: 3 hops)
    film_a -in_genre-> genre_g                                         (a dead end)
    film_a, film_b and 10 leaves -about-> hub                          (a to b through a hub: 2 hops)
"""

import numpy as np
import pytest

from fusionrec.knowledge.kg.paths import build_path_graph, distances, find_paths

A, B, D, G, C, X, Y, HUB = range(8)
DIRECTED_BY, IN_GENRE, LINKED, ABOUT = range(4)


@pytest.fixture
def graph():
    triples = [(A, DIRECTED_BY, D), (B, DIRECTED_BY, D), (A, IN_GENRE, G), (C, LINKED, X), (Y, LINKED, X),
               (Y, LINKED, B), (A, ABOUT, HUB), (B, ABOUT, HUB)] + [(leaf, ABOUT, HUB) for leaf in range(8, 18)]
    return build_path_graph(np.array(triples), 18)


def test_distances_walk_edges_both_ways_up_to_max_hops(graph):
    dist = distances(graph, B, max_hops=3)
    assert dist[B] == 0 and dist[D] == 1 and dist[Y] == 1 and dist[HUB] == 1
    assert dist[A] == 2 and dist[X] == 2 and dist[8] == 2
    assert dist[C] == 3 and dist[G] == 3
    assert distances(graph, B, max_hops=2)[C] == -1


def test_two_hop_path_keeps_relations_and_directions_and_prefers_the_specific_node(graph):
    paths = find_paths(graph, [A], B, max_paths=3)
    assert [p.entities for p in paths] == [(A, D, B), (A, HUB, B)]  # director (degree 2) before hub (degree 12)
    assert paths[0].relations == (DIRECTED_BY, DIRECTED_BY) and paths[0].forward == (True, False)
    assert paths[0].hops == 2 and paths[0].source == A


def test_three_hop_path_and_the_hop_limit(graph):
    (path,) = find_paths(graph, [C], B)
    assert path.entities == (C, X, Y, B)
    assert path.relations == (LINKED, LINKED, LINKED) and path.forward == (True, False, True)
    assert find_paths(graph, [C], B, max_hops=2) == []


def test_shorter_paths_first_then_each_sources_best_path(graph):
    paths = find_paths(graph, [C, A], B, max_paths=2)
    assert [p.entities for p in paths] == [(A, D, B), (A, HUB, B)]
    paths = find_paths(graph, [C, A, 8], B, max_paths=3)
    # a's best, then the leaf's only path (its best) before a's second, then c's 3-hop path would come last
    assert [p.entities for p in paths] == [(A, D, B), (8, HUB, B), (A, HUB, B)]


def test_max_degree_keeps_searches_out_of_hubs(graph):
    paths = find_paths(graph, [A, 8], B, max_paths=3, max_degree=5)
    assert [p.entities for p in paths] == [(A, D, B)]  # 8 reaches b only through the hub


def test_sources_that_cannot_give_a_path_are_skipped(graph):
    assert find_paths(graph, [-1, B], B) == []  # unlinked item, the target itself
    assert find_paths(graph, [G], C, max_hops=3) == []  # g-a-hub/d-... c is 5 hops away
    assert find_paths(graph, [A], B, max_paths=0) == []
    assert [p.entities for p in find_paths(graph, [A, A, -1], B, max_paths=1)] == [(A, D, B)]


def test_among_equal_paths_the_one_through_a_less_busy_entity_wins(graph):
    # 8 comes first, but its only path goes through the hub; a's goes through the director (2 neighbours)
    assert [p.entities for p in find_paths(graph, [8, A], B, max_paths=1)] == [(A, D, B)]
    assert [p.entities for p in find_paths(graph, [8, A], B, max_paths=1, pool=1)] == [(8, HUB, B)]  # no pool
