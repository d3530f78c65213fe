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

S7 proves ``c = 1, delta = 0`` for whitened features and isotropic, independent back-propagated
signals, which a trained network does not satisfy: the study is a measurement (verdict
*measured*). Its registered predictions, scored and reported, are that the CKA term lowers the
streams' CKA (paired seeds) and that every point lies under S7's envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.stats import K_SE, Estimate, paired_difference
from experiments.study import (
    MEASURED,
    Context,
    Finding,
    Outcome,
    Prediction,
    Study,
    Table,
    held_text,
)
from experiments.synthetic.common import seeds_for
from experiments.synthetic.models import ZooConfig, build_model, squared_losses, study_scm
from proofs.headline import Headline, number_text


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


def measure(context: Context) -> dict:
    """The probed ``(step, cos2, cka)`` points of every (CKA weight, seed) training run."""
    from tqdm import tqdm

    config = context.config
    seeds = seeds_for(context.seed, config.seeds)
    jobs = [(weight, s) for weight in config.cka_weights for s in seeds]
    points = []
    for weight, run_seed in tqdm(jobs, desc="study 3 alignment", disable=not context.progress):
        points.extend(trajectory(config, weight, run_seed, context.device))
    return {"points": points}


def summarise(config: Config, measurements: dict) -> dict:
    """The envelopes, Pearson's r, the mean (CKA, cos^2) per CKA weight, and the paired change of
    the per-seed mean CKA from weight 0 to the largest weight."""
    points = measurements["points"]
    cka = np.array([p["cka"] for p in points])
    cos2 = np.array([p["cos2"] for p in points])
    correlation = (
        float(np.corrcoef(cka, cos2)[0, 1]) if np.ptp(cka) > 0 and np.ptp(cos2) > 0 else None
    )
    by_weight = {
        str(w): {
            "cka": float(np.mean([p["cka"] for p in points if p["cka_weight"] == w])),
            "cos2": float(np.mean([p["cos2"] for p in points if p["cka_weight"] == w])),
            "points": sum(p["cka_weight"] == w for p in points),
        }
        for w in config.cka_weights
    }
    lowest, highest = min(config.cka_weights), max(config.cka_weights)
    seeds = sorted({p["seed"] for p in points})

    def seed_means(weight: float) -> list[float]:
        return [
            float(
                np.mean([p["cka"] for p in points if p["cka_weight"] == weight and p["seed"] == s])
            )
            for s in seeds
        ]

    change = None
    if highest > lowest:
        difference = paired_difference(seed_means(highest), seed_means(lowest))
        change = {"from": lowest, "to": highest, **difference.to_dict()}
    return {
        "points": len(points),
        "envelope": envelope(cka, cos2),
        "correlation": correlation,
        "by_weight": by_weight,
        "cka_change": change,
    }


def predictions(config: Config) -> list[Prediction]:
    def penalty_lowers_cka(summary: dict) -> Outcome:
        change = summary["cka_change"]
        if change is None:
            return Outcome(None, "one CKA weight only")
        difference = Estimate.from_dict(change)
        return Outcome(
            difference.below(),
            f"mean CKA at weight {change['to']:g} minus weight {change['from']:g}: "
            f"{difference.text()} (paired over {difference.n} seeds)",
        )

    def under_cka(summary: dict) -> Outcome:
        fitted = summary["envelope"]
        return Outcome(
            fitted["share_below_cka"] == 1.0,
            f"{fitted['share_below_cka']:.1%} of {summary['points']} points have cos^2 <= CKA; "
            f"smallest delta with c = 1: {fitted['delta_at_c1']:.3g}",
        )

    return [
        Prediction(
            "P1",
            f"the per-seed mean stream CKA at the largest CKA weight is below that at weight 0 by "
            f"more than {K_SE:g} SE (paired seeds)",
            "the CKA term minimises the streams' CKA",
            penalty_lowers_cka,
        ),
        Prediction(
            "P2",
            "every per-batch point has cos^2(g_task, g_res) <= CKA (S7's envelope: c = 1, "
            "delta = 0)",
            "S7 proves it for whitened shared features and independent isotropic back-propagated "
            "signals; trained features satisfy neither, so the share of points is measured",
            under_cka,
        ),
    ]


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """Measured: S7's assumptions (whitened features, isotropic independent signals) do not hold
    for a trained network, so no outcome of the envelope refutes C3; the study reports the
    smallest envelope ``(c, delta)`` and the ``delta`` that S7's ``c = 1`` needs."""
    fitted = summary["envelope"]
    headline = Headline(
        f"smallest delta with S7's c = 1 over {summary['points']} per-batch points",
        fitted["delta_at_c1"],
        threshold="S7 with whitened features: 0",
    )
    result = (
        f"Over {summary['points']} per-batch points, cos^2(g_task, g_res) <= CKA holds at "
        f"{fitted['share_below_cka']:.1%} of them and S7's c = 1 needs delta = "
        f"{fitted['delta_at_c1']:.3g}; the smallest envelope is c = {fitted['c']:.3g}, delta = "
        f"{fitted['delta']:.3g} (Pearson r(CKA, cos^2) = {number_text(summary['correlation'], 2)})."
    )
    table = Table(
        ("CKA weight", "mean CKA", "mean cos^2", "points"),
        tuple(
            (weight, f"{v['cka']:.3f}", f"{v['cos2']:.3f}", str(v["points"]))
            for weight, v in summary["by_weight"].items()
        ),
    )
    return Finding(
        MEASURED,
        headline,
        result,
        table,
        details=(
            f"Predictions: {held_text(outcomes)}.",
            "Envelope: the linear programme min sum_i (c CKA_i + delta) subject to "
            "c CKA_i + delta >= cos^2_i, c, delta >= 0 (scipy linprog, HiGHS).",
        ),
        captions={
            "study3_alignment_envelope": "Per-batch cos^2 of task and residual gradients at the "
            "shared features against the streams' debiased CKA, per CKA weight; solid: the "
            "smallest LP envelope, dashed: S7's c = 1 with the smallest delta."
        },
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    weights = result["config"]["cka_weights"]
    palette = dict(zip(weights, colours(len(weights)), strict=True))
    figure, axes = new_figure(1, 1, width=5.0, height=4.0)
    axis = axes[0, 0]
    points = result["measurements"]["points"]
    for weight in weights:
        chosen = [p for p in points if p["cka_weight"] == weight]
        axis.scatter(
            [p["cka"] for p in chosen],
            [p["cos2"] for p in chosen],
            s=8,
            alpha=0.6,
            color=palette[weight],
            label=f"CKA weight {weight}",
        )
    fitted = result["summary"]["envelope"]
    all_cka = [p["cka"] for p in points]
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


STUDY = Study(
    number=3,
    name="CKA against gradient alignment",
    statements=("S7", "C3"),
    claim="how far per-batch CKA of the streams bounds the squared cosine of task and residual "
    "gradients during training: the smallest envelope cos^2 <= c CKA + delta of C3",
    expected=MEASURED,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
)
