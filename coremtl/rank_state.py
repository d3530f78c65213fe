"""What differs between the processes of a data-parallel run, kept in its checkpoint.

Every rank holds the same parameters and optimiser state, but its own random-number generators
(dropout masks, the evaluation loaders that only rank 0 runs), CFA generator, buffers (batch-norm
running statistics, which frozen-batch-norm passes read in training) and, with
``distributed_balancing='local'``, balancer state. :class:`coremtl.trainer.Trainer` gathers each
rank's :func:`rank_state` to rank 0 into the checkpoint's ``ranks`` list; on resume with as many
processes each rank restores its own entry (:func:`load_rank_state`), so a killed run resumes
exactly. Everything is moved to the CPU and stored as tensors, numbers and lists, which the
``weights_only`` loader accepts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from coremtl import distributed
from coremtl.balancers.base import Balancer
from coremtl.checkpoint import rng_state, set_rng_state


def _on_cpu(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_on_cpu(item) for item in value)
    return value


def rank_state(model: nn.Module, balancer: Balancer, cfa_generator: torch.Generator) -> dict:
    """This process's RNG states, CFA generator state, balancer state and buffers."""
    return {
        "rng": rng_state(),
        "cfa_generator": cfa_generator.get_state(),
        "balancer": _on_cpu(balancer.state_dict()),
        "buffers": {name: _on_cpu(buffer) for name, buffer in model.named_buffers()},
    }


def load_rank_state(
    ranks: Sequence[Mapping[str, Any]] | None,
    model: nn.Module,
    balancer: Balancer,
    cfa_generator: torch.Generator,
) -> None:
    """Restore this rank's entry of ``ranks``. A checkpoint of another number of processes (or
    of one process, ``ranks=None``, resumed by several) leaves every rank with rank 0's states,
    which is warned about: the resume is then not exact."""
    world = distributed.world_size()
    if ranks is None or len(ranks) != world:
        if world > 1 or ranks is not None:
            saved = 1 if ranks is None else len(ranks)
            warnings.warn(
                f"resume: the checkpoint holds the states of {saved} process(es), this run has "
                f"{world}; continuing from rank 0's states, which is not an exact resume",
                stacklevel=2,
            )
        return
    own = ranks[distributed.rank()]
    set_rng_state(own["rng"])
    cfa_generator.set_state(own["cfa_generator"])
    balancer.load_state_dict(own["balancer"])
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in own["buffers"].items():
            buffers[name].copy_(value)
