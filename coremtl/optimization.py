"""The optimiser and learning-rate schedule of a run.

AdamW (decoupled weight decay, Loshchilov & Hutter 2019) over the model's parameters, with biases
and normalisation scales optionally exempt from decay, and a balancer's learnable parameters never
decayed. The rate of step ``t`` after ``W`` warm-up steps of ``T`` is

    eta_t = eta (t + 1) / (W + 1)                                      for t < W   (linear warm-up)
    eta_t = eta (1 + cos(pi (t - W) / (T - W))) / 2                    for t >= W  (cosine, SGDR)

or ``eta`` after the warm-up with the constant schedule (Loshchilov & Hutter 2017 for the cosine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from coremtl.trainer_config import OptimizationConfig


def parameter_groups(
    parameters: Sequence[nn.Parameter],
    weight_decay: float,
    decay_vectors: bool,
    balancer_parameters: Sequence[nn.Parameter] = (),
) -> list[dict[str, Any]]:
    """AdamW parameter groups: all ``parameters`` decayed, or (``decay_vectors=False``) those with
    at most one dimension exempt; ``balancer_parameters`` in an undecayed group of their own."""
    parameters = list(parameters)
    if decay_vectors:
        groups = [{"params": parameters, "weight_decay": weight_decay}]
    else:
        groups = [
            {"params": [p for p in parameters if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0},
        ]
    if balancer_parameters:
        groups.append({"params": list(balancer_parameters), "weight_decay": 0.0})
    return groups


def learning_rate_schedule(
    optimizer: torch.optim.Optimizer, schedule: str, warmup_steps: int, total_steps: int
) -> LRScheduler:
    """Linear warm-up over ``warmup_steps`` (at most ``total_steps - 1``), then ``schedule``:
    ``'cosine'`` annealing to zero at ``total_steps`` or ``'constant'``."""
    warmup = min(warmup_steps, max(total_steps - 1, 0))
    if schedule == "cosine":
        after = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(total_steps - warmup, 1)
        )
    else:
        after = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return after
    linear = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, after], milestones=[warmup])


def build_optimizer(
    config: OptimizationConfig,
    parameters: Sequence[nn.Parameter],
    balancer_parameters: Sequence[nn.Parameter],
    total_steps: int,
) -> tuple[torch.optim.AdamW, LRScheduler]:
    """AdamW over :func:`parameter_groups` and its :func:`learning_rate_schedule`."""
    groups = parameter_groups(
        parameters, config.weight_decay, config.weight_decay_on_vectors, balancer_parameters
    )
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    schedule = learning_rate_schedule(
        optimizer, config.lr_schedule, config.warmup_steps, total_steps
    )
    return optimizer, schedule
