"""Study 3: CKA against gradient alignment (docs/THEORY.md S7, claim C3).

Dual-stream MLPs (:mod:`experiments.synthetic.models`) train on the linear SCM with Equal Weighting
plus the CKA term at several weights and the reconstruction term. Every ``probe_every`` steps, on
the current minibatch, :func:`coremtl.probes.gradient_alignment` gives
``cos^2(g_task, g_res)`` at the shared features ``F`` with ``g_task = d(sum_t L_t)/dF`` and
``g_res = d L_res / dF``, where ``L_res`` is the reconstruction loss with ``Z_s`` detached, so that
``g_res = P_r^T delta_r`` flows through the residual stream only (the S7 model); the debiased
linear CKA of the two streams is taken on the same batch.

The envelope ``cos^2 <= c CKA + delta`` over all points: the linear programme
``min sum_i (c CKA_i + delta)`` subject to ``c CKA_i + delta >= cos^2_i``, ``c, delta >= 0``
(scipy ``linprog``, HiGHS), together with S7's ``c = 1``: the smallest ``delta`` for ``c = 1`` and
the share of points with ``cos^2 <= CKA``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.synthetic.common import jsonable, seeds_for
from experiments.synthetic.models import ZooConfig, build_model, squared_losses, study_scm

NAME = "CKA against gradient alignment"
STATEMENTS = ("S7", "C3")


@dataclass(frozen=True)
class Config:
    zoo: ZooConfig = field(default_factory=ZooConfig)
    seeds: int = 3
    cka_weights: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0)
    steps: int = 100
    batch: int = 128
    probe_every: int = 2


CONFIGS = {
    "smoke": Config(
        zoo=ZooConfig(hidden=16, train_samples=256),
        cka_weights=(0.0, 1.0),
        steps=20,
        batch=64,
        probe_every=2,
    ),
    "fast": Config(),
    "full": Config(
        zoo=ZooConfig(hidden=256, train_samples=8192),
        seeds=10,
        cka_weights=(0.0, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
        steps=2000,
        batch=256,
        probe_every=10,
    ),
}


def trajectory(config: Config, cka_weight: float, seed: int, device: str) -> list[dict]:
    """``(step, cos2, cka)`` along one training run of the toolkit's trainer (minibatches of
    ``batch`` in a seeded order per epoch, Adam at a constant rate), probed every ``probe_every``
    steps before the step's update."""
    import math

    import torch

    from coremtl.balancers import make_balancer
    from coremtl.cka import linear_cka
    from coremtl.grounding import reconstruction_loss
    from coremtl.objective import CoreMTLObjective
    from coremtl.probes import gradient_alignment
    from coremtl.trainer import Trainer
    from experiments.synthetic.models import adam_settings, squared_loss_of
    from scm.sampling import sample

    torch.manual_seed(seed)
    scm = study_scm(config.zoo, seed, "linear", 0.0)
    drawn = sample(scm, config.zoo.train_samples, "source", seed, backend="torch", device=device)
    model = build_model(config.zoo, "core-mtl").to(device)
    names = list(model.heads.keys())
    points: list[dict] = []

    def alignment(model, batch, forward, step) -> dict:
        losses = squared_losses(forward.predictions, batch)
        residual = reconstruction_loss(model.decode(forward.z_s.detach(), forward.z_r), batch["x"])
        cos2 = gradient_alignment(forward, torch.stack(list(losses.values())).sum(), residual)
        cka = float(linear_cka(forward.z_s.detach(), forward.z_r.detach(), debiased=True))
        points.append(
            {"step": step, "cos2": cos2, "cka": cka, "cka_weight": cka_weight, "seed": seed}
        )
        return {"cos2": cos2, "cka": cka}

    batches_per_epoch = config.zoo.train_samples // config.batch
    trainer = Trainer(
        model,
        {name: squared_loss_of(index) for index, name in enumerate(names)},
        make_balancer("ew", names),
        adam_settings(
            config.batch,
            config.zoo.lr,
            seed,
            device,
            epochs=math.ceil(config.steps / batches_per_epoch),
            probe_every=config.probe_every,
            stop_after_steps=config.steps,
        ),
        None,
        objective=CoreMTLObjective(
            cka_weight=cka_weight, cka_warmup_steps=0, cfa_weight=0.0, reconstruction_weight=1.0
        ),
        probes={"alignment": alignment},
    )
    trainer.fit({"x": drawn["x"], "y": drawn["y"]})
    return points


def envelope(cka: np.ndarray, cos2: np.ndarray) -> dict:
    """The LP envelope and S7's ``c = 1`` envelope of the points."""
    from scipy.optimize import linprog

    solution = linprog(
        c=[cka.sum(), cka.size],
        A_ub=np.stack([-cka, -np.ones_like(cka)], axis=1),
        b_ub=-cos2,
        bounds=[(0, None), (0, None)],
        method="highs",
    )
    c_fit, delta_fit = (
        (float(solution.x[0]), float(solution.x[1]))
        if solution.success
        else (float("nan"), float("nan"))
    )
    return {
        "c": c_fit,
        "delta": delta_fit,
        "delta_at_c1": float(max(0.0, np.max(cos2 - cka))),
        "share_below_cka": float(np.mean(cos2 <= cka)),
        "delta_at_c0": float(np.max(cos2)),
    }


def run(config: Config, seed: int = 0, device: str = "cpu", progress: bool = False) -> dict:
    from tqdm import tqdm

    jobs = [(weight, s) for weight in config.cka_weights for s in seeds_for(seed, config.seeds)]
    points = []
    for weight, run_seed in tqdm(jobs, desc="study 3 alignment", disable=not progress):
        points.extend(trajectory(config, weight, run_seed, device))
    cka = np.array([p["cka"] for p in points])
    cos2 = np.array([p["cos2"] for p in points])
    fitted = envelope(cka, cos2)
    correlation = (
        float(np.corrcoef(cka, cos2)[0, 1])
        if np.ptp(cka) > 0 and np.ptp(cos2) > 0
        else (float("nan"))
    )
    by_weight = {
        str(w): {
            "cka": float(np.mean([p["cka"] for p in points if p["cka_weight"] == w])),
            "cos2": float(np.mean([p["cos2"] for p in points if p["cka_weight"] == w])),
        }
        for w in config.cka_weights
    }
    finding = (
        f"{len(points)} per-batch points: smallest envelope cos^2 <= c CKA + delta by LP: "
        f"c = {fitted['c']:.3g}, delta = {fitted['delta']:.3g}; with S7's c = 1 the smallest "
        f"delta is {fitted['delta_at_c1']:.3g} ({fitted['share_below_cka']:.1%} of points have "
        f"cos^2 <= CKA); Pearson r(CKA, cos^2) = {correlation:.2f}; mean (CKA, cos^2) per CKA "
        "weight: "
        + ", ".join(f"{w}: ({v['cka']:.3f}, {v['cos2']:.3f})" for w, v in by_weight.items())
    )
    return jsonable(
        {
            "config": config,
            "points": points,
            "envelope": fitted,
            "correlation": correlation,
            "by_weight": by_weight,
            "finding": finding,
            "verdict": "measured",
        }
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    weights = result["config"]["cka_weights"]
    palette = dict(zip(weights, colours(len(weights)), strict=True))
    figure, axes = new_figure(1, 1, width=5.0, height=4.0)
    axis = axes[0, 0]
    for weight in weights:
        chosen = [p for p in result["points"] if p["cka_weight"] == weight]
        axis.scatter(
            [p["cka"] for p in chosen],
            [p["cos2"] for p in chosen],
            s=8,
            alpha=0.6,
            color=palette[weight],
            label=f"CKA weight {weight}",
        )
    fitted = result["envelope"]
    all_cka = [p["cka"] for p in result["points"]]
    grid = np.linspace(min(all_cka), max(all_cka), 50)
    axis.plot(
        grid,
        fitted["c"] * grid + fitted["delta"],
        "k-",
        label=f"LP envelope: {fitted['c']:.2g} CKA + {fitted['delta']:.2g}",
    )
    axis.plot(
        grid,
        grid + fitted["delta_at_c1"],
        "k--",
        label=f"c = 1 (S7): CKA + {fitted['delta_at_c1']:.2g}",
    )
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("per-batch debiased linear CKA(Z_s, Z_r)")
    axis.set_ylabel("per-batch cos^2(g_task, g_res) at the shared features")
    axis.set_title("S7/C3: gradient alignment against CKA during training")
    axis.legend(fontsize=6)
    return save_figure(figure, directory, "study3_alignment_envelope")
