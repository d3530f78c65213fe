"""Study 10's measurements: the models of every method, trained on source samples of each seed's
SCM by :class:`coremtl.trainer.Trainer`, and their summed OOD gap and weight on other tasks'
factors on fresh source and target samples."""

from __future__ import annotations

import numpy as np

from experiments.stats import independent_se
from experiments.study import Context
from experiments.synthetic.common import seeds_for
from experiments.synthetic.study10_mtcrl.setting import Config, study_scm


def _squared_loss(index: int):
    def loss(predicted, batch):
        return (predicted[:, 0] - batch["y"][:, index]).square().mean()

    return loss


def build_model(config: Config, method: str, dim: int):
    """The model of ``method``: linear (or one-hidden-layer) encoders of width ``m`` (``K`` for
    ``ew (width K)``) and linear heads; MT-CRL's two modules of width ``m / 2``; CORE-MTL's dual
    stream with heads on ``Z_s`` of width ``m``."""
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
    """``method`` trained full batch with Adam at a constant rate for ``steps`` steps."""
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


def evaluate(model, scm, source, target, device: str) -> dict:
    """Summed gap ``sum_t (mean_T l_t - mean_S l_t)`` (with the standard error of independent
    samples) and the weight on other tasks' factors: the mean prediction Jacobian in
    ``z = G^T x`` outside each task's own coordinate."""
    import torch

    from scm.multitask import block_mask

    def losses(draws):
        x = torch.as_tensor(draws.x, dtype=torch.float32, device=device)
        with torch.no_grad():
            out = model(x).predictions
        predicted = torch.stack([p[:, 0] for p in out.values()], dim=1).double().cpu().numpy()
        return ((predicted - draws.y) ** 2).sum(axis=1)

    loss_s, loss_t = losses(source), losses(target)
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
        "gap_standard_error": independent_se(loss_s, loss_t),
        "source_risk": float(loss_s.mean()),
        "target_risk": float(loss_t.mean()),
        "off_block_weight": float(off_block.sum()),
    }


def measure(context: Context) -> dict:
    """One record per (seed, method); every method of a seed sees the same SCM, samples and torch
    seed (paired seeds)."""
    import torch
    from tqdm import tqdm

    from scm import multitask as mt

    config, device = context.config, context.device
    records = []
    jobs = [(s, m) for s in seeds_for(context.seed, config.seeds) for m in config.methods]
    data = {}
    for run_seed, method in tqdm(jobs, desc="study 10 (MT-CRL)", disable=not context.progress):
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
                **evaluate(model, scm, source, target, device),
                "closed_form_gap": float(mt.ood_gaps(scm, optimum).sum()),
            }
        )
    return {"records": records}
