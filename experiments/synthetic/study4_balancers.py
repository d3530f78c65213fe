"""Study 4: why balancers cannot fix psi (docs/THEORY.md S3 and S4).

Scalar setting S with K tasks (``Sigma_s = 1``, ``Sigma_S = v``, zero means, ``Y_t = beta_t Z_s +
eps_t``), the encoder parametrised by the angle itself (:mod:`experiments.synthetic.angle_model`),
full-batch training on ``n`` source samples, every balancer through ``coremtl.balancers``.

A. Heads at fixed psi (S3). Heads train with psi frozen. Each task's loss is a quadratic in its own
   head ``theta_t = (w_t, b_t)`` with Hessian ``H_t = 2 E_n[a a^T]``, ``a = (Zhat_s, 1)``, so the
   distance to the least-squares head obeys ``||theta_t - theta_t^LS|| <= ||grad L_t(theta_t)|| /
   lambda_min(H_t)`` at every point. Training stops once that certified distance is at most
   ``head_tolerance`` for every task (checked every ``head_check_every`` steps, at most
   ``head_steps`` steps). S3 predicts that every balancer then stands at the closed-form heads
   ``w_t* = c beta_t / (c^2 + v s^2)``, ``b_t* = 0`` (:func:`scm.closed_form.optimal_heads`): the
   check is that every run converges and that each coordinate of its heads is within
   ``head_tolerance + z SE`` of ``(w_t*, b_t*)``, with ``SE`` the exact least-squares standard error
   of the sample (the residual of ``w_t*`` is Gaussian and independent of ``Zhat_s``) and ``z`` the
   two-sided Bonferroni quantile at family level ``head_alpha`` over all the study's coordinates.
   Both can fail: a balancer that stalls (zero weight on a task, a Pareto-stationary point that is
   not optimal) does not converge; heads other than S3's miss ``w_t*`` by many standard errors.
B. Profile dynamics (S4). Heads are reset to their least-squares optimum at the current psi before
   every step (profile risk ``R*_t(psi)``) and psi takes plain gradient steps of size ``eta`` on the
   balancer's combination. For a combination ``sum_t lambda_t g_t`` (projections only shorten the
   ``g_t``), ``|psi_T - psi_0| <= eta T max_step(sum_t |lambda_t|) max_t max_psi |dR*_t/dpsi|``
   with the population derivative ``dR*_t/dpsi = 2 beta_t^2 v s c / (c^2 + v s^2)^2``.
C. Joint training. Heads and psi from one initialisation, plain gradient steps, every balancer,
   several ``v``: the psi trajectory, the final psi and the OOD gap (closed form, S1) it leaves for a
   target residual variance ``v + target_shift``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from experiments.synthetic.common import band_text, jsonable, mean_std, seeds_for

NAME = "Balancers cannot fix psi"
DTYPE_NAME = "float32"
STATEMENTS = ("S3", "S4")


@dataclass(frozen=True)
class Config:
    seeds: int = 3
    samples: int = 512
    balancers: tuple[str, ...] = ("ew", "pcgrad", "mgda", "gradnorm", "cagrad", "imtl", "stch")
    variances: tuple[float, ...] = (0.0, 0.1, 1.0)
    betas: tuple[float, ...] = (1.0, -0.6, 0.4)
    noise_stds: tuple[float, ...] = (0.1, 0.3, 0.5)
    psi_fixed: float = 0.6
    psi_start: float = 0.6
    head_steps: int = 400
    head_lr: float = 0.25
    head_tolerance: float = 1e-3
    head_check_every: int = 5
    head_alpha: float = 0.01
    profile_steps: int = 30
    profile_lr: float = 0.1
    joint_steps: int = 80
    joint_lr: float = 0.2
    record_every: int = 2
    target_shift: float = 1.0


CONFIGS = {
    "smoke": Config(
        samples=128,
        balancers=("ew", "pcgrad", "mgda"),
        variances=(0.0, 0.3),
        profile_steps=10,
        joint_steps=20,
    ),
    "fast": Config(),
    "full": Config(
        seeds=10,
        samples=4096,
        balancers=(
            "ew",
            "pcgrad",
            "mgda",
            "gradnorm",
            "cagrad",
            "nashmtl",
            "imtl",
            "fairgrad",
            "upgrad",
            "dualproj",
            "alignedmtl",
            "stch",
            "uw",
            "dwa",
            "famo",
        ),
        variances=(0.0, 0.01, 0.05, 0.1, 0.3, 1.0, 3.0),
        profile_steps=300,
        profile_lr=0.05,
        joint_steps=1000,
        joint_lr=0.05,
        record_every=10,
    ),
}


def _dtype():
    import torch

    return getattr(torch, DTYPE_NAME)


def study_scm(config: Config, v: float, target_variance: float | None = None):
    """The scalar SCM with ``K = len(betas)`` tasks, residual variance ``v`` in the source."""
    from scm.generate import scalar_scm

    base = scalar_scm(v, v if target_variance is None else target_variance)
    return replace(
        base,
        beta=np.asarray(config.betas, dtype=float)[:, None],
        noise_std=np.asarray(config.noise_stds, dtype=float),
    )


def task_names(config: Config) -> list[str]:
    return [f"t{index}" for index in range(len(config.betas))]


def profile_derivative_max(config: Config, v: float) -> np.ndarray:
    """``max_psi |dR*_t/dpsi|`` per task on a grid of 20001 angles (S4's scalar formula)."""
    psi = np.linspace(0.0, math.pi / 2, 20001)
    c, s = np.cos(psi), np.sin(psi)
    shape = 2.0 * v * s * c / (c**2 + v * s**2) ** 2 if v > 0 else np.zeros_like(psi)
    return np.array([beta**2 * np.max(np.abs(shape)) for beta in config.betas])


def _batch(config: Config, v: float, seed: int):
    import torch

    from scm.sampling import sample

    drawn = sample(study_scm(config, v), config.samples, "source", seed)
    return {
        "x": torch.as_tensor(drawn.x, dtype=_dtype()),
        "y": torch.as_tensor(drawn.y, dtype=_dtype()),
    }


def _model(config: Config, v: float, psi: float, seed: int):
    import torch

    from experiments.synthetic.angle_model import angle_model

    generator = torch.Generator().manual_seed(seed)
    return angle_model(
        study_scm(config, v),
        psi,
        task_names(config),
        head_scale=1.0,
        generator=generator,
        dtype=_dtype(),
    )


def least_squares_heads(model, batch) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares heads of every task on ``Zhat_s`` of the batch (with intercept)."""
    import torch

    with torch.no_grad():
        z_s, _ = model.encode(batch["x"])
        design = torch.cat([z_s, torch.ones_like(z_s[:, :1])], dim=1)
        solution = torch.linalg.lstsq(design, batch["y"]).solution
    return solution[:-1].T.numpy(), solution[-1].numpy()


def _balanced_step(model, balancer, batch, shared_params):
    from experiments.synthetic.angle_model import squared_losses

    forward = model(batch["x"])
    losses = squared_losses(forward.predictions, batch)
    return balancer.backward(losses, forward.z_s, shared_params), forward


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
        radii.append(float(torch.sqrt(sum(g.square().sum() for g in grads))) / hessian_min)
    return radii


def least_squares_standard_errors(model, batch) -> np.ndarray:
    """``(K, 2)`` standard errors of the least-squares ``(w_t, b_t)`` on ``Zhat_s`` of the batch:
    ``sqrt(diag(sigma_t^2 (A^T A)^-1))`` with ``sigma_t^2 = RSS_t / (n - 2)``, in float64."""
    import torch

    with torch.no_grad():
        z_s, _ = model.encode(batch["x"])
    design = np.concatenate([z_s.double().numpy(), np.ones((z_s.shape[0], 1))], axis=1)
    targets = batch["y"].double().numpy()
    solution, *_ = np.linalg.lstsq(design, targets, rcond=None)
    residual_variance = ((targets - design @ solution) ** 2).sum(axis=0) / (design.shape[0] - 2)
    inverse_diagonal = np.diag(np.linalg.inv(design.T @ design))
    return np.sqrt(residual_variance[:, None] * inverse_diagonal[None, :])


def head_quantile(config: Config) -> float:
    """Two-sided Bonferroni normal quantile over every coordinate compared in part A (the data of
    a seed and variance are shared by all balancers, so they count once)."""
    from scipy.stats import norm

    comparisons = 2 * len(config.betas) * len(config.variances) * config.seeds
    return float(norm.isf(config.head_alpha / (2 * comparisons)))


def agrees_with_closed_form(
    trained: np.ndarray, closed_form: np.ndarray, standard_errors: np.ndarray, config: Config
) -> bool:
    """Whether every coordinate of the trained ``(K, 2)`` heads is within
    ``head_tolerance + z SE`` of the closed-form heads (``z`` from :func:`head_quantile`)."""
    allowed = config.head_tolerance + head_quantile(config) * standard_errors
    return bool(np.all(np.abs(trained - closed_form) <= allowed))


def fixed_psi_heads(config: Config, name: str, v: float, seed: int) -> dict:
    """Part A: train heads only at ``psi_fixed`` until S3's certificate is below
    ``head_tolerance``; compare with the closed-form heads."""
    import torch

    from coremtl.balancers import make_balancer
    from experiments.synthetic.angle_model import head_arrays
    from scm.closed_form import optimal_heads

    torch.manual_seed(seed)
    batch = _batch(config, v, seed)
    model = _model(config, v, config.psi_fixed, seed)
    psi = model.encoder.psi
    heads = [p for p in model.heads.parameters()]
    optimizer = torch.optim.SGD(heads, lr=config.head_lr)
    balancer = make_balancer(name, task_names(config), **_seeded(name, seed))
    steps, radii = 0, head_certificate(model, batch)
    while steps < config.head_steps and max(radii) > config.head_tolerance:
        for _ in range(config.head_check_every):
            optimizer.zero_grad()
            psi.grad = None
            _balanced_step(model, balancer, batch, [psi])
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
    rounding = 64 * float(torch.finfo(_dtype()).eps) * (1.0 + float(np.abs(ls_weights).max()))
    converged = bool(max(radii) <= config.head_tolerance)
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
        "converged": converged,
        "agrees_with_closed_form": agrees_with_closed_form(
            trained, closed_form, standard_errors, config
        ),
    }


def _seeded(name: str, seed: int) -> dict:
    from coremtl.balancers import balancer_options

    return {"seed": seed} if "seed" in balancer_options(name) else {}


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
    """Part B: psi steps with heads reset to least squares before each step."""
    import torch

    from coremtl.balancers import make_balancer
    from experiments.synthetic.angle_model import set_heads

    torch.manual_seed(seed)
    batch = _batch(config, v, seed)
    model = _model(config, v, config.psi_start, seed)
    psi = model.encoder.psi
    balancer = make_balancer(name, task_names(config), **_seeded(name, seed))
    weight_sums, rounding = [], 0.0
    epsilon = float(torch.finfo(_dtype()).eps)
    for _ in range(config.profile_steps):
        set_heads(model, *least_squares_heads(model, batch))
        model.zero_grad(set_to_none=True)
        weights, forward = _balanced_step(model, balancer, batch, [psi])
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


def joint_training(config: Config, name: str, v: float, seed: int) -> dict:
    """Part C: heads and psi trained together with plain gradient steps."""
    import torch

    from coremtl.balancers import make_balancer
    from experiments.synthetic.angle_model import head_arrays
    from scm.closed_form import ood_gap

    torch.manual_seed(seed)
    batch = _batch(config, v, seed)
    model = _model(config, v, config.psi_start, seed)
    psi = model.encoder.psi
    balancer = make_balancer(name, task_names(config), **_seeded(name, seed))
    parameters = [psi, *model.heads.parameters()]
    optimizer = torch.optim.SGD([*parameters, *balancer.parameters()], lr=config.joint_lr)
    trajectory = [float(psi.detach())]
    for step in range(1, config.joint_steps + 1):
        optimizer.zero_grad(set_to_none=True)
        _balanced_step(model, balancer, batch, [psi])
        optimizer.step()
        with torch.no_grad():
            psi.clamp_(0.0, math.pi / 2)
        if step % config.record_every == 0:
            trajectory.append(float(psi.detach()))
    weights, bias = head_arrays(model)
    target = study_scm(config, v, v + config.target_shift)
    gap = ood_gap(target, float(psi.detach()), weights, bias)
    return {"trajectory": trajectory, "final_psi": float(psi.detach()), "gap": float(np.mean(gap))}


def run(config: Config, seed: int = 0, device: str = "cpu", progress: bool = False) -> dict:
    from tqdm import tqdm

    seeds = seeds_for(seed, config.seeds)
    v_heads = config.variances[len(config.variances) // 2]
    jobs = [("heads", name, v_heads, s) for name in config.balancers for s in seeds]
    jobs += [
        (part, name, v, s)
        for part in ("profile", "joint")
        for name in config.balancers
        for v in config.variances
        for s in seeds
    ]
    functions = {"heads": fixed_psi_heads, "profile": profile_drift, "joint": joint_training}
    raw: dict[str, list] = {"heads": [], "profile": [], "joint": []}
    for part, name, v, run_seed in tqdm(jobs, desc="study 4 balancers", disable=not progress):
        record = functions[part](config, name, v, run_seed)
        record.update(balancer=name, v=v, seed=run_seed)
        raw[part].append(record)

    spread = []
    for run_seed in seeds:
        rows = [r for r in raw["heads"] if r["seed"] == run_seed]
        stacked = np.array([np.concatenate([r["weights"], r["bias"]]) for r in rows])
        spread.append(float(np.max(np.ptp(stacked, axis=0))))
    heads_converged = all(r["converged"] for r in raw["heads"])
    heads_agree = all(r["agrees_with_closed_form"] for r in raw["heads"])
    slowest_row = max(raw["heads"], key=lambda r: r["steps"])
    farthest = max(float(np.max(r["deviation_in_standard_errors"])) for r in raw["heads"])
    profile_holds = all(r["holds"] for r in raw["profile"])
    joint_summary = {}
    for name in config.balancers:
        for v in config.variances:
            chosen = [r for r in raw["joint"] if r["balancer"] == name and r["v"] == v]
            joint_summary[f"{name}|{v}"] = {
                "final_psi": mean_std(r["final_psi"] for r in chosen),
                "gap": mean_std(r["gap"] for r in chosen),
            }
    zero_v_drift = max((r["drift"] for r in raw["profile"] if r["v"] == 0.0), default=float("nan"))
    ends_by_v = {
        v: mean_std(r["final_psi"] for r in raw["joint"] if r["v"] == v) for v in config.variances
    }
    gap_by_v = {
        v: mean_std(r["gap"] for r in raw["joint"] if r["v"] == v) for v in config.variances
    }
    ends_text = ", ".join(f"v={v}: {band_text(ends_by_v[v])}" for v in config.variances)
    finding = (
        f"at psi={config.psi_fixed} every one of the {len(config.balancers)} balancers' heads "
        f"converges (certified distance to least squares <= {config.head_tolerance:g}): "
        f"{heads_converged} (slowest {slowest_row['balancer']}, {slowest_row['steps']} steps) "
        f"and lies within {config.head_tolerance:g} + {head_quantile(config):.2f} SE of the "
        f"closed-form heads of S3: {heads_agree} (largest excess {farthest:.2f} SE; spread "
        f"between balancers {max(spread):.2g}); "
        f"profile drift within eta*T*max|dR*/dpsi| in {sum(r['holds'] for r in raw['profile'])}/"
        f"{len(raw['profile'])} runs (max drift at v=0: {zero_v_drift:.2g} rad); joint training "
        f"from psi0={config.psi_start} ends at psi ({ends_text}, all balancers)"
    )
    verdict = "agrees" if heads_converged and heads_agree and profile_holds else "contradicts"
    return jsonable(
        {
            "config": config,
            "heads": raw["heads"],
            "heads_spread": spread,
            "heads_all_converged": heads_converged,
            "heads_all_agree_with_closed_form": heads_agree,
            "profile": raw["profile"],
            "profile_all_hold": profile_holds,
            "joint": raw["joint"],
            "joint_summary": joint_summary,
            "final_psi_by_v": ends_by_v,
            "gap_by_v": gap_by_v,
            "finding": finding,
            "verdict": verdict,
        }
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    config = result["config"]
    variances = config["variances"]
    names = config["balancers"]
    palette = dict(zip(names, colours(len(names)), strict=True))
    figure, axes = new_figure(len(variances), 1, width=3.2, height=3.0)
    for column, v in enumerate(variances):
        axis = axes[0, column]
        for name in names:
            runs = [
                r["trajectory"] for r in result["joint"] if r["balancer"] == name and r["v"] == v
            ]
            array = np.asarray(runs)
            steps = np.arange(array.shape[1]) * config["record_every"]
            mean, std = (
                array.mean(axis=0),
                array.std(axis=0, ddof=1) if len(runs) > 1 else 0 * array[0],
            )
            axis.plot(steps, mean, color=palette[name], label=name)
            axis.fill_between(steps, mean - std, mean + std, color=palette[name], alpha=0.15)
        axis.set_title(f"S4: psi under joint training, v = {v}")
        axis.set_xlabel("step")
        axis.set_ylabel("psi (rad)")
    axes[0, 0].legend(ncol=2)
    paths = save_figure(figure, directory, "study4_psi_trajectories")

    figure, axes = new_figure(2, 1)
    axis = axes[0, 0]
    for name in names:
        rows = [r for r in result["profile"] if r["balancer"] == name and r["bound"] > 0]
        axis.scatter(
            [r["bound"] for r in rows],
            [r["drift"] for r in rows],
            s=14,
            color=palette[name],
            label=name,
        )
    bounds = [r["bound"] for r in result["profile"] if r["bound"] > 0]
    if bounds:
        line = np.array([min(bounds), max(bounds)])
        axis.plot(line, line, "k--", label="drift = bound")
        axis.set_xscale("log")
        drifts = [r["drift"] for r in result["profile"] if r["drift"] > 0]
        axis.set_yscale("symlog", linthresh=min(drifts) if drifts else 1e-6)
        axis.set_ylim(bottom=0)
    axis.set_title("S4: profile drift |psi_T - psi_0| vs eta T max|dR*/dpsi|")
    axis.set_xlabel("bound (rad)")
    axis.set_ylabel("measured drift (rad)")
    axis.legend(ncol=2)
    axis = axes[0, 1]
    for name in names:
        rows = [r for r in result["heads"] if r["balancer"] == name]
        for r in rows:
            axis.scatter(r["least_squares_weights"], r["weights"], s=14, color=palette[name])
        axis.scatter([], [], color=palette[name], label=name)
    axis.axline((0, 0), slope=1, color="k", ls="--", lw=0.8)
    axis.set_title(f"S3: heads at fixed psi = {config['psi_fixed']} per balancer")
    axis.set_xlabel("least-squares head weight w_t")
    axis.set_ylabel("trained head weight w_t")
    axis.legend(ncol=2)
    return paths + save_figure(figure, directory, "study4_profile_and_heads")
