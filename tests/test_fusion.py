"""Fusion strategies: swappable, and a missing source never leaks into the fused vector."""

import pytest
import torch

from fusionrec.fusion import fusion_names, make_fusion

N, S, D = 7, 3, 8


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    sources = torch.randn(N, S, D, generator=g)
    mask = torch.ones(N, S, dtype=torch.bool)
    mask[0, 2] = False  # item 0 has no KG source
    mask[1, 0] = False  # item 1 has no trained id embedding
    mask[2, 1:] = False  # item 2 has only its id
    return sources, mask


def test_all_strategies_are_registered():
    assert fusion_names() == ["attention", "concat", "gate"]


@pytest.mark.parametrize("name", ["concat", "gate", "attention"])
def test_shapes_and_gradients(name, inputs):
    sources, mask = inputs
    torch.manual_seed(0)
    fusion = make_fusion(name, S, D)
    sources = sources.clone().requires_grad_(True)
    out = fusion(sources, mask)
    assert out.vectors.shape == (N, D)
    out.vectors.sum().backward()
    assert sources.grad is not None and torch.isfinite(sources.grad).all()
    assert all(p.grad is not None for p in fusion.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["concat", "gate", "attention"])
def test_missing_source_does_not_change_the_result(name, inputs):
    """The bug this guards: a masked source zero-filled into an average, or its garbage values leaking through."""
    sources, mask = inputs
    torch.manual_seed(0)
    fusion = make_fusion(name, S, D).eval()
    before = fusion(sources, mask).vectors
    garbage = sources.clone()
    garbage[0, 2] = 1e3
    garbage[1, 0] = -1e3
    garbage[2, 1:] = 55.0
    after = fusion(garbage, mask).vectors
    assert torch.allclose(before, after)


@pytest.mark.parametrize("name", ["gate", "attention"])
def test_weights_cover_only_present_sources(name, inputs):
    sources, mask = inputs
    out = make_fusion(name, S, D)(sources, mask)
    assert out.weights.shape == (N, S)
    assert torch.allclose(out.weights.sum(dim=1), torch.ones(N))
    assert (out.weights[~mask] == 0).all()


def test_attention_with_one_source_returns_it(inputs):
    """An item with only one present source gets exactly that source, not a shrunken average."""
    sources, mask = inputs
    out = make_fusion("attention", S, D)(sources, mask)
    assert torch.allclose(out.vectors[2], sources[2, 0])


def test_attention_starts_as_mean_over_present(inputs):
    sources, mask = inputs
    out = make_fusion("attention", S, D)(sources, mask)
    expected = (sources * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(out.vectors, expected, atol=1e-6)


def test_unknown_fusion_lists_choices():
    with pytest.raises(KeyError, match="available: attention, concat, gate"):
        make_fusion("sum", S, D)
