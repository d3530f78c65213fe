"""Gradient balancers for stacked models: per-model task weights from per-model Gramians.

With ``J_m`` the ``K x P`` Jacobian of model ``m``'s task losses in its shared parameters and
``G_m = J_m J_m^T`` its Gramian, a Gramian-weighted aggregator updates the shared parameters by
``J_m^T w_m``; the heads get their own task gradients unchanged (docs/THEORY.md S3). These are the
aggregators of torchjd that :func:`coremtl.balancers.make_balancer` wraps, written for a batch of
Gramians ``(M, K, K)``:

- Equal Weighting: ``w = 1`` (the gradient of the plain sum of the task losses);
- PCGrad (Yu et al., NeurIPS 2020; torchjd ``PCGradWeighting``): for each task ``i`` start from
  ``e_i`` and, for ``j`` in a random order, subtract the projection on ``g_j`` whenever
  ``<g_i^PC, g_j> < 0``; ``w`` is the sum over ``i``;
- MGDA (Sener & Koltun, NeurIPS 2018, Algorithm 2; torchjd ``MGDAWeighting``): Frank-Wolfe on
  ``min_{alpha in simplex} alpha^T G alpha`` from ``alpha = 1/K``, at most ``max_iters`` steps,
  stopping (per model) once the step size ``gamma < epsilon``, or once an iteration leaves
  ``alpha`` unchanged (every later iteration would repeat it, so the result is the same).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scm.validation import InvalidParameterError

BATCHED_BALANCERS = ("ew", "pcgrad", "mgda")


def check_balancer(name: str) -> str:
    if name not in BATCHED_BALANCERS:
        raise InvalidParameterError(f"balancer: expected one of {BATCHED_BALANCERS}, got {name!r}")
    return name


def pcgrad_weights(gramian: Tensor, orders: Tensor) -> Tensor:
    """PCGrad weights ``(M, K)``; ``orders[m, i]`` is the order in which task ``i`` visits the
    others (a permutation of ``0..K-1``; ``i`` itself is skipped)."""
    num_models, num_tasks, _ = gramian.shape
    rows = torch.arange(num_models, device=gramian.device)
    diagonal = torch.diagonal(gramian, dim1=1, dim2=2)
    total = torch.zeros(num_models, num_tasks, dtype=gramian.dtype, device=gramian.device)
    for i in range(num_tasks):
        current = torch.zeros_like(total)
        current[:, i] = 1.0
        for position in range(num_tasks):
            j = orders[:, i, position]
            inner = (gramian[rows, j] * current).sum(dim=1)
            scale = diagonal[rows, j]
            project = (j != i) & (inner < 0.0) & (scale > 0.0)
            step = torch.where(project, inner / torch.where(scale > 0, scale, 1.0), 0.0)
            current[rows, j] = current[rows, j] - step
        total = total + current
    return total


def mgda_weights(gramian: Tensor, epsilon: float = 1e-3, max_iters: int = 100) -> Tensor:
    """MGDA (Frank-Wolfe) weights ``(M, K)``, each model stopping on its own ``gamma < epsilon``."""
    num_models, num_tasks, _ = gramian.shape
    rows = torch.arange(num_models, device=gramian.device)
    alpha = torch.full(
        (num_models, num_tasks), 1.0 / num_tasks, dtype=gramian.dtype, device=gramian.device
    )
    running = torch.ones(num_models, dtype=torch.bool, device=gramian.device)
    for _ in range(max_iters):
        product = torch.einsum("mij,mj->mi", gramian, alpha)
        t = torch.argmin(product, dim=1)
        a = (alpha * gramian[rows, :, t]).sum(dim=1)
        b = (alpha * product).sum(dim=1)
        c = gramian[rows, t, t]
        interior = (b - a) / torch.where(b + c - 2 * a != 0, b + c - 2 * a, 1.0)
        gamma = torch.where(c <= a, 1.0, torch.where(b <= a, 0.0, interior))
        gamma = torch.where(running, gamma, 0.0)
        vertex = torch.nn.functional.one_hot(t, num_tasks).to(alpha.dtype)
        updated = (1 - gamma[:, None]) * alpha + gamma[:, None] * vertex
        running = running & (gamma >= epsilon) & (updated != alpha).any(dim=1)
        alpha = updated
        if not bool(running.any()):
            break
    return alpha


def task_weights(
    name: str,
    gramian: Tensor,
    orders: Tensor | None = None,
    epsilon: float = 1e-3,
    max_iters: int = 100,
) -> Tensor:
    """The ``(M, K)`` weights of balancer ``name`` for Gramians ``(M, K, K)``."""
    check_balancer(name)
    if name == "ew":
        return torch.ones(gramian.shape[:2], dtype=gramian.dtype, device=gramian.device)
    if name == "pcgrad":
        if orders is None:
            raise InvalidParameterError("orders: PCGrad needs the random visiting orders")
        return pcgrad_weights(gramian, orders)
    return mgda_weights(gramian, epsilon, max_iters)
