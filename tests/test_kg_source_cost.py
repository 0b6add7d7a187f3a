"""The KG source at a lookup's price keeps its maths: :class:`RowMix` (gather-and-sum forward, transposed sparse
backward) gives the values and the gradient of the plain product ``W @ E``. (That the KG source still carries the
planted signal is tests/test_fusionrec_sources.py, KG-only, against the untrained control.)"""

from __future__ import annotations

import pytest
import torch

from fusionrec.knowledge.kg.aggregate import RowMix

pytestmark = pytest.mark.usefixtures("one_thread")


def test_row_mix_matches_the_sparse_product_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    rows = torch.tensor([0, 0, 2, 2, 2, 3, 0])  # row 1 empty; (0, 4) repeated: summed
    cols = torch.tensor([4, 1, 0, 4, 5, 5, 4])
    vals = torch.rand(7, generator=g)
    dense = torch.zeros(4, 6).index_put_((rows, cols), vals, accumulate=True)
    table = torch.randn(6, 3, generator=g, requires_grad=True)
    out = RowMix(torch.stack([rows, cols]), vals, (4, 6))(table)
    weight = torch.randn(4, 3, generator=g)
    (out * weight).sum().backward()
    torch.testing.assert_close(out.detach(), dense @ table.detach())
    torch.testing.assert_close(table.grad, dense.T @ weight)
    assert out[1].abs().sum() == 0

