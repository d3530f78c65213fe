"""Jacobian descent with a torchjd aggregator, and the aggregators that need nothing more.

With ``L = (L_1, ..., L_K)`` the task losses, ``h`` the shared representation and ``theta`` the
shared parameters, ``torchjd.autojac.mtl_backward`` stores the Jacobian
``J = dL/dtheta = (dL/dh)(dh/dtheta)`` (one row ``g_i`` per task) in ``theta.jac`` and the ordinary
gradients of each ``L_i`` in its task-specific parameters' ``.grad``; the aggregator ``A`` then
writes ``A(J)`` into ``theta.grad`` (``torchjd.autojac.jac_to_grad``). For weighted aggregators
``A(J) = J^T w`` and ``w`` is returned; for GradDrop and ConFIG, which are not a linear combination
with known weights, the returned number for task ``i`` is the coefficient of the projection of the
update on ``g_i``: ``<A(J), g_i> / ||g_i||^2`` (0 when ``g_i = 0``). torchjd's docstrings give
each aggregator's equations.

Before aggregating, ``J`` is checked: a row holding NaN or infinity stops the run with a
:class:`~scm.validation.NonFiniteError` naming the tasks (no aggregator can give a meaningful
update from it, and some of torchjd's solvers fail deep inside), and an all-zero ``J`` (no task
has a gradient on the shared parameters) gives a zero update with zero weights, without calling
the aggregator (Nash-MTL's solver cannot take it).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.nn import Parameter
from torchjd import aggregation
from torchjd.autojac import jac_to_grad, mtl_backward

from coremtl.balancers.base import SharedRepresentation, as_tensor_list, trainable
from coremtl.balancers.torchjd_method import TorchjdBalancer
from scm.validation import NonFiniteError


class AggregatorBalancer(TorchjdBalancer):
    """Jacobian descent on the shared parameters with the torchjd aggregator ``self.method``.

    A task loss without a graph (a constant, e.g. a batch with no valid target for that task)
    contributes an exactly zero Jacobian row. The task losses' graphs may share nodes after
    ``shared`` (stacked heads, one loss call for all tasks): each task is differentiated with the
    graph retained, and the graph is freed with the step's tensors.
    """

    needs_shared_parameters = True

    def backward(
        self,
        task_losses: Mapping[str, Tensor],
        shared: SharedRepresentation,
        shared_params: Sequence[Parameter],
        extra_loss: Tensor | None = None,
    ) -> dict[str, float]:
        features = as_tensor_list(shared)
        anchor = 0.0 * features[0].sum()
        losses = [
            loss if loss.requires_grad else loss + anchor
            for loss in self.ordered_losses(task_losses)
        ]
        params = trainable(shared_params)
        if extra_loss is not None:
            extra_loss.backward(retain_graph=True)
        with self.random_context(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not DPP", category=UserWarning)
            mtl_backward(losses, features=features, shared_params=params, retain_graph=True)
            if not self._jacobian_is_usable(params):
                return self.weights_dict(torch.zeros(self.num_tasks))
            if isinstance(self.method, aggregation.WeightedAggregator):
                weights = jac_to_grad(params, self.method)
            else:
                weights = aggregate_unweighted(params, self.method)
        return self.weights_dict(weights)

    def _jacobian_is_usable(self, params: list[Parameter]) -> bool:
        """False when ``J`` is all zero (its ``.jac`` fields are then freed); raises when a row
        holds NaN or infinity (module docstring). One host synchronisation."""
        rows = [p.jac.reshape(self.num_tasks, -1) for p in params]
        finite = torch.stack([row.isfinite().all(dim=1) for row in rows]).all(dim=0)
        nonzero = torch.stack([row.ne(0).any() for row in rows]).any()
        flags = torch.cat([finite, nonzero[None]]).tolist()
        if all(flags):
            return True
        for p in params:
            del p.jac
        bad = [name for name, ok in zip(self.task_names, flags, strict=False) if not ok]
        if bad:
            raise NonFiniteError(
                f"balancer {self.name!r}: the gradient of task(s) {bad} on the shared parameters "
                "holds NaN or infinity"
            )
        return False


def aggregate_unweighted(params: list[Parameter], aggregator: aggregation.Aggregator) -> Tensor:
    """Accumulate ``A(J)`` into ``.grad`` and return ``<A(J), g_i> / ||g_i||^2`` per task."""
    jacobian = torch.cat([p.jac.reshape(p.jac.shape[0], -1) for p in params], dim=1)
    for p in params:
        del p.jac
    update = aggregator(jacobian)
    for p, piece in zip(params, update.split([p.numel() for p in params]), strict=True):
        piece = piece.reshape(p.shape).to(p.dtype)
        p.grad = piece if p.grad is None else p.grad + piece
    squared_norms = (jacobian * jacobian).sum(dim=1)
    projections = jacobian @ update
    return torch.where(squared_norms > 0, projections / squared_norms.clamp_min(1e-30), 0.0)


class PCGrad(AggregatorBalancer):
    """Projecting conflicting gradients (Yu et al., "Gradient Surgery for Multi-Task Learning",
    NeurIPS 2020): ``torchjd.aggregation.PCGrad``."""

    name = "pcgrad"

    def build(self, num_tasks: int) -> aggregation.Aggregator:
        return aggregation.PCGrad()


class MGDA(AggregatorBalancer):
    """The minimum-norm point of the convex hull of the task gradients (Sener & Koltun,
    "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018), Frank-Wolfe solver:
    ``torchjd.aggregation.MGDA``."""

    name = "mgda"
    defaults: ClassVar[dict[str, Any]] = {"epsilon": 1e-3, "max_iters": 100}

    def build(self, num_tasks: int, epsilon: float, max_iters: int) -> aggregation.Aggregator:
        return aggregation.MGDA(epsilon, max_iters)


class ZeroRowSafeCAGradWeighting(aggregation.CAGradWeighting):
    """torchjd's CAGrad weighting, with the tasks whose gradient is exactly zero set apart.

    Algorithm 1 of Liu et al. (NeurIPS 2021) updates along
    ``d = g_0 + (s / ||g_w||) g_w`` with ``g_0 = (1/K) sum_i g_i``, ``s = c ||g_0||`` and
    ``g_w = sum_i w*_i g_i``, ``w* = argmin_{w in simplex} g_w^T g_0 + s ||g_w||``. A zero row
    ``g_z = 0`` (a task whose loss is constant in the batch, e.g. no valid label) makes ``g_w = 0``
    feasible, and torchjd 0.18 then returns ``w = 0`` ("approximately on the Pareto front"): no
    update at all, however large the other tasks' gradients. Here ``w*`` runs over the simplex
    of the tasks ``A`` with a gradient (``K_A`` of them) while ``g_0`` keeps all ``K``: with
    ``w_A`` torchjd's weights on the Gramian of ``A`` (its ``g_0`` is ``(K/K_A) g_0``, and the
    weights do not depend on the Gramian's scale), ``w_i = (K_A / K) w_A,i = 1/K + (s/||g_w||)
    w*_i`` on ``A`` and ``w_z = 1/K`` on the zero rows (the part of ``g_0`` they carry). On
    ``[[1, 2], [0, 0]]`` the update is ``(1 + c)/2 (1, 2)``: ``g_0`` plus ``c ||g_0||`` along the
    only gradient. Without zero rows (or with only zero rows) the weights are torchjd's."""

    def forward(self, gramian: Tensor, /) -> Tensor:
        active = gramian.diagonal() > 0
        count = int(active.sum())
        if count in (0, len(active)):
            return super().forward(gramian)
        kept = gramian[active][:, active]
        weights = torch.full_like(gramian[0], 1.0 / len(active))
        weights[active] = super().forward(kept) * (count / len(active))
        return weights


class CAGrad(AggregatorBalancer):
    """Conflict-averse gradient descent (Liu et al., NeurIPS 2021): torchjd's CAGrad with
    :class:`ZeroRowSafeCAGradWeighting`."""

    name = "cagrad"
    defaults: ClassVar[dict[str, Any]] = {"c": 0.4, "norm_eps": 1e-4}

    def build(self, num_tasks: int, c: float, norm_eps: float) -> aggregation.Aggregator:
        return aggregation.GramianWeightedAggregator(ZeroRowSafeCAGradWeighting(c, norm_eps))


class IMTLG(AggregatorBalancer):
    """Impartial MTL, gradient part (Liu et al., "Towards Impartial Multi-task Learning", ICLR
    2021): ``torchjd.aggregation.IMTLG``."""

    name = "imtl"

    def build(self, num_tasks: int) -> aggregation.Aggregator:
        return aggregation.IMTLG()


class FairGrad(AggregatorBalancer):
    """Alpha-fair utility maximisation (Ban & Ji, "Fair Resource Allocation in Multi-Task
    Learning", ICML 2024): ``torchjd.aggregation.FairGrad``."""

    name = "fairgrad"
    defaults: ClassVar[dict[str, Any]] = {"alpha": 1.0, "max_iters": None}

    def build(self, num_tasks: int, alpha: float, max_iters: int | None) -> aggregation.Aggregator:
        return aggregation.FairGrad(alpha, max_iters)


class AlignedMTL(AggregatorBalancer):
    """Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning",
    CVPR 2023): ``torchjd.aggregation.AlignedMTL``."""

    name = "alignedmtl"
    defaults: ClassVar[dict[str, Any]] = {"scale_mode": "min"}

    def build(self, num_tasks: int, scale_mode: str) -> aggregation.Aggregator:
        return aggregation.AlignedMTL(scale_mode=scale_mode)


class UPGrad(AggregatorBalancer):
    """Unconflicting projection of gradients (Quinton & Rey, "Jacobian Descent for Multi-Objective
    Optimization", 2024): ``torchjd.aggregation.UPGrad``."""

    name = "upgrad"

    def build(self, num_tasks: int) -> aggregation.Aggregator:
        return aggregation.UPGrad()


class DualProj(AggregatorBalancer):
    """Projection of the mean gradient onto the dual cone (Quinton & Rey, 2024):
    ``torchjd.aggregation.DualProj``."""

    name = "dualproj"

    def build(self, num_tasks: int) -> aggregation.Aggregator:
        return aggregation.DualProj()


class GradDrop(AggregatorBalancer):
    """Gradient sign dropout (Chen et al., "Just Pick a Sign", NeurIPS 2020):
    ``torchjd.aggregation.GradDrop``; random, so seeded."""

    name = "graddrop"
    stochastic = True

    def build(self, num_tasks: int) -> aggregation.Aggregator:
        return aggregation.GradDrop()


class ConFIG(AggregatorBalancer):
    """Conflict-free training (Liu et al., "ConFIG: Towards Conflict-free Training of Physics
    Informed Neural Networks", ICLR 2025): ``torchjd.aggregation.ConFIG``."""

    name = "config"

    def build(self, num_tasks: int) -> aggregation.Aggregator:
        return aggregation.ConFIG()
