"""Study 4, part A: heads at a fixed angle (docs/THEORY.md S3).

Heads train with psi frozen at ``psi_fixed``. Each task's loss is a quadratic in its own head
``theta_t = (w_t, b_t)`` with Hessian ``H_t = 2 E_n[a a^T]``, ``a = (Zhat_s, 1)``, so the distance to
the least-squares head obeys

    ||theta_t - theta_t^LS|| <= ||grad L_t(theta_t)|| / lambda_min(H_t)

at every point. Training stops once that certified distance is at most ``head_tolerance`` for every
task (checked every ``head_check_every`` steps, at most ``head_steps`` steps). S3 predicts that
every balancer then stands at the closed-form heads ``w_t* = c beta_t / (c^2 + v s^2)``,
``b_t* = 0`` (:func:`scm.closed_form.optimal_heads`): each coordinate of the trained heads is
within ``head_tolerance + z SE`` of ``(w_t*, b_t*)``, with ``SE`` the least-squares standard error
of the sample (the residual of ``w_t*`` is Gaussian and independent of ``Zhat_s``;
``scipy.stats.linregress``) and ``z`` the two-sided Bonferroni quantile at family level
``head_alpha`` over all the study's coordinates. Both checks can fail: a balancer that stalls
(zero weight on a task, a Pareto-stationary point that is not optimal) does not converge; heads
other than S3's miss ``w_t*`` by many standard errors.
"""

from __future__ import annotations

import numpy as np

from experiments.stats import bonferroni_z
from experiments.synthetic.study4_balancers.setting import (
    Config,
    balanced_step,
    dtype,
    least_squares_heads,
    make_seeded_balancer,
    model_at,
    source_batch,
    study_scm,
)


def head_certificate(model, batch) -> list[float]:
    """``||grad L_t(theta_t)|| / lambda_min(H_t)`` per task: S3's bound on the distance of head
    ``t`` to its least-squares head on ``batch``."""
    import torch

    from experiments.synthetic.angle_model import squared_losses

    forward = model(batch["x"])
    losses = squared_losses(forward.predictions, batch)
    z_s = forward.z_s.detach()
    design = torch.cat([z_s, torch.ones_like(z_s[:, :1])], dim=1)
    hessian_min = float(torch.linalg.eigvalsh(2 * design.T @ design / design.shape[0])[0])
    radii = []
    for head, loss in zip(model.heads.values(), losses.values(), strict=True):
        grads = torch.autograd.grad(loss, [head.weight, head.bias], retain_graph=True)
        gradient = torch.cat([g.flatten() for g in grads])
        radii.append(float(torch.linalg.vector_norm(gradient)) / hessian_min)
    return radii


def least_squares_standard_errors(model, batch) -> np.ndarray:
    """``(K, 2)`` standard errors of the least-squares ``(w_t, b_t)`` on ``Zhat_s`` of the batch
    (slope and intercept of ``scipy.stats.linregress``, in float64)."""
    import torch
    from scipy.stats import linregress

    with torch.no_grad():
        z_s, _ = model.encode(batch["x"])
    feature = z_s.double().numpy()[:, 0]
    targets = batch["y"].double().numpy()
    fits = [linregress(feature, targets[:, task]) for task in range(targets.shape[1])]
    return np.array([[fit.stderr, fit.intercept_stderr] for fit in fits])


def head_quantile(config: Config) -> float:
    """Two-sided Bonferroni normal quantile over every coordinate compared in part A (the data of
    a seed and variance are shared by all balancers, so they count once)."""
    comparisons = 2 * len(config.betas) * len(config.variances) * config.seeds
    return bonferroni_z(comparisons, config.head_alpha)


def agrees_with_closed_form(
    trained: np.ndarray, closed_form: np.ndarray, standard_errors: np.ndarray, config: Config
) -> bool:
    """Whether every coordinate of the trained ``(K, 2)`` heads is within
    ``head_tolerance + z SE`` of the closed-form heads (``z`` from :func:`head_quantile`)."""
    allowed = config.head_tolerance + head_quantile(config) * standard_errors
    return bool(np.all(np.abs(trained - closed_form) <= allowed))


def fixed_psi_heads(config: Config, name: str, v: float, seed: int) -> dict:
    """Train heads only at ``psi_fixed`` with balancer ``name`` until S3's certificate is below
    ``head_tolerance``; compare with the least-squares and the closed-form heads."""
    import torch

    from experiments.synthetic.angle_model import head_arrays
    from scm.closed_form import optimal_heads

    torch.manual_seed(seed)
    batch = source_batch(config, v, seed)
    model = model_at(config, v, config.psi_fixed, seed)
    psi = model.encoder.psi
    optimizer = torch.optim.SGD(list(model.heads.parameters()), lr=config.head_lr)
    balancer = make_seeded_balancer(name, config, seed)
    steps, radii = 0, head_certificate(model, batch)
    while steps < config.head_steps and max(radii) > config.head_tolerance:
        for _ in range(config.head_check_every):
            optimizer.zero_grad()
            psi.grad = None
            balanced_step(model, balancer, batch, [psi])
            optimizer.step()
        steps += config.head_check_every
        radii = head_certificate(model, batch)
    weights, bias = head_arrays(model)
    ls_weights, ls_bias = least_squares_heads(model, batch)
    closed_weights, closed_bias = optimal_heads(study_scm(config, v), config.psi_fixed)
    trained = np.stack([weights[:, 0], bias], axis=1)
    closed_form = np.stack([closed_weights[:, 0], closed_bias], axis=1)
    standard_errors = least_squares_standard_errors(model, batch)
    deviation = np.abs(trained - closed_form)
    distances = np.linalg.norm(
        trained - np.stack([ls_weights[:, 0], ls_bias], axis=1), axis=1
    ).tolist()
    rounding = 64 * float(torch.finfo(dtype()).eps) * (1.0 + float(np.abs(ls_weights).max()))
    return {
        "weights": weights[:, 0],
        "bias": bias,
        "least_squares_weights": ls_weights[:, 0],
        "closed_form_weights": closed_weights[:, 0],
        "closed_form_bias": closed_bias,
        "standard_errors": standard_errors,
        "deviation_in_standard_errors": (deviation - config.head_tolerance) / standard_errors,
        "distance": distances,
        "radius": radii,
        "within": bool(all(d <= r + rounding for d, r in zip(distances, radii, strict=True))),
        "steps": steps,
        "converged": bool(max(radii) <= config.head_tolerance),
        "agrees_with_closed_form": agrees_with_closed_form(
            trained, closed_form, standard_errors, config
        ),
    }
