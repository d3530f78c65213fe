"""Study 5's runs: the scalar SCM, the objectives and the gradient descent on the angle.

Scalar setting S (``Sigma_s = 1``, ``Sigma_S = v``, zero means) with the angle-parametrised model
(:mod:`experiments.synthetic.angle_model`) and the exact tied decoder. From several initial angles
``psi_0``, full-batch gradient descent (plain steps, so a flat objective does not move psi)
minimises each objective of :data:`OBJECTIVES` on ``n`` source samples; ``measure`` records the
angle each run reaches and the population CKA curves of the figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from experiments.study import Context
from experiments.synthetic.common import seeds_for

OBJECTIVES = ("cka", "task", "cka+task", "cka+task+rec", "cka+task+rec+cfa")


@dataclass(frozen=True)
class Config:
    seeds: int = 3
    samples: int = 512
    variances: tuple[float, ...] = (1.0, 0.25, 0.05)
    starts: tuple[float, ...] = (0.4, 1.2)
    steps: int = 150
    lr: float = 0.1
    cka_weight: float = 1.0
    reconstruction_weight: float = 1.0
    cfa_weight: float = 1.0
    betas: tuple[float, ...] = (1.0, -0.5)
    noise_std: float = 0.1


CONFIGS = {
    "smoke": Config(samples=128, variances=(1.0, 0.25), starts=(1.2,), steps=40, lr=0.2),
    "fast": Config(),
    "full": Config(
        seeds=10,
        samples=4096,
        variances=(1.0, 0.5, 0.25, 0.05, 2.0, 4.0),
        starts=(0.2, 0.4, 0.7, 1.0, 1.2, 1.4),
        steps=800,
        lr=0.01,
    ),
}


def study_scm(config: Config, v: float):
    from dataclasses import replace

    from scm.generate import scalar_scm

    base = scalar_scm(v, noise_std=config.noise_std)
    return replace(
        base,
        beta=np.asarray(config.betas, dtype=float)[:, None],
        noise_std=np.full(len(config.betas), config.noise_std),
    )


def train_angle(config: Config, objective_name: str, v: float, psi_start: float, seed: int) -> dict:
    """Final angle (and its trajectory) under ``objective_name`` from ``psi_start``."""
    import torch

    from coremtl.objective import CoreMTLObjective
    from experiments.synthetic.angle_model import angle_model, squared_losses
    from scm.sampling import sample

    scm = study_scm(config, v)
    drawn = sample(scm, config.samples, "source", seed)
    batch = {"x": torch.as_tensor(drawn.x), "y": torch.as_tensor(drawn.y)}
    generator = torch.Generator().manual_seed(seed)
    names = [f"t{index}" for index in range(len(config.betas))]
    model = angle_model(
        scm, psi_start, names, tied_decoder=True, head_scale=1.0, generator=generator
    )
    parts = objective_name.split("+")
    objective = CoreMTLObjective(
        cka_weight=config.cka_weight if "cka" in parts else 0.0,
        cka_warmup_steps=0,
        cfa_probability=1.0,
        reconstruction_weight=config.reconstruction_weight if "rec" in parts else 0.0,
        cfa_weight=config.cfa_weight if "cfa" in parts else 0.0,
        cfa_mode="input",
    )
    trainable = (
        [model.encoder.psi, *model.heads.parameters()] if "task" in parts else [model.encoder.psi]
    )
    optimizer = torch.optim.SGD(trainable, lr=config.lr)
    trajectory = [psi_start]
    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        forward = model(batch["x"])
        terms = objective.terms(model, batch, forward, step, squared_losses, generator)
        loss = sum(terms.values(), torch.zeros((), dtype=torch.float64))
        if "task" in parts:
            loss = loss + sum(squared_losses(forward.predictions, batch).values())
        if loss.requires_grad:
            loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.encoder.psi.clamp_(0.0, math.pi / 2)
        trajectory.append(float(model.encoder.psi.detach()))
    return {"final_psi": trajectory[-1], "trajectory": trajectory[:: max(1, config.steps // 50)]}


def measure(context: Context) -> dict:
    """The angle every (objective, v, psi_0, seed) run reaches, and the population CKA curves."""
    from tqdm import tqdm

    from scm.closed_form import population_cka

    config = context.config
    jobs = [
        (o, v, p, s)
        for o in OBJECTIVES
        for v in config.variances
        for p in config.starts
        for s in seeds_for(context.seed, config.seeds)
    ]
    rows = []
    for objective_name, v, psi_start, run_seed in tqdm(
        jobs, desc="study 5 CKA", disable=not context.progress
    ):
        record = train_angle(config, objective_name, v, psi_start, run_seed)
        record.update(objective=objective_name, v=v, psi_start=psi_start, seed=run_seed)
        rows.append(record)
    grid = np.linspace(0.0, math.pi / 2, 91)
    curves = {
        str(v): [population_cka(study_scm(config, v), float(p)) for p in grid]
        for v in sorted({*config.variances, 4.0})
    }
    return {"rows": rows, "grid": grid, "population_cka": curves}
