"""Data-parallel training across processes launched by ``torchrun`` (NCCL on GPUs, gloo on CPU).

The trainer keeps one model per process and synchronises it by hand rather than through
:class:`torch.nn.parallel.DistributedDataParallel`, because gradient aggregators (PCGrad, MGDA, ...)
run several backward passes per step and DDP's reducer expects exactly one:

- at the start of a run, rank 0's parameters and buffers are broadcast to every rank;
- after the balancer's backward, the gradients are all-reduced and divided by the world size, so
  every rank takes the step of the mean of the per-rank objectives (as DDP does);
- batch-norm running statistics stay per rank; rank 0's are the ones evaluated and saved.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


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


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not is_distributed() or world_size() == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """All-reduce every gradient, divided by the world size, in one flattened bucket."""
    if not is_distributed() or world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
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
