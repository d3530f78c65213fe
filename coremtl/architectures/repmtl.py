r"""Rep-MTL: representation-level task saliency regularisation (Wang, Li & Xu, "Rep-MTL: Unleashing
the Power of Representation-level Task Saliency for Multi-Task Learning", ICCV 2025).

Rep-MTL changes neither the architecture (use :class:`SharedBottom`) nor the optimiser: it adds two
regularisers computed from the task saliencies on the shared representation ``Z``,

    S_t = dL_t / dZ          (same shape as Z; differentiated with ``create_graph=True``).

As implemented here (``RepMTLRegularizer``), for ``Z`` of shape ``(B, C, H, W)`` (vectors ``(B, D)``
are treated as ``C = D`` channels at one position):

- Task-specific Saliency Regulation (TSR), an entropy penalty on how the saliency of each element
  is shared among the ``T`` tasks. With the channel-aggregated saliency
  ``s_t(b, i) = sum_c |S_t(b, c, i)|`` at position ``i`` (for vectors, ``s_t(b, i) = |S_t(b, i)|``
  per feature) and ``p_t(b, i) = s_t(b, i) / sum_k s_k(b, i)``,

      L_TSR = mean_{b, i} [ - sum_t p_t(b, i) log p_t(b, i) ] / log T,

  in ``[0, 1]``; zero when every element is salient for a single task (task-specific signals kept
  apart), one when all tasks are equally salient everywhere.
- Cross-task Saliency Alignment (CSA), a sample-wise contrastive alignment of the tasks'
  saliencies. With ``v_t(b)`` the L2-normalised spatially pooled saliency ``mean_i |S_t(b, :, i)|``
  (a vector over channels), for every ordered pair of tasks ``t != k`` and temperature ``tau``,

      L_CSA = mean_{t != k} mean_b [ - log softmax_{b'}( <v_t(b), v_k(b')> / tau )_{b' = b} ],

  an InfoNCE loss whose positive pair is the same sample seen by two tasks and whose negatives
  are the other samples of the batch; it equals ``log B`` when the saliencies do not depend on
  the sample.

The total is ``w_TSR L_TSR + w_CSA L_CSA``. The paper's equations were not retrievable while
writing this module (no public code either): the two components, their roles (entropy-based
penalisation of the task saliencies, sample-wise cross-task alignment) and the saliency as the
gradient of each task loss with respect to the shared representation follow the paper's abstract
and overview; the exact normalisations above (channel aggregation for TSR, spatial pooling and an
InfoNCE form for CSA, the ``1/log T`` scaling) are our choices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coremtl.forward import Forward
from coremtl.objective import TaskLossesFn
from scm.validation import InvalidParameterError


def task_saliencies(task_losses: Mapping[str, Tensor], shared: Tensor) -> Tensor:
    """``|dL_t / dZ|`` stacked over tasks: ``(T, B, C, positions)``, differentiable."""
    saliencies = []
    for loss in task_losses.values():
        (gradient,) = torch.autograd.grad(loss, shared, create_graph=True, allow_unused=True)
        saliencies.append(torch.zeros_like(shared) if gradient is None else gradient)
    stacked = torch.stack(saliencies).abs()
    return stacked.flatten(3) if shared.ndim > 2 else stacked.unsqueeze(-1)


def task_specific_saliency_entropy(saliencies: Tensor) -> Tensor:
    """``L_TSR``: the normalised entropy over tasks of each element's share of saliency."""
    num_tasks = saliencies.shape[0]
    if num_tasks < 2:
        return saliencies.new_zeros(())
    aggregated = saliencies.sum(dim=2) if saliencies.shape[-1] > 1 else saliencies.squeeze(-1)
    total = aggregated.sum(dim=0, keepdim=True)
    shares = aggregated / total.clamp_min(torch.finfo(aggregated.dtype).tiny)
    entropy = -(torch.xlogy(shares, shares)).sum(dim=0)
    return entropy.mean() / math.log(num_tasks)


def cross_task_saliency_alignment(saliencies: Tensor, temperature: float) -> Tensor:
    """``L_CSA``: InfoNCE between the pooled saliencies of the same sample under two tasks."""
    num_tasks, batch = saliencies.shape[:2]
    if num_tasks < 2 or batch < 2:
        return saliencies.new_zeros(())
    vectors = F.normalize(saliencies.mean(dim=-1), dim=-1)
    targets = torch.arange(batch, device=saliencies.device)
    losses = [
        F.cross_entropy(vectors[t] @ vectors[k].T / temperature, targets)
        for t in range(num_tasks)
        for k in range(num_tasks)
        if t != k
    ]
    return torch.stack(losses).mean()


class RepMTLRegularizer:
    """The Rep-MTL terms, with the trainer's objective interface ``terms(...) -> dict``."""

    def __init__(
        self, tsr_weight: float = 1.0, csa_weight: float = 0.1, temperature: float = 0.5
    ) -> None:
        for value, name in ((tsr_weight, "tsr_weight"), (csa_weight, "csa_weight")):
            if not value >= 0.0:
                raise InvalidParameterError(f"{name}: expected a non-negative number, got {value}")
        if not temperature > 0.0:
            raise InvalidParameterError(
                f"temperature: expected a positive number, got {temperature}"
            )
        self.tsr_weight = float(tsr_weight)
        self.csa_weight = float(csa_weight)
        self.temperature = float(temperature)

    def terms(
        self,
        model: nn.Module,
        batch: Mapping[str, Tensor],
        forward: Forward,
        step: int,
        task_losses_fn: TaskLossesFn | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        if task_losses_fn is None:
            raise InvalidParameterError("task_losses_fn: Rep-MTL needs the task losses")
        saliencies = task_saliencies(task_losses_fn(forward.predictions, batch), forward.shared)
        terms: dict[str, Tensor] = {}
        if self.tsr_weight > 0:
            terms["repmtl_tsr"] = self.tsr_weight * task_specific_saliency_entropy(saliencies)
        if self.csa_weight > 0:
            terms["repmtl_csa"] = self.csa_weight * cross_task_saliency_alignment(
                saliencies, self.temperature
            )
        return terms

    def regularizer(
        self, model: nn.Module, batch: Mapping[str, Tensor], forward: Forward, task_losses_fn
    ) -> Tensor:
        """The weighted sum of :meth:`terms`, to pass to a balancer as ``extra_loss``."""
        terms = self.terms(model, batch, forward, 0, task_losses_fn)
        return torch.stack(list(terms.values())).sum() if terms else forward.shared.new_zeros(())
