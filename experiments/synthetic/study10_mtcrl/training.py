r"""Study 10: MT-CRL's claim (S12) with trained models on the multi-task SCM.

MT-CRL (Hu et al., "Improving Multi-Task Generalization via Regularizing Spurious Correlation",
NeurIPS 2022) says a shared multi-task model takes knowledge causal for one task but spurious for
another, and generalises worse when that correlation changes. S12 (docs/THEORY.md S12) makes it
precise: with ``K`` task-specific factors and a shared representation of width ``m < K``, the
source optimum reads other tasks' factors and its summed OOD gap is ``G = tr(P_m (Q_S - Q_T))``;
single-task models (and a shared width ``m >= K``) have gap 0.

SCM (:func:`scm.multitask.block_correlated_scm`): ``K = 3`` tasks with scalar factors,
``beta = (1, 0.8, 0.6)``, the source the equal mixture of two environments with exchangeable
correlation 0.3 and 0.9 (environment labels for MT-CRL), the target uncorrelated, a Haar mixing
``x = G z`` drawn per seed. Methods, all a linear encoder ``d -> m`` (an MLP with ``hidden > 0``)
and linear heads trained by :class:`coremtl.trainer.Trainer` (full batch, Adam, constant rate):
single-task (one encoder of width ``m`` per task), Equal Weighting at width ``m`` and at width
``K`` (the qualifier of S12), PCGrad, MT-CRL (two modules of width ``m / 2``; decorrelation,
invariance across the two source environments and sparsity; and without the invariance term, to
tell the two apart) and CORE-MTL (dual stream, heads on ``Z_s`` of width ``m``; CKA, input-level
CFA and reconstruction). Every hyperparameter is fixed before the run, the same for all methods,
and none is chosen with target data (:data:`SELECTION`). Paired seeds: every method of a seed sees
the same SCM, training and evaluation samples, and starts from the same torch seed.

Measured per model: the summed gap ``sum_t (mean_T l_t - mean_S l_t)`` of the squared error on
fresh source and target samples, and its weight on other tasks' factors (the mean prediction
Jacobian in ``z = G^T x``, outside each task's own coordinate). Differences between methods are
paired by seed: mean and standard error over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.synthetic.common import jsonable, seeds_for

NAME = "MT-CRL's claim: shared width vs other tasks' factors"
STATEMENTS = ("S12",)
METHODS = (
    "single-task",
    "ew",
    "ew (width K)",
    "pcgrad",
    "mt-crl",
    "mt-crl w/o invariance",
    "core-mtl",
)
SELECTION = (
    "every hyperparameter fixed before the run and shared by all methods (Adam, constant rate, "
    "full batch, the step count and rate of the config); MT-CRL weights (decorrelation, "
    "invariance, sparsity) and CORE-MTL weights (CKA, CFA, reconstruction) as in the config; "
    "nothing tuned, no target data used before the final evaluation"
)


@dataclass(frozen=True)
class Config:
    """``hidden = 0``: linear encoders (the setting of S12); ``hidden > 0``: one ReLU layer of that
    width before the width-m bottleneck (same population optimum, harder to reach)."""

    seeds: int = 4
    betas: tuple[float, ...] = (1.0, 0.8, 0.6)
    source_correlations: tuple[float, ...] = (0.3, 0.9)
    target_correlation: float = 0.0
    width: int = 2
    noise_std: float = 0.1
    train_samples: int = 1024
    eval_samples: int = 20_000
    hidden: int = 0
    residual_dim: int = 2
    steps: int = 150
    lr: float = 3e-2
    mtcrl_weights: tuple[float, float, float] = (1.0, 1.0, 0.01)
    core_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    methods: tuple[str, ...] = field(default=METHODS)


CONFIGS = {
    "smoke": Config(seeds=2, train_samples=256, eval_samples=2000, steps=20),
    "fast": Config(),
    "full": Config(seeds=10, train_samples=8192, eval_samples=100_000, steps=1000, lr=1e-2),
}


def study_scm(config: Config, seed: int):
    from scm.multitask import TARGET, block_correlated_scm

    names = tuple(f"source:{i}" for i in range(len(config.source_correlations)))
    correlations = dict(zip(names, config.source_correlations, strict=True))
    correlations[TARGET] = config.target_correlation
    return block_correlated_scm(
        np.asarray(config.betas).reshape(-1, 1),
        correlations,
        noise_std=config.noise_std,
        source_environments=names,
        mixing=f"haar:{seed}",
    )


def prediction(config: Config, base_seed: int) -> dict:
    """S12's closed forms for every seed's SCM, computed before any training."""
    from scm import multitask as mt

    gaps, weights = [], []
    for seed in seeds_for(base_seed, config.seeds):
        model = study_scm(config, seed)
        optimum = mt.multitask_predictors(model, config.width)
        gaps.append(float(mt.ood_gaps(model, optimum.predictors).sum()))
        weights.append(float(mt.off_block_weight(model, optimum.predictors).sum()))
    gap = float(np.mean(gaps))
    return {
        "multi_task_gap": gap,
        "multi_task_off_block_weight": float(np.mean(weights)),
        "single_task_gap": 0.0,
        "text": (
            f"S12 predicts, before training: single-task and EW at width K = {len(config.betas)} "
            f"have summed OOD gap 0 and no weight on other tasks' factors; EW at width "
            f"m = {config.width} < K has gap G = {gap:.4f} (its source optimum, the reduced-rank "
            "solution) and off-block weight "
            f"{np.mean(weights):.3f}; PCGrad and CORE-MTL keep the width-m restriction and are "
            "predicted near G; MT-CRL has no closed form (below G only if its invariance term "
            "gives up source fit)"
        ),
    }


def _squared_loss(index: int):
    def loss(predicted, batch):
        return (predicted[:, 0] - batch["y"][:, index]).square().mean()

    return loss


def build_model(config: Config, method: str, dim: int):
    from torch import nn

    from coremtl.architectures import MTCRL, SharedBottom, SingleTaskModels, mlp
    from coremtl.grounding import MLPDecoder
    from coremtl.representation import mlp_dual_stream

    names = [f"t{i}" for i in range(len(config.betas))]
    width = len(names) if method == "ew (width K)" else config.width
    hidden = (config.hidden,) if config.hidden else ()

    def encoder(output: int) -> nn.Module:
        return mlp([dim, *hidden, output]) if hidden else nn.Linear(dim, output)

    if method == "single-task":
        return SingleTaskModels.from_factories(
            names, lambda: encoder(width), lambda _: nn.Linear(width, 1)
        )
    if method.startswith("mt-crl"):
        trunk = nn.Sequential(nn.Linear(dim, config.hidden), nn.ReLU()) if hidden else nn.Identity()
        modules = [nn.Linear(config.hidden or dim, width // 2) for _ in range(2)]
        heads = {name: nn.Linear(2 * (width // 2), 1) for name in names}
        return MTCRL(trunk, modules, heads)
    if method == "core-mtl":
        decoder = MLPDecoder(width, config.residual_dim, dim, hidden)
        return mlp_dual_stream(
            dim,
            names,
            hidden=hidden,
            semantic_dim=width,
            residual_dim=config.residual_dim,
            decoder=decoder,
        )
    return SharedBottom(encoder(width), {n: nn.Linear(width, 1) for n in names})


def train(config: Config, method: str, data: dict, seed: int, device: str):
    import torch

    from coremtl.architectures import MTCRLRegularizer
    from coremtl.balancers import make_balancer
    from coremtl.objective import CoreMTLObjective
    from coremtl.trainer import Trainer
    from experiments.synthetic.models import adam_settings

    names = [f"t{i}" for i in range(len(config.betas))]
    torch.manual_seed(seed)
    model = build_model(config, method, data["x"].shape[1]).to(device)
    objective = None
    if method.startswith("mt-crl"):
        decorrelation, invariance, sparsity = config.mtcrl_weights
        invariance = 0.0 if method == "mt-crl w/o invariance" else invariance
        objective = MTCRLRegularizer(decorrelation, invariance, sparsity, "environment")
    elif method == "core-mtl":
        cka, cfa, reconstruction = config.core_weights
        objective = CoreMTLObjective(
            cka_weight=cka,
            cka_warmup_steps=0,
            cfa_weight=cfa,
            cfa_probability=1.0,
            cfa_start_step=0,
            reconstruction_weight=reconstruction,
            cfa_mode="input",
            debiased_cka=True,
            input_key="x",
        )
    trainer = Trainer(
        model,
        {name: _squared_loss(index) for index, name in enumerate(names)},
        make_balancer("pcgrad" if method == "pcgrad" else "ew", names, device=device),
        adam_settings(config.train_samples, config.lr, seed, device, epochs=config.steps),
        None,
        objective=objective,
    )
    trainer.fit(data)
    model.eval()
    return model


def measure(model, scm, source, target, device: str) -> dict:
    """Summed gap (with its Monte Carlo standard error) and the weight on other tasks' factors."""
    import torch

    from scm.multitask import block_mask

    def losses(draws):
        x = torch.as_tensor(draws.x, dtype=torch.float32, device=device)
        with torch.no_grad():
            out = model(x).predictions
        predicted = torch.stack([p[:, 0] for p in out.values()], dim=1).double().cpu().numpy()
        return ((predicted - draws.y) ** 2).sum(axis=1)

    loss_s, loss_t = losses(source), losses(target)
    error = math.sqrt(loss_s.var(ddof=1) / loss_s.size + loss_t.var(ddof=1) / loss_t.size)
    x = torch.as_tensor(source.x[:512], dtype=torch.float32, device=device).requires_grad_(True)
    out = model(x).predictions
    rows = []
    for prediction in out.values():
        (gradient,) = torch.autograd.grad(prediction[:, 0].sum(), x, retain_graph=True)
        rows.append(gradient.mean(dim=0).double().cpu().numpy() @ scm.mixing)
    latent = np.stack(rows)
    off_block = np.sqrt((latent**2 * ~block_mask(scm.block_sizes)).sum(axis=1))
    return {
        "gap": float(loss_t.mean() - loss_s.mean()),
        "gap_standard_error": error,
        "source_risk": float(loss_s.mean()),
        "target_risk": float(loss_t.mean()),
        "off_block_weight": float(off_block.sum()),
    }


def paired(values: dict, method: str, reference: str) -> dict:
    """Mean and standard error over seeds of ``gap(method) - gap(reference)``."""
    differences = np.asarray(values[method]) - np.asarray(values[reference])
    error = (
        float(differences.std(ddof=1) / math.sqrt(differences.size))
        if differences.size > 1
        else float("nan")
    )
    return {"mean": float(differences.mean()), "standard_error": error, "n": int(differences.size)}


def run(config: Config, seed: int = 0, device: str = "cpu", progress: bool = False) -> dict:
    import torch
    from tqdm import tqdm

    from scm import multitask as mt

    predicted = prediction(config, seed)
    records = []
    jobs = [(s, m) for s in seeds_for(seed, config.seeds) for m in config.methods]
    data = {}
    for run_seed, method in tqdm(jobs, desc="study 10 (MT-CRL)", disable=not progress):
        if run_seed not in data:
            scm = study_scm(config, run_seed)
            drawn = mt.sample(scm, config.train_samples, mt.SOURCE, run_seed)
            data[run_seed] = (
                scm,
                {
                    "x": torch.as_tensor(drawn.x, dtype=torch.float32, device=device),
                    "y": torch.as_tensor(drawn.y, dtype=torch.float32, device=device),
                    "environment": torch.as_tensor(drawn.environment, device=device),
                },
                mt.sample(scm, config.eval_samples, mt.SOURCE, 50_000 + run_seed),
                mt.sample(scm, config.eval_samples, mt.TARGET, 60_000 + run_seed),
            )
        scm, train_data, source, target = data[run_seed]
        model = train(config, method, train_data, run_seed, device)
        optimum = mt.multitask_predictors(scm, config.width).predictors
        records.append(
            {
                "seed": run_seed,
                "method": method,
                **measure(model, scm, source, target, device),
                "closed_form_gap": float(mt.ood_gaps(scm, optimum).sum()),
            }
        )
    gaps = {m: [r["gap"] for r in records if r["method"] == m] for m in config.methods}
    summary = {}
    for method in config.methods:
        chosen = [r for r in records if r["method"] == method]
        values = np.asarray(gaps[method])
        summary[method] = {
            "gap": float(values.mean()),
            "gap_standard_error": float(values.std(ddof=1) / math.sqrt(values.size))
            if values.size > 1
            else float("nan"),
            "off_block_weight": float(np.mean([r["off_block_weight"] for r in chosen])),
            "source_risk": float(np.mean([r["source_risk"] for r in chosen])),
            "target_risk": float(np.mean([r["target_risk"] for r in chosen])),
        }
    differences = {
        f"{m} - single-task": paired(gaps, m, "single-task")
        for m in config.methods
        if m != "single-task" and "single-task" in gaps
    }
    differences.update(
        {
            f"{m} - ew": paired(gaps, m, "ew")
            for m in config.methods
            if m not in ("ew", "single-task") and "ew" in gaps
        }
    )
    verdict, finding = _verdict(config, summary, differences, predicted)
    return jsonable(
        {
            "config": config,
            "prediction": predicted,
            "selection": SELECTION,
            "records": records,
            "summary": summary,
            "differences": differences,
            "finding": finding,
            "verdict": verdict,
        }
    )


def _separated(difference: dict | None) -> bool:
    return bool(
        difference
        and np.isfinite(difference["standard_error"])
        and difference["mean"] > 2 * difference["standard_error"]
    )


def _verdict(config: Config, summary: dict, differences: dict, predicted: dict):
    """``agrees`` when EW at width m < K has a larger gap than single-task and than EW at width K,
    each by more than 2 paired standard errors (S12's two predictions); ``contradicts`` otherwise."""
    narrow = _separated(differences.get("ew - single-task"))
    width_k = differences.get("ew (width K) - ew")
    qualifier = _separated(width_k and {**width_k, "mean": -width_k["mean"]})
    parts = ", ".join(
        f"{m} {s['gap']:.4f} +- {s['gap_standard_error']:.4f} (source risk {s['source_risk']:.3f})"
        for m, s in summary.items()
    )
    versus = ", ".join(
        f"{name} {d['mean']:+.4f} +- {d['standard_error']:.4f}"
        for name, d in differences.items()
        if name.endswith("- ew")
    )
    finding = (
        f"summed OOD gap ({config.seeds} seeds, mean +- SE; S12 closed form for EW at m = "
        f"{config.width}: {predicted['multi_task_gap']:.4f}): {parts}; against EW: {versus}"
    )
    return ("agrees" if narrow and qualifier else "contradicts"), finding


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    summary = result["summary"]
    methods = list(summary)
    figure, axes = new_figure(2, 1, width=4.6)
    palette = colours(len(methods))
    positions = np.arange(len(methods))
    axes[0, 0].bar(
        positions,
        [summary[m]["gap"] for m in methods],
        yerr=[summary[m]["gap_standard_error"] or 0.0 for m in methods],
        color=palette,
        capsize=3,
    )
    axes[0, 0].axhline(
        result["prediction"]["multi_task_gap"],
        color="k",
        ls="--",
        lw=0.8,
        label="S12: EW optimum at width m",
    )
    axes[0, 0].axhline(0.0, color="grey", ls=":", lw=0.8, label="S12: single task / width K")
    axes[0, 0].set_ylabel("summed OOD gap R_T - R_S")
    axes[0, 0].set_title("gap per method (mean +- SE over seeds)")
    axes[0, 0].legend()
    axes[0, 1].bar(positions, [summary[m]["off_block_weight"] for m in methods], color=palette)
    axes[0, 1].axhline(
        result["prediction"]["multi_task_off_block_weight"],
        color="k",
        ls="--",
        lw=0.8,
        label="S12: EW optimum at width m",
    )
    axes[0, 1].set_ylabel("off-block weight (mean Jacobian in z)")
    axes[0, 1].set_title("reading other tasks' causal factors")
    axes[0, 1].legend()
    for axis in axes[0]:
        axis.set_xticks(positions, methods, rotation=30, ha="right")
    return save_figure(figure, directory, "study10_mtcrl")
