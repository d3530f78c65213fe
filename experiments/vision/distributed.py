"""Data-parallel training across processes launched by ``torchrun`` (NCCL on GPUs, gloo on CPU).

The model is wrapped in :class:`torch.nn.parallel.DistributedDataParallel`, which broadcasts the
parameters of rank 0 at construction and its buffers (batch-norm statistics) at every forward. The
gradient synchronisation is done here, after the balancer's backward, by one all-reduce of the
gradients averaged over ranks, because gradient aggregators (PCGrad, MGDA, ...) run several backward
passes per step and DDP's reducer expects exactly one; the forward runs under ``no_sync`` for that
reason. Metrics are computed on rank 0 alone over the whole split (no cross-rank metric sync).
The averaged gradient is the gradient of the mean of the per-rank objectives, as with DDP.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_environment(device: str) -> bool:
    """Join the process group described by torchrun's variables; False when not launched so."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    if not is_distributed():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return True


def local_device(device: str) -> str:
    """``cuda:<LOCAL_RANK>`` for a CUDA run under torchrun, else ``device`` unchanged."""
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=True)


def no_sync(model: nn.Module):
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def average_gradients(model: nn.Module) -> None:
    """All-reduce every gradient, divided by the world size, in one flattened bucket."""
    if not is_distributed() or world_size() == 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for grad in grads:
        count = grad.numel()
        grad.copy_(flat[offset : offset + count].view_as(grad))
        offset += count


def barrier() -> None:
    if is_distributed():
        dist.barrier()
