"""Data-parallel training across processes launched by ``torchrun`` (NCCL on GPUs, gloo on CPU).

The trainer keeps one model per process and synchronises it by hand rather than through
:class:`torch.nn.parallel.DistributedDataParallel`, because gradient aggregators (PCGrad, MGDA, ...)
run several backward passes per step and DDP's reducer expects exactly one:

- at the start of a run, rank 0's parameters and buffers are broadcast to every rank;
- after the balancer's backward, the gradients are all-reduced and divided by the world size, so
  every rank takes the step of the mean of the per-rank objectives (as DDP does); what the balancer
  itself sees, global or per-rank quantities, is :mod:`coremtl.distributed_balancing`'s choice;
- batch-norm running statistics stay per rank; rank 0's are the ones evaluated, and a checkpoint
  keeps every rank's (with its random-number-generator states, :func:`gather_to_main`).

Every tensor handed to a collective here is counted in :func:`communicated_bytes` (the payload per
process: a ring all-reduce moves about twice that over each link), which ``coremtl bench ddp``
reports. A worker started by torchrun exits when its agent dies (:func:`exit_when_parent_dies`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

_communicated_bytes = 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def init_from_environment(device: str) -> bool:
    """Join the process group described by torchrun's variables; False when not launched so.

    A CUDA process takes the device ``cuda:<LOCAL_RANK>`` as its current device (the object
    collectives of NCCL run there), and a worker started by torchrun (``TORCHELASTIC_RUN_ID`` set)
    exits when its agent dies (:func:`exit_when_parent_dies`)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    if not is_distributed():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(local_device(device))
        dist.init_process_group(backend=backend)
        if "TORCHELASTIC_RUN_ID" in os.environ:
            exit_when_parent_dies()
    return True


def local_device(device: str) -> str:
    """``cuda:<LOCAL_RANK>`` for a CUDA run under torchrun, else ``device`` unchanged."""
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def communicated_bytes() -> int:
    """Bytes of tensor payload this process has handed to collectives since it started."""
    return _communicated_bytes


def _count(tensor: Tensor) -> None:
    global _communicated_bytes
    _communicated_bytes += tensor.numel() * tensor.element_size()


def _on_backend_device(tensor: Tensor) -> Tensor:
    """``tensor`` itself, or a CUDA copy of a CPU tensor for NCCL (which reduces GPU memory)."""
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        return tensor.to(torch.device("cuda", torch.cuda.current_device()))
    return tensor


def broadcast_(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s, in place."""
    if is_distributed() and world_size() > 1:
        _count(tensor)
        moved = _on_backend_device(tensor)
        dist.broadcast(moved, src=src)
        if moved is not tensor:
            tensor.copy_(moved)
    return tensor


def all_reduce_mean_(tensor: Tensor) -> Tensor:
    """Replace ``tensor`` on every rank by its mean over the ranks, in place."""
    if is_distributed() and world_size() > 1:
        _count(tensor)
        moved = _on_backend_device(tensor)
        dist.all_reduce(moved)
        if moved is tensor:
            tensor /= world_size()
        else:
            tensor.copy_(moved / world_size())
    return tensor


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not is_distributed() or world_size() == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            broadcast_(tensor.data, src=0)


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """All-reduce every gradient, divided by the world size, in one flattened bucket."""
    if not is_distributed() or world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = all_reduce_mean_(torch.cat([g.reshape(-1) for g in grads]))
    offset = 0
    for grad in grads:
        count = grad.numel()
        grad.copy_(flat[offset : offset + count].view_as(grad))
        offset += count


def gather_to_main(value: Any) -> list[Any] | None:
    """Every rank's ``value`` (picklable: tensors, numbers, lists, dicts), in rank order, on rank
    0; ``None`` on the other ranks. Outside a process group: ``[value]``."""
    if not is_distributed() or world_size() == 1:
        return [value]
    gathered: list[Any] | None = [None] * world_size() if is_main_process() else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def exit_when_parent_dies(poll_seconds: float = 1.0) -> threading.Thread:
    """Start a daemon thread that ends this process when its parent (the torchrun agent) dies.

    The thread polls ``os.getppid()`` every ``poll_seconds``; when the parent is gone the process
    is re-parented (to init or a subreaper), the id changes, and the thread calls
    ``os._exit(1)``, so an orphaned worker stops writing to the run folder within about a second.
    Checkpoints are written atomically, so an exit during a save leaves the previous ``last.pt``.
    Polling was chosen over ``prctl(PR_SET_PDEATHSIG)``, which is Linux-only and fires when the
    parent *thread* that forked the worker ends rather than the agent process.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                print(
                    f"worker {os.getpid()}: its torchrun agent {parent} died; exiting",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(1)

    thread = threading.Thread(target=watch, name="exit-when-parent-dies", daemon=True)
    thread.start()
    return thread
