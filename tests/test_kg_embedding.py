"""TransE / TransR scores and losses, corrupted-tail sampling and triple batches."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fusionrec.errors import DataError
from fusionrec.knowledge.kg import (TransE, TransR, TripleIndex, corrupt_tails, negative_batches, triple_batches,
                                    unique_triples)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only adds contention


def planted_graph() -> tuple[torch.Tensor, int]:
    """40 items; item i -in_genre-> genre i % 4, -directed_by-> director i % 8 (a director makes one genre),
    -has_tag-> a random tag of 6. Returns (triples (120, 3), n_entities)."""
    g = torch.Generator().manual_seed(0)
    n_items, n_genres, n_directors, n_tags = 40, 4, 8, 6
    items = torch.arange(n_items)
    genre = n_items + items % n_genres
    director = n_items + n_genres + items % n_directors
    tag = n_items + n_genres + n_directors + torch.randint(n_tags, (n_items,), generator=g)
    rel = (lambda k: torch.full((n_items,), k))
    triples = torch.cat([torch.stack([items, rel(0), genre], 1), torch.stack([items, rel(1), director], 1),
                         torch.stack([items, rel(2), tag], 1)])
    return triples, n_items + n_genres + n_directors + n_tags


def ranking_accuracy(model: nn.Module, triples: torch.Tensor, n_entities: int) -> float:
    """Share of (true triple, corrupted triple) pairs, 20 filtered corruptions per triple, where the true tail
    scores higher."""
    known = TripleIndex(triples, n_entities)
    neg = corrupt_tails(triples, n_entities, torch.Generator().manual_seed(5), n_neg=20, filtered=True, known=known)
    with torch.no_grad():
        pos = model.score(triples[:, 0], triples[:, 1], triples[:, 2])
        negs = model.score(triples[:, :1], triples[:, 1:2], neg)
    return (pos[:, None] > negs).float().mean().item()


@pytest.mark.parametrize("make", [
    lambda n: TransE(n, 3, 16, p_norm=2, margin=1.0),
    lambda n: TransE(n, 3, 16, p_norm=1, margin=0.0),
    lambda n: TransR(n, 3, 16, 8, margin=1.0),
    lambda n: TransR(n, 3, 16, 8, margin=0.0),  # KGAT's -log sigmoid loss
], ids=["transe-l2", "transe-l1-bpr", "transr", "transr-bpr"])
def test_learns_planted_graph(make):
    triples, n = planted_graph()
    torch.manual_seed(0)
    model = make(n)
    assert ranking_accuracy(model, triples, n) < 0.7  # untrained: about chance
    known = TripleIndex(triples, n)
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        for h, r, t, t_neg in negative_batches(triples, n, 128, g, n_neg=4, filtered=True, known=known):
            opt.zero_grad()
            model.loss(h, r, t, t_neg).backward()
            opt.step()
    assert ranking_accuracy(model, triples, n) > 0.9


def test_transe_score_and_loss_by_hand():
    model = TransE(3, 1, 2, p_norm=2, margin=1.0)
    with torch.no_grad():
        model.entity_embedding.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0], [4.0, 5.0]]))
        model.relation_embedding.weight.copy_(torch.tensor([[0.0, 1.0]]))
    h, r, t, t_neg = torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), torch.tensor([2])
    assert model.score(h, r, t).tolist() == [0.0]
    assert model.score(h, r, t_neg).item() == pytest.approx(-5.0)  # ||(1,1) - (4,5)|| = 5
    assert model.loss(h, r, t, t_neg).item() == pytest.approx(math.log1p(math.exp(1.0 - 5.0 - 0.0)))
    model.p_norm = 1.0
    assert model.score(h, r, t_neg).item() == pytest.approx(-7.0)
    # (||e_h||^2 + ||e_r||^2 + ||e_t||^2 + ||e_t'||^2) / 2 = (1 + 1 + 2 + 41) / 2
    assert model.regularization(h, r, t, t_neg).item() == pytest.approx(22.5)


def test_transr_score_by_hand():
    model = TransR(2, 1, ent_dim=2, rel_dim=2, margin=0.0)
    with torch.no_grad():
        model.entity_embedding.weight.copy_(torch.tensor([[1.0, 3.0], [0.0, 5.0]]))
        model.relation_embedding.weight.copy_(torch.tensor([[-2.0, 1.0]]))
        model.projection.copy_(torch.tensor([[[2.0, 0.0], [0.0, 0.0]]]))
    # M_r (h - t) + r = (2, 0) + (-2, 1) = (0, 1): score -1; the tail projects onto itself: -||r||^2 = -5
    assert model.score(torch.tensor([0]), torch.tensor([0]), torch.tensor([1])).item() == pytest.approx(-1.0)
    assert model.score(torch.tensor([1]), torch.tensor([0]), torch.tensor([1])).item() == pytest.approx(-5.0)
    # margin 0: -log sigmoid(score(pos) - score(neg)) = softplus(-5 - (-1))
    loss = model.loss(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), torch.tensor([[0]]))
    assert loss.item() == pytest.approx(math.log1p(math.exp(-5.0 + 1.0)))


def test_scores_broadcast_over_many_negatives():
    model = TransR(10, 2, 4, 3)
    h, r = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 0])
    neg = torch.tensor([[3, 4], [5, 6], [7, 8]])
    many = model.score(h[:, None], r[:, None], neg)
    assert many.shape == (3, 2)
    assert torch.allclose(many[:, 1], model.score(h, r, neg[:, 1]))


def test_transr_fused_loss_and_regularization_equal_the_separate_ones():
    torch.manual_seed(0)
    h, r, t = torch.randint(30, (64,)), torch.randint(4, (64,)), torch.randint(30, (64,))
    neg = torch.randint(30, (64, 3))
    grads = []
    for fused in (False, True):
        torch.manual_seed(1)
        model = TransR(30, 4, ent_dim=6, rel_dim=5, margin=0.5)
        if fused:
            loss, reg = model.loss_and_regularization(h, r, t, neg)
        else:
            loss, reg = model.loss(h, r, t, neg), model.regularization(h, r, t, neg)
        (loss + 0.3 * reg).backward()
        grads.append((loss.detach(), reg.detach(),
                      [p.grad.clone() for p in (model.entity_embedding.weight, model.relation_embedding.weight,
                                                model.projection)]))
    (loss_a, reg_a, g_a), (loss_b, reg_b, g_b) = grads
    assert torch.allclose(loss_a, loss_b, atol=1e-5) and torch.allclose(reg_a, reg_b, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_a, g_b))
    assert g_a[0].abs().sum() > 0  # the comparison is of real gradients


def test_shared_entity_table_is_trained_through_the_loss():
    table = nn.Embedding(12, 4)  # e.g. 10 entities + 2 user nodes of a recommendation model
    model = TransE(10, 2, 4, entity_embedding=table)
    assert model.entity_embedding.weight is table.weight
    model.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([3])).backward()
    assert table.weight.grad is not None and table.weight.grad[[0, 2, 3]].abs().sum() > 0
    with pytest.raises(ValueError, match="at least 10 rows of size 8"):
        TransR(10, 2, 8, 4, entity_embedding=table)


def test_filtered_corruption_never_returns_a_true_triple():
    # head 0 / relation 0 reaches 28 of 30 entities, so nearly every draw collides and needs the fallback
    dense = torch.stack([torch.zeros(28, dtype=torch.long), torch.zeros(28, dtype=torch.long), torch.arange(28)], 1)
    sparse = torch.tensor([[1, 1, 2], [3, 0, 4], [5, 1, 6]])
    graph = torch.cat([dense, sparse])
    known = TripleIndex(graph, 30)
    g = torch.Generator().manual_seed(0)
    neg = corrupt_tails(graph, 30, g, n_neg=8, filtered=True, known=known)
    assert neg.shape == (31, 8)
    assert not known.contains(graph[:, :1], graph[:, 1:2], neg).any()
    assert set(neg[:28].flatten().tolist()) == {28, 29}
    # without filtering the same draws hit true triples
    raw = corrupt_tails(graph, 30, torch.Generator().manual_seed(0), n_neg=8)
    assert known.contains(graph[:, :1], graph[:, 1:2], raw).any()


def test_corruption_impossible_when_every_tail_is_true():
    full = torch.stack([torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long), torch.arange(5)], 1)
    with pytest.raises(DataError, match="every entity"):
        corrupt_tails(full, 5, torch.Generator().manual_seed(0), filtered=True)


def test_triple_index_membership():
    idx = TripleIndex(torch.tensor([[0, 1, 2], [2, 0, 1]]), n_entities=3, n_relations=2)
    got = idx.contains(torch.tensor([0, 2, 0, 0, 7]), torch.tensor([1, 0, 0, 5, 1]), torch.tensor([2, 1, 2, 2, 2]))
    assert got.tolist() == [True, True, False, False, False]


def test_unique_triples_keeps_first_occurrences_in_order():
    t = torch.tensor([[2, 0, 1], [0, 0, 1], [2, 0, 1], [1, 1, 0], [0, 0, 1]])
    assert unique_triples(t, 3, 2).tolist() == [[2, 0, 1], [0, 0, 1], [1, 1, 0]]


def test_triple_batches_cover_every_triple_once():
    triples, n = planted_graph()
    batches = list(triple_batches(triples, 50, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [50, 50, 20]
    seen = torch.cat(batches)
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, triples.tolist()))
    assert not torch.equal(seen, triples)  # shuffled
    assert [len(b) for b in triple_batches(triples, 50, drop_last=True)] == [50, 50]
