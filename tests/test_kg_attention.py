"""The collaborative knowledge graph, KGAT attention and bi-interaction propagation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from fusionrec.data import IdMap, KnowledgeGraph
from fusionrec.errors import DataError
from fusionrec.knowledge.kg import CKG, KGATAttention, collaborative_graph, edge_attention, segment_softmax


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds contention


def tiny_kg() -> KnowledgeGraph:
    """Entities a, b, c; b -r-> a, c -r-> a, a -s-> c; items 0 -> b, 1 unlinked, 2 -> c."""
    return KnowledgeGraph(torch.tensor([[1, 0, 0], [2, 0, 0], [0, 1, 2]]), IdMap("entity", ["a", "b", "c"]),
                          IdMap("relation", ["r", "s"]), torch.tensor([1, -1, 2]))


def tiny_ckg() -> CKG:
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=np.float32))  # user 0: items 0, 1; user 1: item 2
    return collaborative_graph(train, tiny_kg())


def edge_set(ckg: CKG) -> set[tuple[int, int, int]]:
    return set(map(tuple, ckg.triples().tolist()))


def test_collaborative_graph_node_numbering():
    ckg = tiny_ckg()
    # entities 0..2, item 1 (unlinked) gets node 3, users 0 and 1 are nodes 4 and 5
    assert ckg.item_node.tolist() == [1, 3, 2]
    assert (ckg.n_entities, ckg.user_offset, ckg.n_nodes) == (3, 4, 6)
    assert ckg.relation_names == ["interact", "r", "s"]
    assert ckg.user_node(torch.tensor([0, 1])).tolist() == [4, 5]
    kg_edges = {(1, 1, 0), (2, 1, 0), (0, 2, 2)}
    interact = {(4, 0, 1), (4, 0, 3), (5, 0, 2)}
    assert edge_set(ckg) == kg_edges | interact | {(t, 0, h) for h, _, t in interact}
    assert ckg.n_edges == 9


def test_collaborative_graph_without_kg_and_with_bad_links():
    train = sp.csr_matrix(np.array([[1, 0], [1, 1]], dtype=np.float32))
    alone = collaborative_graph(train, None)
    assert alone.item_node.tolist() == [0, 1] and alone.user_offset == 2 and alone.relation_names == ["interact"]
    assert edge_set(alone) == {(2, 0, 0), (3, 0, 0), (3, 0, 1), (0, 0, 2), (0, 0, 3), (1, 0, 3)}
    with pytest.raises(DataError, match="outside 0..2"):
        collaborative_graph(sp.csr_matrix((1, 3)), tiny_kg(), torch.tensor([0, 5, -1]))
    with pytest.raises(DataError, match="shape"):
        collaborative_graph(sp.csr_matrix((1, 2)), tiny_kg(), torch.tensor([0, 1, 2]))


def test_segment_softmax_by_hand():
    logits = torch.tensor([0.0, math.log(3.0), 5.0, 1000.0, 1000.0])
    index = torch.tensor([0, 0, 2, 1, 1])
    assert segment_softmax(logits, index, 4).tolist() == pytest.approx([0.25, 0.75, 1.0, 0.5, 0.5])


def embeddings(ckg: CKG, dim: int = 4, rel_dim: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(ckg.n_nodes, dim, generator=g), torch.randn(ckg.n_relations, rel_dim, generator=g),
            torch.randn(ckg.n_relations, rel_dim, dim, generator=g))


def test_attention_matches_the_formula_and_rows_sum_to_one():
    ckg = tiny_ckg()
    node, rel, w_r = embeddings(ckg)
    att = KGATAttention(4, (4,), graph=ckg)
    adj = att.update_attention(node, rel, w_r).to_dense()
    logits = {}
    for h, r, t in ckg.triples().tolist():
        logits[(h, t)] = float((w_r[r] @ node[t]) @ torch.tanh(w_r[r] @ node[h] + rel[r]))
    for h in range(ckg.n_nodes):
        outs = {t: v for (hh, t), v in logits.items() if hh == h}
        denom = sum(math.exp(v) for v in outs.values())
        for t in range(ckg.n_nodes):
            assert adj[h, t].item() == pytest.approx(math.exp(outs[t]) / denom if t in outs else 0.0, abs=1e-6)
    assert adj.sum(1).tolist() == pytest.approx([1.0] * ckg.n_nodes)  # every node of tiny_ckg has an out-edge


def test_parallel_edges_add_up_and_nodes_without_out_edges_get_a_zero_row():
    # node 0 -> 1 twice (relations 0 and 1) and 0 -> 2; node 3 has no edges at all
    no_items = torch.zeros(0, dtype=torch.long)
    ckg = CKG(torch.tensor([0, 0, 0]), torch.tensor([0, 1, 0]), torch.tensor([1, 1, 2]), no_items, n_entities=4,
              user_offset=4, n_users=0, relation_names=["x", "y"])
    att = KGATAttention(4, (4,), graph=ckg)
    adj = att.set_attention(torch.tensor([0.2, 0.3, 0.5])).to_dense()
    assert adj[0].tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0])
    assert adj[1:].abs().sum() == 0
    node, rel, w_r = embeddings(ckg)
    alpha = edge_attention(ckg, node, rel, w_r)
    assert alpha.sum().item() == pytest.approx(1.0)


def test_propagation_is_the_bi_interaction_of_the_attended_neighbours():
    ckg = tiny_ckg()
    node, rel, w_r = embeddings(ckg)
    att = KGATAttention(4, (3, 2), dropout=0.0, normalize=False, graph=ckg).eval()
    adj = att.update_attention(node, rel, w_r).to_dense()
    out = att(node)
    assert out.shape == (ckg.n_nodes, att.out_dim) and att.out_dim == 4 + 3 + 2
    e, expected = node, [node]
    for layer in att.layers:
        e_n = adj @ e
        e = F.leaky_relu(layer.w1(e + e_n), 0.2) + F.leaky_relu(layer.w2(e * e_n), 0.2)
        expected.append(e)
    assert torch.allclose(out, torch.cat(expected, 1), atol=1e-6)


def test_node_without_neighbours_is_well_defined():
    ckg = CKG(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), torch.zeros(0, dtype=torch.long),
              n_entities=3, user_offset=3, n_users=0, relation_names=["x"])
    node, rel, w_r = embeddings(ckg)
    att = KGATAttention(4, (4,), dropout=0.0, normalize=True, graph=ckg).eval()
    att.update_attention(node, rel, w_r)
    out = att(node)
    assert torch.isfinite(out).all()
    layer = att.layers[0]
    lonely = F.leaky_relu(layer.w1(node[2]), 0.2) + F.leaky_relu(layer.w2.bias, 0.2)  # e_N = 0
    assert torch.allclose(out[2, 4:], F.normalize(lonely, dim=0), atol=1e-6)


def test_gradients_flow_to_embeddings_and_aggregator_and_match_dense():
    ckg = tiny_ckg()
    node, rel, w_r = embeddings(ckg)
    att = KGATAttention(4, (3, 3), dropout=0.0, graph=ckg).train()
    adj = att.update_attention(node, rel, w_r).to_dense()
    x = node.clone().requires_grad_(True)
    (att(x) ** 2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in att.parameters())
    # the same propagation with a dense matrix and torch's own autograd gives the same gradient
    x_dense = node.clone().requires_grad_(True)
    e, outs = x_dense, [x_dense]
    for layer in att.layers:
        e_n = adj @ e
        e = F.leaky_relu(layer.w1(e + e_n), 0.2) + F.leaky_relu(layer.w2(e * e_n), 0.2)
        outs.append(F.normalize(e, dim=1))
    (torch.cat(outs, 1) ** 2).sum().backward()
    assert torch.allclose(x.grad, x_dense.grad, atol=1e-5)


def test_edge_attention_is_differentiable_but_update_attention_is_not():
    ckg = tiny_ckg()
    node, rel, w_r = (t.requires_grad_(True) for t in embeddings(ckg))
    alpha = edge_attention(ckg, node, rel, w_r)
    (alpha * torch.arange(len(alpha), dtype=torch.float32)).sum().backward()
    assert w_r.grad.abs().sum() > 0 and rel.grad.abs().sum() > 0 and node.grad.abs().sum() > 0
    att = KGATAttention(4, (4,), graph=ckg)
    assert not att.update_attention(node, rel, w_r).requires_grad


def test_dropout_only_in_training_and_clear_errors():
    ckg = tiny_ckg()
    node, rel, w_r = embeddings(ckg)
    att = KGATAttention(4, (4, 4), dropout=0.5, graph=ckg)
    with pytest.raises(RuntimeError, match="update_attention"):
        att(node)
    att.update_attention(node, rel, w_r)
    att.eval()
    assert torch.equal(att(node), att(node))
    att.train()
    torch.manual_seed(0)
    assert not torch.equal(att(node), att(node))
    with pytest.raises(ValueError, match="combine='sum'"):
        KGATAttention(4, (4, 2), combine="sum")
    summed = KGATAttention(4, (4, 4), combine="sum", graph=ckg)
    summed.update_attention(node, rel, w_r)
    assert summed(node).shape == (ckg.n_nodes, 4) and summed.out_dim == 4


@pytest.mark.slow
def test_ml100k_collaborative_graph_with_genre_attributes(ml100k):
    from fusionrec.config import KnowledgeConfig
    from fusionrec.knowledge.kg import build_item_graph

    kg = build_item_graph(ml100k, KnowledgeConfig(attributes=["class"]))
    freebase = ml100k.kg.item_entity >= 0
    # Freebase links are kept (same entity index); the genre graph links the remaining items
    assert torch.equal(kg.item_entity[freebase], ml100k.kg.item_entity[freebase])
    assert kg.n_linked_items == ml100k.n_items
    ckg = collaborative_graph(ml100k.interactions.to_csr(), kg)
    assert ckg.user_offset == kg.n_entities and ckg.n_nodes == kg.n_entities + ml100k.n_users
    assert ckg.n_edges == len(kg.triples) + 2 * ml100k.interactions.to_csr().nnz
    node, rel, w_r = (torch.randn(ckg.n_nodes, 16), torch.randn(ckg.n_relations, 8),
                      torch.randn(ckg.n_relations, 8, 16) * 0.1)
    att = KGATAttention(16, (16, 8), graph=ckg)
    adj = att.update_attention(node, rel, w_r)
    row_sums = torch.zeros(ckg.n_nodes).index_add_(0, torch.arange(ckg.n_nodes).repeat_interleave(
        adj.crow_indices().diff()), adj.values())
    has_out = torch.bincount(ckg.heads, minlength=ckg.n_nodes) > 0
    assert torch.allclose(row_sums[has_out], torch.ones(int(has_out.sum())), atol=1e-5)
    assert att(node).shape == (ckg.n_nodes, 16 + 16 + 8)
