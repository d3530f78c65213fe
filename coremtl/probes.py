"""Measurements of a dual-stream model: leakage, gradient alignment, substitution stability.

- Leakage coefficient (docs/THEORY.md S5): through a known generator ``x = observe([z_s; z_r])``,
  ``lambda_leak = sup_i || d Zhat_s(observe(z_i)) / d z_r ||_op``, the largest operator norm over
  the sample points ``z_i`` of the Jacobian of the semantic stream in the residual factors
  (``torch.func.jacrev`` vectorised with ``vmap``; the model is evaluated in eval mode). For the
  encoder of setting S it equals ``|sin psi|``.
- Gradient alignment (S7, C3): for one batch, with ``F`` = ``Forward.shared`` (B x ...),
  ``g_task = d (sum_t L_t) / d F`` and ``g_res = d L_res / d F`` with ``L_res`` a residual-stream
  loss (the reconstruction loss, or ``sum(Z_r)`` by default), both flattened over the whole batch,
  ``cos^2 = <g_task, g_res>^2 / (||g_task||^2 ||g_res||^2)`` (0 when either gradient is zero).
- Representations (:func:`representations`): what every built model's representations are on a
  batch, as vectors for linear probes (:meth:`coremtl.forward.Forward.representations`).
- Substitution stability (C5): for inputs ``x`` and ``x'`` that differ only in their residual
  factors, ``dZ = mean_i ||Z(x'_i) - Z(x_i)|| / scale(Z)`` per stream, with
  ``scale(Z) = sqrt(mean_i ||Z(x_i) - mean Z||^2)`` the stream's spread on ``x``, and the ratio
  ``dZ_r / dZ_s``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from coremtl.cka import as_feature_matrix
from coremtl.forward import Forward
from scm.validation import InvalidParameterError


def leakage_jacobian_norms(model: nn.Module, scm, z: Tensor) -> Tensor:
    """``||d Zhat_s / d z_r||_op`` at each row of ``z`` = ``[z_s, z_r]`` (n, 2k), in eval mode.

    ``scm`` provides ``observe`` (torch-differentiable, linear or nonlinear mixing) and ``k``.
    """
    k = scm.k
    if z.ndim != 2 or z.shape[1] != 2 * k:
        raise InvalidParameterError(f"z: expected shape (n, {2 * k}), got {tuple(z.shape)}")
    was_training = model.training
    model.eval()
    try:

        def semantic_stream(z_r: Tensor, z_s: Tensor) -> Tensor:
            x = scm.observe(torch.cat([z_s, z_r]).unsqueeze(0))
            return model.encode(x)[0].flatten()

        jacobians = torch.func.vmap(torch.func.jacrev(semantic_stream))(z[:, k:], z[:, :k])
    finally:
        model.train(was_training)
    return torch.linalg.matrix_norm(jacobians.detach(), ord=2)


def leakage_coefficient(model: nn.Module, scm, z: Tensor) -> float:
    """``lambda_leak``: the largest Jacobian operator norm over the sample points ``z``."""
    return float(leakage_jacobian_norms(model, scm, z).max())


def gradient_alignment(
    forward: Forward, task_loss: Tensor, residual_loss: Tensor | None = None
) -> float:
    """``cos^2(g_task, g_res)`` at ``forward.shared`` (see the module docstring).

    ``residual_loss`` defaults to ``sum(Z_r)``. The graph is kept for a later backward pass.
    """
    if residual_loss is None:
        if forward.z_r is None:
            raise InvalidParameterError("forward: the default residual loss needs z_r")
        residual_loss = forward.z_r.sum()
    (g_task,) = torch.autograd.grad(task_loss, forward.shared, retain_graph=True, allow_unused=True)
    (g_res,) = torch.autograd.grad(
        residual_loss, forward.shared, retain_graph=True, allow_unused=True
    )
    if g_task is None or g_res is None:
        return 0.0
    g_task, g_res = g_task.flatten().double(), g_res.flatten().double()
    squared_norms = g_task.square().sum() * g_res.square().sum()
    if squared_norms == 0:
        return 0.0
    return float((g_task @ g_res).square() / squared_norms)


@torch.no_grad()
def substitution_stability(model: nn.Module, x: Tensor, x_substituted: Tensor) -> dict[str, float]:
    """``dZ_s``, ``dZ_r`` and ``ratio = dZ_r / dZ_s`` between ``x`` and its residual swap ``x'``.

    Maps are pooled over space first. Evaluated in eval mode.
    """
    if x.shape != x_substituted.shape:
        raise InvalidParameterError(
            f"x_substituted: expected the shape of x {tuple(x.shape)}, "
            f"got {tuple(x_substituted.shape)}"
        )
    was_training = model.training
    model.eval()
    try:
        z_s, z_r = model.encode(x)
        z_s_sub, z_r_sub = model.encode(x_substituted)
    finally:
        model.train(was_training)
    result: dict[str, float] = {}
    for name, before, after in (("s", z_s, z_s_sub), ("r", z_r, z_r_sub)):
        before, after = as_feature_matrix(before).double(), as_feature_matrix(after).double()
        scale = (before - before.mean(dim=0)).square().sum(dim=1).mean().sqrt()
        change = torch.linalg.vector_norm(after - before, dim=1).mean()
        result[f"dZ_{name}"] = float(change / scale) if scale > 0 else float("nan")
    result["ratio"] = result["dZ_r"] / result["dZ_s"] if result["dZ_s"] > 0 else float("inf")
    return result


def alignment_probe(
    task_losses_fn: Callable[[dict[str, Tensor], dict[str, Tensor]], dict[str, Tensor]],
) -> Callable[[nn.Module, dict[str, Tensor], Forward, int], dict[str, float]]:
    """A trainer callback logging ``cos2`` (with ``sum(Z_r)`` as residual loss) and the CKA of
    the streams (debiased and biased) on the current batch."""
    from coremtl.cka import linear_cka

    def probe(model: nn.Module, batch: dict[str, Tensor], forward: Forward, step: int):
        task_loss = torch.stack(list(task_losses_fn(forward.predictions, batch).values())).sum()
        z_s, z_r = forward.z_s.detach().float(), forward.z_r.detach().float()
        return {
            "cos2": gradient_alignment(forward, task_loss),
            "cka_debiased": float(linear_cka(z_s, z_r, debiased=True)),
            "cka_biased": float(linear_cka(z_s, z_r, debiased=False)),
        }

    return probe


def representations(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """:meth:`coremtl.forward.Forward.representations` of ``model`` on inputs ``x``, computed in
    eval mode without gradients (the model's mode restored): ``"Z"`` for every method,
    ``"Z_s"``/``"Z_r"`` for CORE-MTL, ``"module/<m>"`` and ``"routing"`` for MT-CRL,
    ``"attended/<task>"`` for MTAN, ``"trunk/<task>"`` for single-task models."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x).representations()
    finally:
        model.train(was_training)
