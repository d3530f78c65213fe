"""Exact solutions, for a batch of Gramians ``(M, K, K)``, of the two small convex programs in
``R^K`` behind UPGrad, DualProj and CAGrad, by enumerating the faces of the feasible set.

A convex program whose optimum ``x*`` lies in the relative interior of a face ``F`` of a polytope
has ``x*`` as the minimiser of the objective on the affine hull of ``F`` (convexity), and that
minimiser has a closed form here. Every face is therefore a candidate: its closed-form point is
kept when it is feasible, and the answer is the kept candidate with the lowest objective. The
optimum's own face yields the optimum; any other kept candidate is a feasible point, so it cannot
score lower. Candidates are compared without a feasibility tolerance: when the optimum sits on the
boundary of a face, the smaller face it lies in yields it with the boundary coordinates exact.
A polytope in ``R^K`` has at most ``2^K`` faces here, each costing one ``K x K`` solve, so the
enumeration is for few tasks (:data:`MAX_TASKS`).

- :func:`dual_cone_weights`: the weights of the projection of ``J^T u`` onto the dual cone of the
  rows of ``J`` (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024,
  Proposition 1): ``w = argmin_v v^T G v`` subject to ``v >= u``. A face fixes ``v_S = u_S`` on a
  set ``S`` of active constraints; on its affine hull the minimiser is
  ``v_F = -G_FF^{-1} G_FS u_S`` for the free coordinates ``F`` (``G`` positive definite).
- :func:`cagrad_simplex`: the inner problem of CAGrad (Liu et al., "Conflict-Averse Gradient
  Descent for Multi-task Learning", NeurIPS 2021, Eq. 4 in its dual form):
  ``min_{w in simplex} w^T b + s sqrt(w^T G w)`` with ``b = G 1/K`` and ``s = c ||g_0||``,
  ``||g_0||^2 = 1^T G 1 / K^2``. With ``a_i`` rows of a factor ``A A^T = G``, ``g = A^T w`` runs
  over the convex hull of the ``a_i``; the objective is ``g_0^T g + s ||g||``. A face is the hull
  of an affinely independent subset ``{a_0} u R`` (Caratheodory: the optimum lies in the relative
  interior of such a face); with the differences ``D = [a_j - a_0]_{j in R}``,
  ``H = D^T D``, ``u = (I - P) a_0`` and ``z = P g_0`` (``P = D H^{-1} D^T``), the stationary
  point on the affine hull is ``g = u - rho z``, ``rho = ||g|| / s = ||u|| / sqrt(s^2 - ||z||^2)``
  (when ``s > ||z||``), i.e. ``lambda = -H^{-1} (D^T a_0 + rho D^T g_0)`` and
  ``w = (1 - 1^T lambda) e_0 + lambda``; the point ``g = u`` (``rho = 0``, the optimum when the
  face's hull contains ``0``) is a candidate too. Everything is a function of ``G``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scm.validation import InvalidParameterError

MAX_TASKS = 10
"""The most tasks the enumeration accepts: ``2^K`` faces of ``K x K`` solves per model."""


def check_tasks(num_tasks: int) -> None:
    if num_tasks > MAX_TASKS:
        raise InvalidParameterError(
            f"tasks: the exact batched solvers enumerate 2^K faces; expected K <= {MAX_TASKS}, "
            f"got {num_tasks}"
        )


def subsets(num_tasks: int, device: torch.device) -> Tensor:
    """All subsets of ``0..K-1``: a ``(2^K, K)`` boolean table, row ``c`` the bits of ``c``."""
    codes = torch.arange(2**num_tasks, device=device)
    return (codes[:, None] >> torch.arange(num_tasks, device=device)) & 1 == 1


def quadratic(matrix: Tensor, vectors: Tensor) -> Tensor:
    """``v^T G v`` for ``matrix`` ``(M, K, K)`` and ``vectors`` ``(M, ..., K)``."""
    shape = vectors.shape
    flat = vectors.reshape(shape[0], -1, shape[-1])
    values = torch.einsum("mci,mij,mcj->mc", flat, matrix, flat)
    return values.reshape(shape[:-1])


def dual_cone_weights(u: Tensor, gramian: Tensor) -> Tensor:
    """``argmin_v v^T G v`` subject to ``v >= u`` for ``u`` ``(M, R, K)`` (``R`` vectors per
    model) and positive definite ``gramian`` ``(M, K, K)``; returns ``(M, R, K)``."""
    num_tasks = u.shape[-1]
    check_tasks(num_tasks)
    free = subsets(num_tasks, gramian.device)
    pairs = free[:, :, None] & free[:, None, :]
    eye = torch.eye(num_tasks, dtype=gramian.dtype, device=gramian.device)
    system = torch.where(pairs, gramian[:, None], eye)
    fixed = torch.where(free, 0.0, u[:, :, None, :])
    pull = torch.einsum("mij,mrcj->mrci", gramian, fixed)
    right = torch.where(free, -pull, u[:, :, None, :])
    solution = torch.linalg.solve(system, right.permute(0, 2, 3, 1))
    candidates = solution.permute(0, 3, 1, 2)
    feasible = (candidates >= u[:, :, None, :]).all(dim=-1)
    objective = torch.where(feasible, quadratic(gramian, candidates), math.inf)
    best = objective.argmin(dim=-1)
    index = best[..., None, None].expand(-1, -1, 1, num_tasks)
    return candidates.gather(2, index).squeeze(2)


def cagrad_simplex(gramian: Tensor, s: Tensor) -> Tensor:
    """``argmin_{w in simplex} w^T G 1/K + s sqrt(w^T G w)`` for positive semi-definite
    ``gramian`` ``(M, K, K)`` and ``s`` ``(M,)``; returns ``(M, K)``. With ``s = 0`` (``g_0 = 0``,
    so ``G 1 = 0`` and the objective is 0 on the whole simplex) it returns the centre ``1/K``,
    the point an interior-point solver such as torchjd's Clarabel lands on."""
    num_models, num_tasks, _ = gramian.shape
    check_tasks(num_tasks)
    dtype, device = gramian.dtype, gramian.device
    faces = subsets(num_tasks, device)[1:]
    anchor = faces.to(torch.int64).argmax(dim=1)
    rest = faces.clone()
    rest[torch.arange(faces.shape[0], device=device), anchor] = False
    pairs = rest[:, :, None] & rest[:, None, :]
    b = gramian.sum(dim=2) / num_tasks
    g_a = gramian[:, :, anchor].permute(0, 2, 1)
    g_aa = gramian[:, anchor, anchor]
    differences = (
        gramian[:, None] - g_a[:, :, :, None] - g_a[:, :, None, :] + g_aa[:, :, None, None]
    )
    eye = torch.eye(num_tasks, dtype=dtype, device=device)
    hessian = torch.where(pairs, differences, eye)
    toward_anchor = torch.where(rest, g_a - g_aa[..., None], 0.0)
    toward_mean = torch.where(rest, b[:, None, :] - b[:, anchor][..., None], 0.0)
    right = torch.stack([toward_anchor, toward_mean], dim=-1)
    solved, _ = torch.linalg.solve_ex(hessian, right)
    x_anchor, x_mean = solved[..., 0], solved[..., 1]
    uu = (g_aa - (toward_anchor * x_anchor).sum(-1)).clamp_min(0.0)
    zz = (toward_mean * x_mean).sum(-1)
    room = s[:, None].square() - zz
    rho = torch.where(room > 0, (uu / torch.where(room > 0, room, 1.0)).sqrt(), math.nan)
    rhos = torch.stack([rho, torch.zeros_like(rho)], dim=-1)
    steps = -(x_anchor[..., None, :] + rhos[..., None] * x_mean[..., None, :])
    steps = torch.where(rest[:, None, :], steps, 0.0)
    one_hot = torch.nn.functional.one_hot(anchor, num_tasks).to(dtype)[:, None, :]
    candidates = steps + one_hot * (1.0 - steps.sum(-1, keepdim=True))
    candidates = candidates.reshape(num_models, -1, num_tasks)
    feasible = (candidates >= 0).all(dim=-1) & torch.isfinite(candidates).all(dim=-1)
    safe = torch.where(feasible[..., None], candidates, 0.0)
    value = (safe * b[:, None]).sum(-1) + s[:, None] * quadratic(gramian, safe).clamp_min(0).sqrt()
    objective = torch.where(feasible, value, math.inf)
    best = objective.argmin(dim=-1)
    chosen = candidates[torch.arange(num_models, device=device), best]
    return torch.where((s == 0)[:, None], 1.0 / num_tasks, chosen)
