"""Study 4, part B: profile dynamics (docs/THEORY.md S4).

Heads are reset to their least-squares optimum at the current psi before every step (profile risk
``R*_t(psi)``) and psi takes plain gradient steps of size ``eta`` on the balancer's combination.
For a combination ``sum_t lambda_t g_t`` (projections only shorten the ``g_t``),

    |psi_T - psi_0| <= eta T max_step(sum_t |lambda_t|) max_t max_psi |dR*_t/dpsi|,

with the population derivative ``dR*_t/dpsi = 2 beta_t^2 v s c / (c^2 + v s^2)^2``; the measured
drift is compared with that bound plus the floating-point error of the steps.
"""

from __future__ import annotations

import math

import numpy as np

from experiments.synthetic.study4_balancers.setting import (
    Config,
    balanced_step,
    dtype,
    least_squares_heads,
    make_seeded_balancer,
    model_at,
    source_batch,
)


def profile_derivative_max(config: Config, v: float) -> np.ndarray:
    """``max_psi |dR*_t/dpsi|`` per task on a grid of 20001 angles (S4's scalar formula)."""
    psi = np.linspace(0.0, math.pi / 2, 20001)
    c, s = np.cos(psi), np.sin(psi)
    shape = 2.0 * v * s * c / (c**2 + v * s**2) ** 2 if v > 0 else np.zeros_like(psi)
    return np.array([beta**2 * np.max(np.abs(shape)) for beta in config.betas])


def summation_error(model, forward, batch, epsilon: float) -> float:
    """Floating-point error bound ``n eps max_t mean_i |g_ti|`` of the batch-mean psi-gradient.

    The per-sample gradient of task ``t`` on psi is ``g_ti = -2 r_ti w_t^T dZhat_s/dpsi`` with
    ``dZhat_s/dpsi = -s Z_s + c Z_r = Zhat_r``; summing ``n`` terms in floating point errs by at
    most ``n eps sum_i |g_ti| / n`` (Higham, Accuracy and Stability, eq. 4.4).
    """
    import torch

    with torch.no_grad():
        z_r = forward.z_r.detach()
        largest = 0.0
        for index, (head, prediction) in enumerate(
            zip(model.heads.values(), forward.predictions.values(), strict=True)
        ):
            residual = batch["y"][:, index] - prediction.detach()[:, 0]
            terms = 2 * residual.abs() * (z_r @ head.weight.detach()[0]).abs()
            largest = max(largest, float(terms.mean()))
    return batch["y"].shape[0] * epsilon * largest


def profile_drift(config: Config, name: str, v: float, seed: int) -> dict:
    """psi steps of balancer ``name`` with the heads reset to least squares before each step: the
    drift, S4's bound and the rounding allowance."""
    import torch

    from experiments.synthetic.angle_model import set_heads

    torch.manual_seed(seed)
    batch = source_batch(config, v, seed)
    model = model_at(config, v, config.psi_start, seed)
    psi = model.encoder.psi
    balancer = make_seeded_balancer(name, config, seed)
    weight_sums, rounding = [], 0.0
    epsilon = float(torch.finfo(dtype()).eps)
    for _ in range(config.profile_steps):
        set_heads(model, *least_squares_heads(model, batch))
        model.zero_grad(set_to_none=True)
        weights, forward = balanced_step(model, balancer, batch, [psi])
        weight_sums.append(sum(abs(value) for value in weights.values()))
        rounding += (
            summation_error(model, forward, batch, epsilon) * config.profile_lr * weight_sums[-1]
        )
        rounding += epsilon * math.pi / 2
        with torch.no_grad():
            if psi.grad is not None:
                psi -= config.profile_lr * psi.grad
                psi.clamp_(0.0, math.pi / 2)
    drift = abs(float(psi.detach()) - config.psi_start)
    bound = (
        config.profile_lr
        * config.profile_steps
        * max(weight_sums)
        * float(profile_derivative_max(config, v).max())
    )
    return {
        "drift": drift,
        "bound": bound,
        "rounding_allowance": rounding,
        "max_weight_sum": max(weight_sums),
        "holds": bool(drift <= bound + rounding),
    }
