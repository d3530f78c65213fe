"""Study 11's measurements: per cell ``(psi, v, delta, direction)`` the shifted SCM, the head,
S1's closed-form gap, S2's bound and the paired Monte Carlo gap; and the closed-form curves of
the figure."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from experiments.stats import estimate, independent_se
from experiments.study import Context
from experiments.synthetic.study11_closed_form.setting import Config, directions


def study_scms(config: Config, seed: int) -> dict[float, object]:
    """The unshifted SCM (``Sigma_T = Sigma_S = v A``) for each residual variance ``v``."""
    from scm.generate import haar_orthogonal, random_psd
    from scm.model import LinearGaussianSCM, ResidualLaw
    from scm.seeds import derive_seed

    rng = np.random.default_rng(derive_seed(seed, "study11", "scm"))
    sigma_s = random_psd(config.k, rng)
    shape = random_psd(config.k, rng)
    shape *= config.k / np.trace(shape)
    beta = rng.standard_normal((1, config.k))
    mixing = haar_orthogonal(2 * config.k, rng)
    zero = np.zeros(config.k)
    return {
        v: LinearGaussianSCM(
            sigma_s=sigma_s,
            source=ResidualLaw(zero, v * shape),
            target=ResidualLaw(zero, v * shape),
            beta=beta,
            noise_std=np.array([config.noise_std]),
            mixing=mixing,
        )
        for v in config.variances
    }


def head_at(scm, psi: float, config: Config) -> tuple[np.ndarray, float]:
    """The cell's head ``(w, b)``: the source-optimal one at ``psi`` or the config's."""
    from scm.closed_form import optimal_heads

    if config.head is not None:
        return np.asarray(config.head, dtype=float), float(config.bias)
    weights, bias = optimal_heads(scm, psi, "source")
    return weights[0], float(bias[0])


def shifted(scm, size: float, direction: str, head: np.ndarray, seed: int):
    """``scm`` with ``Sigma_T = Sigma_S + D``, ``||D||_F = size``, along ``direction``."""
    from scm.generate import shifted_covariance
    from scm.model import ResidualLaw
    from scm.seeds import derive_seed

    kind = direction.split(":")[0]
    rng = np.random.default_rng(derive_seed(seed, "study11", "direction", direction))
    cov = shifted_covariance(scm.source.cov, size, kind, rng, head)
    return replace(scm, target=ResidualLaw(scm.target.mean, cov))


def closed_form_gap(scm, psi: float, head: np.ndarray, bias: float) -> float:
    """S1's gap ``s^2 w^T (Sigma_T - Sigma_S) w + (s w^T mu_T + b)^2 - (s w^T mu_S + b)^2``."""
    from scm.closed_form import ood_gap_formula

    return float(ood_gap_formula(scm, psi, head[None, :], np.array([bias]))[0])


def worst_case_bound(psi: float, head: np.ndarray, size: float) -> float:
    """S2's ``sup_{||D||_F <= delta} (R_T - R_S) = s^2 ||w||^2 delta``."""
    from scm.closed_form import worst_case_gap

    return float(worst_case_gap(psi, head, size))


def monte_carlo_gap(scm, psi: float, head: np.ndarray, bias: float, samples: int, seed: int):
    """Paired Monte Carlo gap on ``samples`` source and target draws with common random numbers,
    its paired standard error and the one independent samples of that size would give."""
    from scm.encoder import encode
    from scm.sampling import sample

    losses = {}
    for env in ("source", "target"):
        drawn = sample(scm, samples, env, seed)
        semantic, _ = encode(scm, psi, drawn.x)
        losses[env] = (drawn.y[:, 0] - semantic @ head - bias) ** 2
    gap = estimate(losses["target"] - losses["source"])
    return {
        "monte_carlo": gap.mean,
        "standard_error": gap.se,
        "independent_standard_error": independent_se(losses["source"], losses["target"]),
        "source_risk": float(losses["source"].mean()),
        "target_risk": float(losses["target"].mean()),
    }


def curves(config: Config, scms: dict, seed: int) -> dict:
    """S1's gap per random direction and S2's bound on a fine psi grid, per ``(v, delta)``."""
    grid = np.linspace(0.0, max(config.psis), config.curve_points)
    found: dict = {"psi": grid, "sin2": np.sin(grid) ** 2}
    for v, scm in scms.items():
        heads = [head_at(scm, psi, config) for psi in grid]
        for size in config.shift_sizes:
            entry = {
                "bound": [
                    worst_case_bound(psi, w, size) for psi, (w, _) in zip(grid, heads, strict=True)
                ]
            }
            for direction in directions(config):
                if direction.startswith("random"):
                    target = shifted(scm, size, direction, heads[0][0], seed)
                    entry[direction] = [
                        closed_form_gap(target, psi, w, b)
                        for psi, (w, b) in zip(grid, heads, strict=True)
                    ]
            found[f"{v}|{size}"] = entry
    return found


def measure(context: Context) -> dict:
    """Every cell's closed forms and Monte Carlo gap, and the curves of the figure."""
    from tqdm import tqdm

    from proofs.montecarlo import FLOAT64_ROUNDOFF
    from scm.seeds import derive_seed

    config, seed = context.config, context.seed
    scms = study_scms(config, seed)
    jobs = [
        (i, psi, j, v, m, size, direction)
        for i, psi in enumerate(config.psis)
        for j, v in enumerate(config.variances)
        for m, size in enumerate(config.shift_sizes)
        for direction in directions(config)
    ]
    cells = []
    for i, psi, j, v, m, size, direction in tqdm(
        jobs, desc="study 11 closed form vs MC", disable=not context.progress
    ):
        head, bias = head_at(scms[v], psi, config)
        scm = shifted(scms[v], size, direction, head, seed)
        draws = derive_seed(seed, "study11", "draws", i, j, m, direction)
        measured = monte_carlo_gap(scm, psi, head, bias, config.samples, draws)
        cells.append(
            {
                "psi": psi,
                "sin2": math.sin(psi) ** 2,
                "variance": v,
                "shift_size": size,
                "direction": direction,
                "head_norm_sq": float(head @ head),
                "closed_form": closed_form_gap(scm, psi, head, bias),
                "bound": worst_case_bound(psi, head, size),
                **measured,
                "roundoff": FLOAT64_ROUNDOFF * (measured["source_risk"] + measured["target_risk"]),
            }
        )
    return {"cells": cells, "curves": curves(config, scms, seed)}
