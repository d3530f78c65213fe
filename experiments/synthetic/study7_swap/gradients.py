"""The setting of study 7 and its measurement: autograd through the library's objective against
the derived per-sample gradient on sampled batches."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from experiments.stats import estimate
from experiments.study import Context
from experiments.synthetic.common import seeds_for
from experiments.synthetic.study7_swap.derivation import (
    VARIANTS,
    derived_statements,
    expected_gradient,
    numeric,
)


@dataclass(frozen=True)
class Config:
    seeds: int = 3
    batch: int = 2048
    psis: tuple[float, ...] = (0.2, 0.5, 0.9, 1.3)
    variances: tuple[float, ...] = (0.0, 0.25, 1.0)
    means: tuple[float, ...] = (0.0, 0.5)
    beta: float = 1.0
    noise_std: float = 0.1
    head: tuple[float, float] = (0.7, 0.2)


CONFIGS = {
    "smoke": Config(seeds=3, batch=256, psis=(0.3, 1.0), variances=(0.0, 1.0), means=(0.0, 0.5)),
    "fast": Config(),
    "full": Config(seeds=10, batch=8192, psis=(0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5)),
}


def measured_and_derived(
    variant: str,
    psi: float,
    head: tuple[float, float],
    v: float,
    mu: float,
    config: Config,
    seed: int,
) -> dict[str, float]:
    """Autograd gradient on psi of the variant's loss on one batch, and the derived per-sample
    gradient averaged over the same batch and the same derangement."""
    import torch

    from coremtl.counterfactual import derangement
    from coremtl.objective import CoreMTLObjective
    from experiments.synthetic.angle_model import angle_model, set_heads, squared_losses
    from scm.generate import scalar_scm
    from scm.model import ResidualLaw
    from scm.sampling import sample

    scm = scalar_scm(v, beta=config.beta, noise_std=config.noise_std)
    scm = replace(scm, source=ResidualLaw(np.array([mu]), scm.source.cov))
    drawn = sample(scm, config.batch, "source", seed)
    batch = {
        key: torch.as_tensor(value, dtype=torch.float64)
        for key, value in (("x", drawn.x), ("y", drawn.y))
    }
    model = angle_model(scm, psi, ["y"], tied_decoder=True)
    set_heads(model, np.array([[head[0]]]), np.array([head[1]]))
    generator = torch.Generator().manual_seed(seed)
    mirror = torch.Generator().manual_seed(seed)
    torch.rand((), generator=mirror)
    permutation = derangement(config.batch, mirror).numpy()
    forward = model(batch["x"])
    if variant == "task":
        loss = squared_losses(forward.predictions, batch)["y"]
    elif variant == "tied":
        z_s_cf, _ = model.encode(model.decode(forward.z_s, forward.z_r[permutation]))
        loss = squared_losses(model.predict(z_s_cf), batch)["y"]
    else:
        objective = CoreMTLObjective(
            cka_weight=0.0,
            cfa_weight=1.0,
            cfa_probability=1.0,
            reconstruction_weight=0.0,
            cfa_mode=variant,
        )
        loss = objective.terms(model, batch, forward, 0, squared_losses, generator)["cfa"]
    (gradient,) = torch.autograd.grad(loss, model.encoder.psi, allow_unused=True)
    measured = 0.0 if gradient is None else float(gradient)
    per_sample = numeric(variant, with_samples=True)
    z_s, z_r = drawn.z_s[:, 0], drawn.z_r[:, 0] - mu
    eps = drawn.y[:, 0] - config.beta * drawn.z_s[:, 0]
    values = per_sample(
        psi,
        head[0],
        head[1],
        config.beta,
        mu,
        v,
        config.noise_std,
        z_s,
        z_r,
        z_s[permutation],
        z_r[permutation],
        eps,
    )
    values = np.broadcast_to(values, z_s.shape).astype(float)
    derived = estimate(values)
    return {
        "measured": measured,
        "derived_on_batch": derived.mean,
        "standard_error": derived.se,
        "mean_abs_per_sample": float(np.abs(values).mean()),
        "expected": float(
            expected_gradient(variant, psi, head[0], head[1], config.beta, mu, v, config.noise_std)
        ),
    }


def measure(context: Context) -> dict:
    """Autograd against the derivation on every (variant, psi, v, mu, seed) batch, and the expected
    gradient curves of the figure."""
    from tqdm import tqdm

    config = context.config
    cases = [
        (variant, psi, v, mu)
        for variant in VARIANTS
        for psi in config.psis
        for v in config.variances
        for mu in config.means
    ]
    rows = []
    rounding = 64 * np.finfo(np.float64).eps * config.batch
    for variant, psi, v, mu in tqdm(cases, desc="study 7 swaps", disable=not context.progress):
        for run_seed in seeds_for(context.seed, config.seeds):
            numbers = measured_and_derived(variant, psi, config.head, v, mu, config, run_seed)
            difference = abs(numbers["measured"] - numbers["derived_on_batch"])
            numbers.update(
                variant=variant,
                psi=psi,
                v=v,
                mu=mu,
                seed=run_seed,
                agrees_exactly=bool(
                    difference <= rounding * max(numbers["mean_abs_per_sample"], 1e-300)
                ),
                z_expected=(numbers["derived_on_batch"] - numbers["expected"])
                / max(numbers["standard_error"], 1e-300),
            )
            rows.append(numbers)
    curves = {}
    grid = np.linspace(0.0, math.pi / 2, 61)
    w, b = config.head
    for v in config.variances:
        for variant in ("task", "input"):
            curves[f"{variant}|v={v}|fixed"] = expected_gradient(
                variant, grid, w, b, config.beta, 0.0, v, config.noise_std
            ).tolist()
            optimal_w = np.cos(grid) / (np.cos(grid) ** 2 + v * np.sin(grid) ** 2) * config.beta
            curves[f"{variant}|v={v}|optimal"] = expected_gradient(
                variant, grid, optimal_w, 0.0, config.beta, 0.0, v, config.noise_std
            ).tolist()
    return {"derived": derived_statements(), "rows": rows, "grid": grid, "curves": curves}
