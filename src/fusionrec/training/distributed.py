"""Data-parallel training on several processes (``torchrun --nproc_per_node=N -m fusionrec train ...``): every rank
holds the whole model, trains on its share of each batch and averages the gradients with the others after each
backward pass, so every rank takes the same optimiser step and the weights stay identical (what PyTorch's
DistributedDataParallel does). The gradients are averaged by hand rather than by the DDP wrapper because a model's
training step is not always its ``forward`` (``forward_catalogue``, ``forward_ratings``, ``kg_terms``), and the DDP
wrapper synchronises only what runs through ``forward``.

The process group comes from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``):
gloo on CPUs, nccl where CUDA devices exist. Rank 0 alone writes checkpoints, results and the artifact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def leader(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    """This process's rank and the world size (0 and 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


_STARTED_HERE = []  # the process group this module created (and so may end)


def start_from_env() -> Ranks:
    """Joins the process group torchrun describes in the environment; a group someone else set up (Ray Train's
    TorchTrainer) is used as it is; a single process does nothing."""
    if not dist.is_available():
        return Ranks()
    if dist.is_initialized():
        return ranks()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    _STARTED_HERE.append(True)
    return ranks()


def stop() -> None:
    """Ends the process group :func:`start_from_env` created (one set up by the caller stays)."""
    if _STARTED_HERE and dist.is_initialized():
        dist.destroy_process_group()
        _STARTED_HERE.clear()


def share_weights(model: torch.nn.Module) -> None:
    """Every rank starts from rank 0's parameters and buffers."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.numel():
                dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.Tensor], world: int) -> None:
    """Each parameter's gradient becomes the mean over the ranks (a parameter without a gradient on every rank keeps
    None); two collectives a step: which parameters have gradients, then one flat buffer of them."""
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    dist.all_reduce(has)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p, h in zip(params, has) if h > 0]) if (has > 0).any() else None
    if flat is None:
        return
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, h in zip(params, has):
        if h > 0:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (a stop decision all ranks must share)."""
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def this_ranks_part(batch_indices: torch.Tensor, rank: Ranks) -> torch.Tensor:
    """Rank r's part of one global batch's rows: every world-th row from the r-th (the first row when the batch has
    fewer rows than ranks, so every rank takes the same number of steps)."""
    part = batch_indices[rank.rank::rank.world]
    return part if len(part) else batch_indices[:1]
