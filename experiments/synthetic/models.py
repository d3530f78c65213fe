"""Small trained multi-task models on the SCM of setting S, shared by studies 2 and 6.

Every model is trained on source samples only and then measured; the measurements (not the
models) are what the studies read, so one training serves both studies
(:func:`trained_zoo` caches by configuration).

Methods (``METHODS``): a dual-stream MLP (:func:`coremtl.representation.mlp_dual_stream`, heads on
``Z_s`` only, with an MLP decoder) trained by a balancer of :mod:`coremtl.balancers` on the task
losses alone (EW, PCGrad, MGDA, GradNorm, CAGrad, FairGrad); MT-CRL
(:class:`coremtl.architectures.MTCRL` with its module-decorrelation and sparsity terms; the
invariance term needs several training environments and the source is one, so its weight is 0);
and CORE-MTL: the dual-stream model with Equal Weighting plus the CKA, counterfactual-swap (feature
level) and reconstruction terms of :class:`coremtl.objective.CoreMTLObjective`, and the three
ablations that drop one term each. On the linear SCM every method of ``methods`` trains; on the
nonlinear-mixing variant those of ``nonlinear_methods`` (all of them in the full setting).

Measured per model, on fresh samples (seeds disjoint from training):

- the OOD gap per target shift, ``E_T[l] - E_S[l]`` with ``l`` the squared error and, for S5, the
  absolute error, each with its standard error (independent source and target samples);
- the effective mixing angle from the prediction Jacobian through the known generator:
  ``sin^2 psi_hat = sum_t E||d yhat_t / d z_r||^2 / sum_t E(||d yhat_t / d z_r||^2 +
  ||d yhat_t / d z_s||^2)``, which is exactly ``sin^2 psi`` for the encoder of setting S;
- ``lambda_leak`` of the semantic stream by the probe (:func:`coremtl.probes.leakage_coefficient`,
  dual-stream models) and the Lipschitz constant in ``z_r`` of each prediction, estimated as the
  largest ``||d yhat_t / d z_r||`` over the evaluation points;
- the head norms ``||w_t||`` and the residual-substitution ratio ``dZ_r / dZ_s``
  (:func:`coremtl.probes.substitution_stability`, dual-stream models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

BALANCED = ("ew", "pcgrad", "mgda", "gradnorm", "cagrad", "fairgrad")
CORE_VARIANTS = {
    "core-mtl": (True, True, True),
    "core-mtl w/o CKA": (False, True, True),
    "core-mtl w/o CFA": (True, False, True),
    "core-mtl w/o rec": (True, True, False),
}
METHODS = (*BALANCED, "mt-crl", *CORE_VARIANTS)
VARIANTS = ("linear", "nonlinear")


@dataclass(frozen=True)
class ZooConfig:
    seeds: int = 3
    methods: tuple[str, ...] = METHODS
    nonlinear_methods: tuple[str, ...] = ("ew", "pcgrad", "mt-crl", "core-mtl")
    variants: tuple[str, ...] = VARIANTS
    k: int = 2
    tasks: int = 3
    source_scale: float = 0.1
    shifts: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    nonlinear_strength: float = 1.0
    noise_std: float = 0.1
    train_samples: int = 2048
    eval_samples: int = 8000
    jacobian_samples: int = 128
    w1_samples: int = 1000
    hidden: int = 64
    stream_dim: int = 4
    steps: int = 120
    lr: float = 5e-3
    cka_weight: float = 1.0
    cfa_weight: float = 1.0
    reconstruction_weight: float = 1.0


SMOKE_ZOO = ZooConfig(
    methods=("ew", "pcgrad", "core-mtl"),
    nonlinear_methods=("ew",),
    shifts=(0.0, 1.0, 4.0),
    train_samples=256,
    eval_samples=2000,
    jacobian_samples=32,
    w1_samples=200,
    hidden=16,
    steps=30,
    lr=1e-2,
)
FULL_ZOO = ZooConfig(
    seeds=10,
    nonlinear_methods=METHODS,
    train_samples=8192,
    eval_samples=50000,
    jacobian_samples=1024,
    w1_samples=2000,
    hidden=256,
    steps=2000,
    lr=1e-3,
    shifts=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
)
ZOO_CONFIGS = {"smoke": SMOKE_ZOO, "fast": ZooConfig(), "full": FULL_ZOO}
"""The model zoo of studies 2 and 6 in each run mode."""


def study_scm(config: ZooConfig, seed: int, variant: str, shift: float):
    """``random_scm`` with a Haar mixing (and the nonlinear ``g`` for ``variant='nonlinear'``),
    the source residual covariance scaled by ``source_scale`` and ``Sigma_T = Sigma_S + shift * M``
    with the generator's random PSD direction ``M`` (``||M||_F = 1``)."""
    from scm.generate import random_scm
    from scm.model import ResidualLaw

    base = random_scm(
        k=config.k,
        num_tasks=config.tasks,
        seed=seed,
        shift_size=1.0,
        mixing="haar",
        noise_std=config.noise_std,
        nonlinear_strength=config.nonlinear_strength if variant == "nonlinear" else None,
    )
    direction = base.target.cov - base.source.cov
    source_cov = config.source_scale * base.source.cov
    zero = np.zeros(config.k)
    return replace(
        base,
        source=ResidualLaw(zero, source_cov),
        target=ResidualLaw(zero, source_cov + shift * direction),
    )


def task_names(config: ZooConfig) -> list[str]:
    return [f"t{index}" for index in range(config.tasks)]


def squared_losses(predictions, batch):
    return {
        name: (prediction[:, 0] - batch["y"][:, index]).square().mean()
        for index, (name, prediction) in enumerate(predictions.items())
    }


def build_model(config: ZooConfig, method: str):
    """The network of ``method`` (float32), untrained."""
    from torch import nn

    from coremtl.architectures import MTCRL, mlp
    from coremtl.grounding import MLPDecoder
    from coremtl.representation import mlp_dual_stream

    names = task_names(config)
    width = 2 * config.k
    if method == "mt-crl":
        modules = [nn.Linear(config.hidden, config.stream_dim) for _ in range(2)]
        heads = {name: nn.Linear(2 * config.stream_dim, 1) for name in names}
        return MTCRL(mlp([width, config.hidden, config.hidden]), modules, heads)
    decoder = MLPDecoder(config.stream_dim, config.stream_dim, width, (config.hidden,))
    return mlp_dual_stream(
        width,
        names,
        hidden=(config.hidden, config.hidden),
        semantic_dim=config.stream_dim,
        residual_dim=config.stream_dim,
        decoder=decoder,
    )


def adam_settings(batch_size: int, learning_rate: float, seed: int, device: str, **more):
    """Trainer settings of the studies: Adam (AdamW without weight decay) at a constant rate, no
    clipping, no progress bar; ``more`` sets any other :class:`~coremtl.trainer.TrainerConfig`
    field."""
    from coremtl.trainer import TrainerConfig

    return TrainerConfig(
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=0.0,
        lr_schedule="constant",
        grad_clip=None,
        seed=seed,
        device=device,
        progress=False,
        **more,
    )


def squared_loss_of(index: int):
    """``L_t = mean (yhat_t - y_t)^2`` of task ``index``, as the trainer's per-task loss."""

    def loss(prediction, batch):
        return (prediction[:, 0] - batch["y"][:, index]).square().mean()

    return loss


def train(config: ZooConfig, method: str, scm, seed: int, device: str):
    """Train ``method`` on ``train_samples`` source samples with the toolkit's trainer: full batch,
    ``steps`` steps of Adam (AdamW without weight decay) at a constant rate, no clipping."""
    import torch

    from coremtl.architectures import MTCRLRegularizer
    from coremtl.balancers import balancer_options, make_balancer
    from coremtl.objective import CoreMTLObjective
    from coremtl.trainer import Trainer
    from scm.sampling import sample

    torch.manual_seed(seed)
    model = build_model(config, method).to(device)
    drawn = sample(scm, config.train_samples, "source", seed, backend="torch", device=device)
    names = task_names(config)
    objective = None
    balancer_name = method if method in BALANCED else "ew"
    if method == "mt-crl":
        objective = MTCRLRegularizer(invariance_weight=0.0)
    elif method in CORE_VARIANTS:
        use_cka, use_cfa, use_rec = CORE_VARIANTS[method]
        objective = CoreMTLObjective(
            cka_weight=config.cka_weight if use_cka else 0.0,
            cka_warmup_steps=0,
            cfa_weight=config.cfa_weight if use_cfa else 0.0,
            cfa_probability=1.0,
            reconstruction_weight=config.reconstruction_weight if use_rec else 0.0,
            cfa_mode="feature",
        )
    options = {"seed": seed} if "seed" in balancer_options(balancer_name) else {}
    trainer = Trainer(
        model,
        {name: squared_loss_of(index) for index, name in enumerate(names)},
        make_balancer(balancer_name, names, device=device, **options),
        adam_settings(config.train_samples, config.lr, seed, device, epochs=config.steps),
        None,
        objective=objective,
    )
    trainer.fit({"x": drawn["x"], "y": drawn["y"]})
    model.eval()
    return model


def prediction_jacobians(model, scm, z):
    """``d yhat_t / d z`` at each row of ``z`` (n, 2k): shape (n, K, 2k)."""
    import torch

    def predictions(point):
        x = scm.observe(point.unsqueeze(0))
        forward = model(x)
        return torch.cat([value[0] for value in forward.predictions.values()])

    return torch.func.vmap(torch.func.jacrev(predictions))(z).detach()


def _environment_losses(model, scm, env: str, n: int, seed: int, device: str) -> dict:
    import torch

    from scm.sampling import sample

    drawn = sample(scm, n, env, seed, backend="torch", device=device)
    with torch.no_grad():
        forward = model(drawn["x"])
        predictions = torch.stack([p[:, 0] for p in forward.predictions.values()], dim=1)
    error = (predictions - drawn["y"]).double()
    return {"squared": error.square().cpu().numpy(), "absolute": error.abs().cpu().numpy()}


def gap_numbers(source: dict, target: dict, loss: str) -> dict:
    """Per-task ``mean_T - mean_S`` of the loss and the mean over tasks, each with its standard
    error for independent source and target samples (:func:`experiments.stats.independent_se`;
    the tasks share their draws, so the mean's error is that of the per-draw task mean)."""
    from experiments.stats import independent_se

    s, t = source[loss], target[loss]
    gap = t.mean(axis=0) - s.mean(axis=0)
    error = np.array([independent_se(t[:, task], s[:, task]) for task in range(gap.size)])
    return {
        "per_task": gap,
        "mean": float(gap.mean()),
        "standard_error": independent_se(t.mean(axis=1), s.mean(axis=1)),
        "per_task_standard_error": error,
    }


@cache
def residual_w1(config: ZooConfig, seed: int, variant: str, shift: float) -> float:
    """``W_1(P_S(Z_r), P_T(Z_r))`` between ``w1_samples`` samples of each environment (POT's exact
    EMD with Euclidean cost; an upward-biased estimate of the population W_1 at finite n)."""
    import ot

    from scm.sampling import sample

    scm = study_scm(config, seed, variant, shift)
    n = config.w1_samples
    source = sample(scm, n, "source", 20_000 + seed).z_r
    target = sample(scm, n, "target", 30_000 + seed).z_r
    weights = np.full(n, 1.0 / n)
    return float(ot.emd2(weights, weights, ot.dist(source, target, metric="euclidean")))


def measure(config: ZooConfig, model, method: str, variant: str, seed: int, device: str) -> dict:
    """Every number the studies need about one trained model."""
    import torch

    from coremtl.cka import linear_cka
    from coremtl.probes import leakage_coefficient, substitution_stability
    from scm.sampling import sample

    base_seed = 10_000 + 97 * seed
    reference = study_scm(config, seed, variant, 0.0)
    source = _environment_losses(model, reference, "source", config.eval_samples, base_seed, device)
    record: dict = {"method": method, "variant": variant, "seed": seed, "shifts": {}}
    for index, shift in enumerate(config.shifts):
        scm = study_scm(config, seed, variant, shift)
        target = _environment_losses(
            model, scm, "target", config.eval_samples, base_seed + 1 + index, device
        )
        record["shifts"][str(shift)] = {
            "shift": shift,
            "frobenius": float(np.linalg.norm(scm.target.cov - scm.source.cov)),
            "squared": gap_numbers(source, target, "squared"),
            "absolute": gap_numbers(source, target, "absolute"),
            "w1": residual_w1(config, seed, variant, shift),
        }
    record["source_risk"] = float(source["squared"].mean())
    points = sample(
        reference, config.jacobian_samples, "source", base_seed + 99, backend="torch", device=device
    )
    z = torch.cat([points["z_s"], points["z_r"]], dim=1)
    jacobians = prediction_jacobians(model, reference, z)
    k = config.k
    residual_part = jacobians[:, :, k:].square().sum(dim=2)
    semantic_part = jacobians[:, :, :k].square().sum(dim=2)
    record["sin2_psi"] = float(residual_part.sum() / (residual_part + semantic_part).sum())
    record["psi"] = math.asin(math.sqrt(min(1.0, record["sin2_psi"])))
    record["prediction_lipschitz_zr"] = residual_part.sqrt().max(dim=0).values.cpu().numpy()
    dual = hasattr(model, "encode") and hasattr(model, "split")
    if dual:
        record["lambda_leak"] = leakage_coefficient(model, reference, z)
        record["head_norms"] = np.array(
            [
                float(torch.linalg.matrix_norm(head.weight.detach(), ord=2))
                for head in model.heads.values()
            ]
        )
        with torch.no_grad():
            z_s, z_r = model.encode(points["x"])
        record["stream_cka"] = float(linear_cka(z_s, z_r, debiased=True))
        permutation = torch.roll(torch.arange(z.shape[0], device=z.device), 1)
        swapped = torch.cat([points["z_s"], points["z_r"][permutation]], dim=1)
        substituted = reference.observe(swapped)
        record["substitution"] = substitution_stability(model, points["x"], substituted)
    return record


@cache
def trained_zoo(config: ZooConfig, base_seed: int, device: str, progress: bool = False):
    """Train and measure every (variant, method, seed) of ``config``; cached per process."""
    from tqdm import tqdm

    from experiments.synthetic.common import seeds_for

    jobs = [
        (variant, method, seed)
        for variant in config.variants
        for method in (config.methods if variant == "linear" else config.nonlinear_methods)
        for seed in seeds_for(base_seed, config.seeds)
    ]
    records = []
    for variant, method, seed in tqdm(
        jobs, desc="training models (studies 2, 6)", disable=not progress
    ):
        scm = study_scm(config, seed, variant, 0.0)
        model = train(config, method, scm, seed, device)
        records.append(measure(config, model, method, variant, seed, device))
    return tuple(records)
