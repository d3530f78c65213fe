"""Gradient balancers for stacked models: per-model task weights, batched over models.

With ``J_m`` the ``K x P`` Jacobian of model ``m``'s task losses in its shared parameters and
``G_m = J_m J_m^T`` its Gramian, a Gramian-weighted aggregator updates the shared parameters by
``J_m^T w_m``; the heads get their own task gradients unchanged (docs/THEORY.md S3). A loss
weighting back-propagates ``sum_i w_i L_i`` into every parameter. These are the balancers of
:func:`coremtl.balancers.make_balancer` (same names, same options, same torchjd definitions),
written for a batch of Gramians ``(M, K, K)``:

Loss weightings (:data:`LOSS_WEIGHTINGS`, one backward pass):

- Equal Weighting (``ew``): ``w = 1`` (the gradient of the plain sum of the task losses);
- Random loss weighting (``rlw``; Lin et al., "Reasonable Effectiveness of Random Weighting: A
  Litmus Test for Multi-Task Learning", TMLR 2022, Algorithm 2; ``torchjd.scalarization.Random``):
  ``w = softmax(xi)``, ``xi ~ N(0, I_K)`` drawn afresh at every step (:func:`rlw_weights`; the
  draws are :meth:`coremtl.batched.draws.Draws.balancer_normals`).

Gramian weightings (:data:`GRAMIAN_WEIGHTINGS`, one backward pass per task for ``J``):

- PCGrad (``pcgrad``; Yu et al., NeurIPS 2020; torchjd ``PCGradWeighting``): for each task ``i``
  start from ``e_i`` and, for ``j`` in a random order, subtract the projection on ``g_j`` whenever
  ``<g_i^PC, g_j> < 0``; ``w`` is the sum over ``i``;
- MGDA (``mgda``; Sener & Koltun, NeurIPS 2018, Algorithm 2; torchjd ``MGDAWeighting``):
  Frank-Wolfe on ``min_{alpha in simplex} alpha^T G alpha`` from ``alpha = 1/K``, at most
  ``max_iters`` steps, stopping (per model) once the step size ``gamma < epsilon``, or once an
  iteration leaves ``alpha`` unchanged (every later iteration would repeat it, so the result is the
  same);
- IMTL-G (``imtl``; Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021, Eq. 9, in the
  form of Quinton & Rey 2024 that admits dependent rows; torchjd ``IMTLGWeighting``):
  ``v = G^+ d`` with ``d_i = sqrt(G_ii) = ||g_i||`` and ``w = v / 1^T v`` (``w = 0`` when
  ``|1^T v| < 1e-12``), so that ``J^T w`` has equal projections on every unit gradient;
- Aligned-MTL (``alignedmtl``; Senushkin et al., "Independent Component Alignment for Multi-Task
  Learning", CVPR 2023, Algorithm 1; torchjd ``AlignedMTLWeighting``): with ``G = V Lambda V^T``
  restricted to the ``r`` eigenvalues above ``max(lambda) K eps``,
  ``w = sqrt(sigma) V_r Lambda_r^{-1/2} V_r^T 1/K``, ``sigma`` the smallest retained eigenvalue
  (``scale_mode="min"``; ``"median"``: the lower median, ``"rmse"``: the mean); ``w = 1/K`` when
  ``r = 0``. The aligned update ``J^T w`` has singular values all equal to ``sqrt(sigma)``;
- UPGrad (``upgrad``; Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024,
  Eq. 5; torchjd ``UPGradWeighting``): ``w = sum_i w^(i)``, ``w^(i)`` the dual-cone projection
  weights of ``u = e_i / K``: ``argmin_v v^T G' v`` s.t. ``v >= u``
  (:func:`coremtl.batched.faces.dual_cone_weights`, exact);
- DualProj (``dualproj``; Quinton & Rey 2024; torchjd ``DualProjWeighting``): the dual-cone
  projection weights of ``u = 1/K``;
- CAGrad (``cagrad``; Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
  NeurIPS 2021, Algorithm 1; torchjd ``CAGradWeighting``): on ``G_n = G / tr G``,
  ``w* = argmin_{w in simplex} w^T G_n 1/K + s sqrt(w^T G_n w)`` with
  ``s = c sqrt(1^T G_n 1) / K`` (:func:`coremtl.batched.faces.cagrad_simplex`, exact) and
  ``w = 1/K + (s / ||g_w||) w*``, ``||g_w|| = sqrt(w*^T G_n w*)``; ``w = 0`` when
  ``||g_w|| < norm_eps``.

As in torchjd, UPGrad and DualProj project with ``G' = G_n + reg_eps I`` where
``G_n = G / tr G`` (``G_n = 0`` when ``tr G < norm_eps``), ``norm_eps = reg_eps = 1e-4``, and CAGrad
normalises the same way; their programs are solved in float64 whatever the Gramian's precision
(torchjd hands them to quadprog and Clarabel in float64) and the weights are returned in it.
The solvers here are exact on each face (no iteration): they reach the float64 rounding of a
``K x K`` solve, where quadprog is also exact and Clarabel stops at its own tolerance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from coremtl.batched.faces import cagrad_simplex, dual_cone_weights
from scm.validation import InvalidParameterError

LOSS_WEIGHTINGS = ("ew", "rlw")
GRAMIAN_WEIGHTINGS = ("pcgrad", "mgda", "imtl", "alignedmtl", "upgrad", "dualproj", "cagrad")
BATCHED_BALANCERS = (*LOSS_WEIGHTINGS, *GRAMIAN_WEIGHTINGS)
SCALE_MODES = ("min", "median", "rmse")
PROJECTION_EPS = 1e-4
"""torchjd's ``norm_eps`` and ``reg_eps`` of the dual-cone projection and of CAGrad."""


def check_balancer(name: str) -> str:
    if name not in BATCHED_BALANCERS:
        raise InvalidParameterError(f"balancer: expected one of {BATCHED_BALANCERS}, got {name!r}")
    return name


def normalized(gramian: Tensor, eps: float = PROJECTION_EPS) -> Tensor:
    """``G / tr G`` per model, 0 where ``tr G < eps`` (torchjd ``normalize``)."""
    trace = torch.diagonal(gramian, dim1=1, dim2=2).sum(dim=1)[:, None, None]
    small = trace < eps
    return torch.where(small, 0.0, gramian / torch.where(small, 1.0, trace))


def rlw_weights(normals: Tensor) -> Tensor:
    """Random loss weights ``softmax(xi)`` per model, ``(M, K)``, from normals ``xi`` ``(M, K)``."""
    return torch.softmax(normals, dim=-1)


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


def imtl_weights(gramian: Tensor) -> Tensor:
    """IMTL-G weights ``(M, K)``: ``v = G^+ sqrt(diag G)``, ``w = v / 1^T v``."""
    d = torch.diagonal(gramian, dim1=1, dim2=2).sqrt()
    v = torch.einsum("mij,mj->mi", torch.linalg.pinv(gramian), d)
    total = v.sum(dim=1, keepdim=True)
    degenerate = total.abs() < 1e-12
    return torch.where(degenerate, 0.0, v / torch.where(degenerate, 1.0, total))


def alignedmtl_weights(gramian: Tensor, scale_mode: str = "min") -> Tensor:
    """Aligned-MTL weights ``(M, K)``: ``sqrt(sigma) V_r Lambda_r^{-1/2} V_r^T 1/K``."""
    if scale_mode not in SCALE_MODES:
        raise InvalidParameterError(
            f"scale_mode: expected one of {SCALE_MODES}, got {scale_mode!r}"
        )
    num_models, num_tasks, _ = gramian.shape
    eigenvalues, vectors = torch.linalg.eigh(gramian, UPLO="U")
    tolerance = eigenvalues.amax(dim=1, keepdim=True) * num_tasks * torch.finfo(gramian.dtype).eps
    kept = eigenvalues > tolerance
    rank = kept.sum(dim=1)
    safe = torch.where(kept, eigenvalues, 1.0)
    if scale_mode == "min":
        scale = torch.where(kept, eigenvalues, math.inf).amin(dim=1)
    elif scale_mode == "rmse":
        scale = torch.where(kept, eigenvalues, 0.0).sum(dim=1) / rank.clamp_min(1)
    else:
        position = (num_tasks - rank + (rank - 1).div(2, rounding_mode="floor")).clamp(0)
        scale = eigenvalues.gather(1, position[:, None].clamp_max(num_tasks - 1))[:, 0]
    inverse_root = torch.where(kept, safe.rsqrt(), 0.0)
    mean = torch.full((num_models, num_tasks), 1.0 / num_tasks, dtype=gramian.dtype)
    mean = mean.to(gramian.device)
    coordinates = torch.einsum("mji,mj->mi", vectors, mean)
    aligned = torch.einsum("mij,mj->mi", vectors, inverse_root * coordinates)
    root = torch.where(rank > 0, scale, 1.0).clamp_min(0).sqrt()[:, None]
    return torch.where((rank > 0)[:, None], root * aligned, mean)


def projection_gramian(gramian: Tensor) -> Tensor:
    """``G' = G_n + reg_eps I`` in the Gramian's precision, then float64 (torchjd's projector)."""
    eye = torch.eye(gramian.shape[1], dtype=gramian.dtype, device=gramian.device)
    return (normalized(gramian) + PROJECTION_EPS * eye).double()


def upgrad_weights(gramian: Tensor) -> Tensor:
    """UPGrad weights ``(M, K)``: the sum over ``i`` of the projection weights of ``e_i / K``."""
    num_models, num_tasks, _ = gramian.shape
    regular = projection_gramian(gramian)
    eye = torch.eye(num_tasks, dtype=torch.float64, device=gramian.device)
    u = (eye / num_tasks).expand(num_models, num_tasks, num_tasks)
    return dual_cone_weights(u, regular).sum(dim=1).to(gramian.dtype)


def dualproj_weights(gramian: Tensor) -> Tensor:
    """DualProj weights ``(M, K)``: the projection weights of ``1/K``."""
    num_models, num_tasks, _ = gramian.shape
    regular = projection_gramian(gramian)
    u = torch.full((num_models, 1, num_tasks), 1.0 / num_tasks, dtype=torch.float64)
    return dual_cone_weights(u.to(gramian.device), regular)[:, 0].to(gramian.dtype)


def cagrad_weights(gramian: Tensor, c: float, norm_eps: float = PROJECTION_EPS) -> Tensor:
    """CAGrad weights ``(M, K)``: ``1/K + (s / ||g_w||) w*`` on the normalised Gramian."""
    if not c > 0:
        raise InvalidParameterError(f"c: expected a number > 0, got {c!r}")
    num_tasks = gramian.shape[1]
    unit = normalized(gramian, norm_eps).double()
    s = c * unit.sum(dim=(1, 2)).clamp_min(0).sqrt() / num_tasks
    direction = cagrad_simplex(unit, s)
    norm = torch.einsum("mi,mij,mj->m", direction, unit, direction).clamp_min(0).sqrt()[:, None]
    far = norm >= norm_eps
    weights = 1.0 / num_tasks + torch.where(far, s[:, None] / torch.where(far, norm, 1.0), 0.0) * (
        direction
    )
    return torch.where(far, weights, 0.0).to(gramian.dtype)


def task_weights(
    name: str,
    gramian: Tensor,
    orders: Tensor | None = None,
    epsilon: float = 1e-3,
    max_iters: int = 100,
    c: float = 0.4,
    norm_eps: float = PROJECTION_EPS,
    scale_mode: str = "min",
) -> Tensor:
    """The ``(M, K)`` weights of Gramian weighting ``name`` for Gramians ``(M, K, K)``; the
    keyword options are the registry's (:func:`coremtl.balancers.balancer_options`)."""
    check_balancer(name)
    if name == "ew":
        return torch.ones(gramian.shape[:2], dtype=gramian.dtype, device=gramian.device)
    if name == "rlw":
        raise InvalidParameterError("balancer: 'rlw' weights the losses; use rlw_weights")
    if name == "pcgrad":
        if orders is None:
            raise InvalidParameterError("orders: PCGrad needs the random visiting orders")
        return pcgrad_weights(gramian, orders)
    if name == "mgda":
        return mgda_weights(gramian, epsilon, max_iters)
    if name == "imtl":
        return imtl_weights(gramian)
    if name == "alignedmtl":
        return alignedmtl_weights(gramian, scale_mode)
    if name == "upgrad":
        return upgrad_weights(gramian)
    if name == "dualproj":
        return dualproj_weights(gramian)
    return cagrad_weights(gramian, c, norm_eps)
