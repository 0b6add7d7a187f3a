"""Stand-in for the ``torch_scatter`` functions RecBole 1.2.1 imports (KGIN, MCCLK: ``scatter_mean``).

torch-scatter is an undeclared RecBole dependency published on PyPI only as a source build; these use torch's
``index_add_``. run_model.py puts the parent folder on ``sys.path``. Only a 1-D ``index`` along ``dim`` is supported.
"""

from __future__ import annotations

import torch


def _check_index(index: torch.Tensor) -> None:
    if index.dim() != 1:
        raise ValueError(f"torch_scatter shim: index must be 1-D, got shape {tuple(index.shape)}")


def scatter_sum(src, index, dim=-1, out=None, dim_size=None):
    """Sums slices of ``src`` along ``dim`` into ``dim_size`` buckets given by ``index`` (shape ``(src.shape[dim],)``)."""
    _check_index(index)
    dim = dim % src.dim()
    size = dim_size if dim_size is not None else int(index.max()) + 1
    shape = list(src.shape)
    shape[dim] = size
    total = src.new_zeros(shape).index_add_(dim, index, src)
    if out is None:
        return total
    return out.add_(total)


scatter_add = scatter_sum


def scatter_mean(src, index, dim=-1, out=None, dim_size=None):
    """Mean of the slices of ``src`` per bucket; empty buckets are 0."""
    _check_index(index)
    dim = dim % src.dim()
    total = scatter_sum(src, index, dim, None, dim_size)
    count = src.new_zeros(total.shape[dim]).index_add_(0, index, src.new_ones(index.shape[0]))
    view = [1] * src.dim()
    view[dim] = -1
    mean = total / count.clamp(min=1).view(view)
    if out is None:
        return mean
    return out.copy_(mean)
