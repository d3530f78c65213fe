r"""Gradient balancing under data parallelism: exact (the balancer sees the global batch) or local.

With ``R`` processes holding ``B / R`` samples each, the loss of task ``t`` on the global batch is
the mean of the per-rank losses, ``Lbar_t = (1/R) sum_r L_t^r`` (equal shares, mean reduction), and
so is each of its derivatives, e.g. the Jacobian of the shared parameters
``Jbar = (1/R) sum_r J^r``. Averaging per-rank results gives the global step only for a balancer
linear in what it reads (Equal Weighting); for the others ``(1/R) sum_r A(J^r) != A(Jbar)``
(PCGrad, MGDA, CAGrad, Nash-MTL, UPGrad, ...; GradNorm, DWA, FAMO, UW, ... through the losses).

``distributed_balancing = "exact"`` (the default of :class:`coremtl.trainer_config.TrainerConfig`)
all-reduces what the balancer reads and runs it once on the global quantities, identically on
every rank, so its state (GradNorm weights, DWA / FAMO / UW history, Nash-MTL's previous solution,
GradVac's targets) is equal on all ranks:

- Jacobian aggregators (:class:`~coremtl.balancers.aggregators.AggregatorBalancer`): a
  forward pre-hook on the torchjd aggregator replaces its input, the ``K x P`` Jacobian of the
  ``P`` shared parameters, by ``Jbar`` in place, so torchjd's own aggregator runs on it;
- loss weightings (:class:`~coremtl.balancers.scalarizers.ScalarizerBalancer`): each loss is
  replaced by :class:`GlobalValue` ``(L_t^r, Lbar_t)``, whose value is ``Lbar_t`` and whose gradient
  is the local one, so the weights ``dS/dL`` are those at the global losses and the averaged
  gradient is ``sum_t dS/dL_t(Lbar) grad Lbar_t``; FAMO's after-step losses are averaged likewise;
- GradNorm (:class:`~coremtl.balancers.gradnorm.GradNorm`): the losses as above, and a gradient
  hook on its layer ``W`` replaces every gradient of ``W`` it computes by the mean over ranks, so
  the norms ``||grad_W L_t||`` are those of the global batch.

Random numbers a balancer draws from the global torch generator (PCGrad's task order) are rank
0's: rank 0 draws as a single process would, the other ranks replay the draws from a copy of its
generator state, then go back to their own. RLW, GradDrop and GradVac draw from their own seeded
stream, equal on all ranks. A balancer of another class is refused in exact mode
(:func:`exact_refusal`), since what it reads is unknown.

``distributed_balancing = "local"`` is the named approximation that data-parallel MTL code
usually makes: each rank balances its own batch, and the resulting gradients are averaged (one
all-reduce of the parameter gradients, which exact mode makes too); balancer state is per rank.

Extra communication of exact mode per step: ``K P`` numbers (aggregators, plus the 5 kB generator
state), ``K`` (loss weightings) or ``K + (K + 1) |W|`` (GradNorm). Not covered, in either mode:
loss terms beside the task losses (CKA, counterfactual swaps, reconstruction) are per-rank batch
statistics whose gradients are averaged; a task loss that is not a plain mean over equally many
samples per rank (an ignore mask with different valid counts) makes ``Lbar_t`` a mean of per-rank
means; batch norm normalises with per-rank statistics.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor
from torch.nn import Parameter

from coremtl import distributed
from coremtl.balancers.aggregators import AggregatorBalancer
from coremtl.balancers.base import Balancer, SharedRepresentation, as_tensor_list
from coremtl.balancers.gradnorm import GradNorm, last_shared_layer
from coremtl.balancers.scalarizers import ScalarizerBalancer
from coremtl.trainer_config import DISTRIBUTED_BALANCING as BALANCING_MODES
from scm.validation import InvalidParameterError


def check_mode(mode: str) -> None:
    if mode not in BALANCING_MODES:
        raise InvalidParameterError(
            f"distributed_balancing: expected one of {BALANCING_MODES}, got {mode!r}"
        )


def exact_refusal(balancer: Balancer) -> str | None:
    """Why ``balancer`` cannot run in exact mode (one line), or ``None`` when it can."""
    if isinstance(balancer, AggregatorBalancer | ScalarizerBalancer | GradNorm):
        return None
    name = balancer.name or type(balancer).__name__
    return (
        f"distributed_balancing: 'exact' does not know which quantities balancer {name!r} reads "
        "(only the toolkit's aggregators, loss weightings and GradNorm); set it to 'local'"
    )


def check_supported(balancer: Balancer, mode: str) -> None:
    """Refuse, in one line, a mode that ``balancer`` cannot run in."""
    check_mode(mode)
    reason = exact_refusal(balancer) if mode == "exact" else None
    if reason is not None:
        raise InvalidParameterError(reason)


class GlobalValue(torch.autograd.Function):
    """``GlobalValue(local, value)``: the value ``value``, the gradient of ``local``."""

    @staticmethod
    def forward(ctx, local: Tensor, value: Tensor) -> Tensor:
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def global_losses(task_losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each ``L_t^r`` as :class:`GlobalValue` ``(L_t^r, Lbar_t)``, one all-reduce of ``K``
    numbers (the identity outside a process group)."""
    if distributed.world_size() == 1 or not task_losses:
        return dict(task_losses)
    names = list(task_losses)
    local = torch.stack([task_losses[name] for name in names])
    means = distributed.all_reduce_mean_(local.detach().clone())
    return {
        name: GlobalValue.apply(task_losses[name], mean)
        for name, mean in zip(names, means.unbind(), strict=True)
    }


@contextmanager
def _global_jacobian(balancer: AggregatorBalancer) -> Iterator[None]:
    """While active, the aggregator of ``balancer`` averages its Jacobian over ranks first."""

    def average(_module, inputs: tuple[Tensor, ...]) -> None:
        distributed.all_reduce_mean_(inputs[0])

    handle = balancer.method.register_forward_pre_hook(average)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def _global_layer_gradient(layer: Parameter) -> Iterator[None]:
    """While active, every gradient computed for ``layer`` is replaced by its mean over ranks."""
    handle = layer.register_hook(lambda gradient: distributed.all_reduce_mean_(gradient.clone()))
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def rank0_random_draws() -> Iterator[None]:
    """Draws from the global CPU generator inside the block are rank 0's on every rank."""
    state = distributed.broadcast_(torch.get_rng_state())
    if distributed.is_main_process():
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(state)
        yield


def _anchored(task_losses: Mapping[str, Tensor], shared: SharedRepresentation) -> dict:
    """A loss without a graph gets ``0 * sum(shared)`` added, so every rank differentiates every
    task (the collectives inside the hooks then match across ranks)."""
    anchor = 0.0 * as_tensor_list(shared)[0].sum()
    return {k: v if v.requires_grad else v + anchor for k, v in task_losses.items()}


def balanced_backward(
    balancer: Balancer,
    mode: str,
    task_losses: Mapping[str, Tensor],
    shared: SharedRepresentation,
    shared_params: Sequence[Parameter],
    extra_loss: Tensor | None = None,
) -> dict[str, float]:
    """``balancer.backward`` on the per-rank losses (``mode='local'`` or one process) or on the
    global quantities (``'exact'``, see the module docstring); returns the task weights."""
    if mode == "local" or distributed.world_size() == 1:
        return balancer.backward(task_losses, shared, shared_params, extra_loss)
    check_supported(balancer, mode)
    if isinstance(balancer, AggregatorBalancer):
        with _global_jacobian(balancer), rank0_random_draws():
            return balancer.backward(task_losses, shared, shared_params, extra_loss)
    losses = global_losses(task_losses)
    if isinstance(balancer, GradNorm):
        with _global_layer_gradient(last_shared_layer(shared_params)):
            anchored = _anchored(losses, shared)
            return balancer.backward(anchored, shared, shared_params, extra_loss)
    return balancer.backward(losses, shared, shared_params, extra_loss)


def after_step_losses(task_losses: Mapping[str, Tensor], mode: str) -> dict[str, Tensor]:
    """The losses recomputed after the step (FAMO), averaged over ranks in exact mode."""
    if mode == "local":
        return dict(task_losses)
    return {k: v.detach() for k, v in global_losses(task_losses).items()}
