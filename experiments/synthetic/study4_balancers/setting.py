"""Study 4's setting: the scalar SCM with K tasks, its settings per mode, the angle model and the
pieces every part shares (a source batch, least-squares heads, one balanced backward pass).

Scalar setting S with K tasks (``Sigma_s = 1``, ``Sigma_S = v``, zero means, ``Y_t = beta_t Z_s +
eps_t``); the encoder is parametrised by the angle itself (:mod:`experiments.synthetic.angle_model`)
and trained in float32 on ``samples`` source draws, full batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

DTYPE_NAME = "float32"


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


def dtype():
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


def source_batch(config: Config, v: float, seed: int) -> dict:
    """``samples`` source draws of the SCM at residual variance ``v`` as float32 tensors."""
    import torch

    from scm.sampling import sample

    drawn = sample(study_scm(config, v), config.samples, "source", seed)
    return {
        "x": torch.as_tensor(drawn.x, dtype=dtype()),
        "y": torch.as_tensor(drawn.y, dtype=dtype()),
    }


def model_at(config: Config, v: float, psi: float, seed: int):
    """The angle model at ``psi`` with seeded random heads."""
    import torch

    from experiments.synthetic.angle_model import angle_model

    generator = torch.Generator().manual_seed(seed)
    return angle_model(
        study_scm(config, v),
        psi,
        task_names(config),
        head_scale=1.0,
        generator=generator,
        dtype=dtype(),
    )


def make_seeded_balancer(name: str, config: Config, seed: int):
    """Balancer ``name`` over the study's tasks, seeded when it draws at random."""
    from coremtl.balancers import balancer_options, make_balancer

    options = {"seed": seed} if "seed" in balancer_options(name) else {}
    return make_balancer(name, task_names(config), **options)


def least_squares_heads(model, batch) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares heads of every task on ``Zhat_s`` of the batch (with intercept)."""
    import torch

    with torch.no_grad():
        z_s, _ = model.encode(batch["x"])
        design = torch.cat([z_s, torch.ones_like(z_s[:, :1])], dim=1)
        solution = torch.linalg.lstsq(design, batch["y"]).solution
    return solution[:-1].T.numpy(), solution[-1].numpy()


def balanced_step(model, balancer, batch, shared_params):
    """One forward pass and the balancer's backward pass of the squared task losses; returns the
    balancer's task weights and the forward pass."""
    from experiments.synthetic.angle_model import squared_losses

    forward = model(batch["x"])
    losses = squared_losses(forward.predictions, batch)
    return balancer.backward(losses, forward.z_s, shared_params), forward
