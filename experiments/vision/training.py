"""Training and evaluation of the vision pipeline: staged schedule, balancers, CORE-MTL terms.

One optimisation step (``stage`` from :func:`stage_of`):

1. ``forward = model(x)`` (bf16 autocast on CUDA when asked, channels-last memory on CUDA);
2. ``reconstruction`` stage: only the grounding term ``l_rec L_rec`` is minimised;
3. ``tasks`` stage: task losses ``L_t`` combined by the balancer, plus ``l_rec L_rec``;
4. ``full`` stage: also ``l_cka(s) L_cka + l_cfa L_cfa`` from :class:`coremtl.objective.CoreMTLObjective`
   (debiased CKA of the pooled streams, warm-up ramp counted from the stage start; image-level
   counterfactuals through the grounding decoder, BN frozen, a derangement of the batch);
5. gradients averaged across ranks when distributed, clipped to ``grad_clip`` (global 2-norm),
   AdamW step (decoupled weight decay; Loshchilov & Hutter 2019), linear warm-up then cosine.

The hard-grounding term is :func:`~.model.physics.hard_grounding_terms` (render L1 in linear RGB
plus priors); the soft one is the objective's L1 reconstruction of the sRGB input. Each epoch ends
with evaluation on the validation split (model selection) and on the test split (reported, never
used for selection), a JSONL record and a checkpoint (exact resume from epoch boundaries).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from coremtl.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from coremtl.counterfactual import frozen_batchnorm
from scm.validation import InvalidParameterError

from . import distributed
from .config import VisionConfig
from .datasets.builders import Splits, build_splits
from .datasets.sampling import EpochBatchSampler
from .losses import finite_or_raise, task_losses
from .metrics import HIGHER_IS_BETTER, DenseMetrics, delta_m
from .model.build import build_model
from .model.physics import HardGroundingDecoder, hard_grounding_terms

LAST_EPOCHS_AVERAGED = 10


def stage_of(epoch: int, config: VisionConfig) -> str:
    """``"reconstruction"``, ``"tasks"`` or ``"full"`` (see :class:`~.config.TrainingConfig`)."""
    training = config.training
    if config.model.kind != "coremtl":
        return "tasks"
    if epoch < training.reconstruction_epochs and config.model.grounding != "none":
        return "reconstruction"
    if epoch < training.independence_start_epoch:
        return "tasks"
    return "full"


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int):
    """``lr(s) = lr0 * s / warmup`` for ``s < warmup``, then ``lr0 (1 + cos(pi t)) / 2`` with
    ``t = (s - warmup) / (total - warmup)``."""

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def move(batch: Mapping[str, Tensor], device: torch.device, channels_last: bool) -> dict:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if key == "image" and channels_last:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def check_inputs(batch: Mapping[str, Tensor], step: int) -> None:
    for key, value in batch.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise FloatingPointError(f"batch[{key!r}] has NaN or infinity at step {step}")


@dataclass
class Run:
    """Everything a training run holds between steps."""

    config: VisionConfig
    model: nn.Module
    ddp_model: nn.Module
    balancer: Any
    objective: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    splits: Splits
    sampler: EpochBatchSampler
    device: torch.device
    generator: torch.Generator
    output: Path
    weights_file: str | None
    step: int = 0
    epoch: int = 0
    full_stage_start: int | None = None
    best: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, float] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return self.config.data.tasks

    @property
    def autocast(self):
        use = self.device.type == "cuda" and self.config.run.bf16
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use)


def shared_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(model.shared_parameters())


def build_run(config: VisionConfig, output: Path | None = None) -> Run:
    from coremtl.balancers import make_balancer
    from coremtl.objective import CoreMTLObjective

    torch.manual_seed(config.run.seed)
    device = torch.device(config.run.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(
            f"run.device: {config.run.device} asked but CUDA is unavailable"
        )
    if (
        config.model.kind == "coremtl"
        and config.method.cka_weight > 0
        and (config.method.debiased_cka and config.training.batch_size < 4)
    ):
        raise InvalidParameterError(
            "training.batch_size: the debiased CKA needs at least 4 samples per batch"
        )
    splits = build_splits(config.data, config.run.seed)
    model, weights_file = build_model(config.model, config.data.tasks, config.data.num_classes)
    model = model.to(device)
    if device.type == "cuda" and config.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ddp_model = distributed.wrap(model, device)
    balancer = make_balancer(
        config.training.balancer, config.data.tasks, **config.training.balancer_options
    ).to(device)
    objective = None
    if config.model.kind == "coremtl":
        soft = config.model.grounding == "soft"
        objective = CoreMTLObjective(
            cka_weight=config.method.cka_weight,
            cka_warmup_steps=config.method.cka_warmup_steps,
            cfa_weight=config.method.cfa_weight if config.model.grounding != "none" else 0.0,
            cfa_probability=config.method.cfa_probability,
            cfa_start_step=0,
            reconstruction_weight=config.method.reconstruction_weight if soft else 0.0,
            cfa_mode="input",
            debiased_cka=config.method.debiased_cka,
            input_key="image",
        )
    decay, no_decay = [], []
    for parameter in model.parameters():
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.training.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    balancer_parameters = list(balancer.parameters())
    if balancer_parameters:
        groups.append({"params": balancer_parameters, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=config.training.lr)
    sampler = EpochBatchSampler(
        len(splits.train),
        config.training.batch_size,
        config.run.seed,
        rank=distributed.rank(),
        world_size=distributed.world_size(),
        max_batches=config.training.max_steps_per_epoch,
    )
    if len(sampler) == 0:
        raise InvalidParameterError(
            f"training.batch_size: {config.training.batch_size} is larger than the training "
            f"split per rank ({len(splits.train) // distributed.world_size()} samples)"
        )
    total_steps = config.training.epochs * len(sampler)
    scheduler = warmup_cosine(optimizer, config.training.warmup_steps, total_steps)
    generator = torch.Generator().manual_seed(config.run.seed + 17)
    return Run(
        config=config,
        model=model,
        ddp_model=ddp_model,
        balancer=balancer,
        objective=objective,
        optimizer=optimizer,
        scheduler=scheduler,
        splits=splits,
        sampler=sampler,
        device=device,
        generator=generator,
        output=Path(output or config.run.output_dir),
        weights_file=weights_file,
        reference=dict(config.run.single_task_reference),
    )


def grounding_terms(run: Run, forward, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The weighted hard-grounding terms (empty for soft grounding, handled by the objective)."""
    weight = run.config.method.reconstruction_weight
    decoder = getattr(run.model, "decoder", None)
    if weight == 0 or not isinstance(decoder, HardGroundingDecoder):
        return {}
    components = decoder.components(forward.z_s, forward.z_r)
    method = run.config.method
    terms = hard_grounding_terms(
        components,
        batch["image"],
        method.tv_weight,
        method.achromatic_weight,
        method.correlation_weight,
    )
    return {f"grounding/{k}": weight * v for k, v in terms.items()}


def training_step(run: Run, batch: Mapping[str, Tensor]) -> dict:
    """One optimisation step; returns the logged scalars."""
    config = run.config
    stage = stage_of(run.epoch, config)
    run.model.train()
    batch = move(batch, run.device, run.device.type == "cuda" and config.run.channels_last)
    check_inputs(batch, run.step)
    run.optimizer.zero_grad(set_to_none=True)
    with distributed.no_sync(run.ddp_model), run.autocast:
        forward = run.ddp_model(batch["image"])
        losses = (
            task_losses(forward.predictions, batch, run.tasks) if stage != "reconstruction" else {}
        )
        extra = grounding_terms(run, forward, batch)
        if run.objective is not None and stage == "full":
            start = run.step if run.full_stage_start is None else run.full_stage_start
            step_in_stage = run.step - start
            core = run.objective.terms(
                run.model,
                batch,
                forward,
                step_in_stage,
                lambda predictions, b: task_losses(predictions, b, run.tasks),
                run.generator,
            )
            extra.update(core)
    finite_or_raise({**losses, **extra}, run.step)
    extra_loss = torch.stack([v.float() for v in extra.values()]).sum() if extra else None
    if stage == "reconstruction":
        if extra_loss is None:
            raise InvalidParameterError("training: the reconstruction stage needs a grounding term")
        extra_loss.backward()
        weights: dict = {}
    else:
        weights = run.balancer.backward(
            {k: v.float() for k, v in losses.items()},
            forward.shared,
            shared_parameters(run.model),
            extra_loss=extra_loss,
        )
    distributed.average_gradients(run.model)
    if config.training.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.training.grad_clip)
    else:
        norm = torch.tensor(float("nan"))
    run.optimizer.step()
    run.scheduler.step()
    if stage != "reconstruction" and run.balancer.needs_losses_after_step:
        with torch.no_grad(), run.autocast, frozen_batchnorm(run.model):
            after = run.model(batch["image"]).predictions
            run.balancer.after_step(
                {k: v.float() for k, v in task_losses(after, batch, run.tasks).items()}
            )
    run.step += 1
    record = {f"loss/{k}": float(v.detach()) for k, v in losses.items()}
    record.update({f"term/{k}": float(v.detach()) for k, v in extra.items()})
    record.update(
        {f"weight/{k}": float(v) for k, v in (weights or {}).items() if isinstance(v, (int, float))}
    )
    record["grad_norm"] = float(norm)
    record["stage"] = stage
    return record


def make_loader(dataset, config: VisionConfig, sampler=None, batch_size: int | None = None):
    if sampler is not None:
        return DataLoader(dataset, batch_sampler=sampler, num_workers=config.data.num_workers)
    return DataLoader(
        dataset,
        batch_size=batch_size or config.training.batch_size,
        shuffle=False,
        num_workers=config.data.num_workers,
    )


@torch.no_grad()
def evaluate(model: nn.Module, dataset, config: VisionConfig, device: torch.device) -> dict:
    """Metrics over the whole ``dataset`` (inference: encoder, semantic stream and heads; the
    grounding decoder only to score the decomposition when the truth is there)."""
    model.eval()
    metrics = DenseMetrics(config.data.tasks, config.data.num_classes, device)
    decoder = getattr(model, "decoder", None)
    use_cuda_autocast = device.type == "cuda" and config.run.bf16
    for batch in make_loader(dataset, config):
        batch = move(batch, device, device.type == "cuda" and config.run.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda_autocast):
            forward = model(batch["image"])
            predictions = {k: v.float() for k, v in forward.predictions.items()}
            if isinstance(decoder, HardGroundingDecoder) and "albedo" in batch:
                components = decoder.components(forward.z_s, forward.z_r)
                predictions["albedo"] = components["albedo"].float()
                predictions["shading"] = components["shading"].float()
        metrics.update(predictions, batch)
    return metrics.compute()


def selection_score(metrics: Mapping[str, float], run: Run) -> float:
    """Lower is better: ``Delta_m`` against the reference, or a named metric (negated when higher
    is better). Without a single-task reference, ``Delta_m`` is taken against the first epoch's
    validation metrics (LibMTL's convention)."""
    name = run.config.training.selection_metric
    if name == "delta_m":
        if not run.reference:
            run.reference = dict(metrics)
        return delta_m(metrics, run.reference, skip_zero_reference=True)
    if name not in metrics:
        raise InvalidParameterError(
            f"training.selection_metric: {name!r} is not among {sorted(metrics)} or 'delta_m'"
        )
    return -metrics[name] if HIGHER_IS_BETTER.get(name, False) else metrics[name]


def state_dict(run: Run) -> dict[str, Any]:
    return {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "balancer": run.balancer.state_dict(),
        "generator": run.generator.get_state(),
        "rng": rng_state(),
        "step": run.step,
        "epoch": run.epoch,
        "full_stage_start": -1 if run.full_stage_start is None else run.full_stage_start,
        "best": json.dumps(run.best),
        "history": json.dumps(run.history),
        "reference": json.dumps(run.reference),
        "config": json.dumps(run.config.to_dict()),
    }


def load_state(run: Run, state: Mapping[str, Any]) -> None:
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.balancer.load_state_dict(state["balancer"])
    run.generator.set_state(state["generator"])
    set_rng_state(state["rng"])
    run.step = int(state["step"])
    run.epoch = int(state["epoch"])
    start = int(state["full_stage_start"])
    run.full_stage_start = None if start < 0 else start
    run.best = json.loads(state["best"])
    run.history = json.loads(state["history"])
    run.reference = json.loads(state["reference"])


def train(run: Run, resume: bool = False, stop_after_epochs: int | None = None) -> dict:
    """Train to ``training.epochs`` (or ``stop_after_epochs`` more epochs), then report."""
    config = run.config
    is_main = distributed.rank() == 0
    last_path = run.output / "checkpoints" / "last.pt"
    if resume:
        load_state(run, load_checkpoint(last_path, map_location=run.device))
    if is_main:
        run.output.mkdir(parents=True, exist_ok=True)
        (run.output / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    epochs_run = 0
    progress = config.run.progress and is_main
    while run.epoch < config.training.epochs:
        if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
            break
        if stage_of(run.epoch, config) == "full" and run.full_stage_start is None:
            run.full_stage_start = run.step
        run.sampler.set_epoch(run.epoch)
        if hasattr(run.splits.train, "set_epoch"):
            run.splits.train.set_epoch(run.epoch)
        loader = make_loader(run.splits.train, config, sampler=run.sampler)
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, desc=f"epoch {run.epoch}", leave=False)
        sums: dict[str, float] = {}
        count = 0
        for batch in loader:
            record = training_step(run, batch)
            for key, value in record.items():
                if isinstance(value, float):
                    sums[key] = sums.get(key, 0.0) + value
            count += 1
        run.balancer.end_epoch()
        epoch_record: dict[str, Any] = {
            "epoch": run.epoch,
            "step": run.step,
            "stage": stage_of(run.epoch, config),
            "lr": run.scheduler.get_last_lr()[0],
            "train": {k: v / max(count, 1) for k, v in sums.items()},
        }
        if is_main:
            epoch_record["val"] = evaluate(run.model, run.splits.val, config, run.device)
            epoch_record["test"] = evaluate(run.model, run.splits.test, config, run.device)
            score = selection_score(epoch_record["val"], run)
            epoch_record["selection_score"] = score
            if "score" not in run.best or score < run.best["score"]:
                run.best.update(
                    {
                        "score": score,
                        "epoch": run.epoch,
                        "test": epoch_record["test"],
                        "val": epoch_record["val"],
                    }
                )
                save_checkpoint(
                    {
                        "model": run.model.state_dict(),
                        "epoch": run.epoch,
                        "config": json.dumps(config.to_dict()),
                    },
                    run.output / "checkpoints" / "best.pt",
                )
            run.history.append(epoch_record)
            with (run.output / "metrics.jsonl").open("a") as file:
                file.write(json.dumps(epoch_record) + "\n")
        run.epoch += 1
        epochs_run += 1
        if is_main and (
            run.epoch % config.training.checkpoint_every == 0 or run.epoch == config.training.epochs
        ):
            save_checkpoint(state_dict(run), last_path)
        distributed.barrier()
    return final_report(run) if is_main else {}


def final_report(run: Run) -> dict:
    """Test metrics of the checkpoint selected on validation and the mean of the last epochs."""
    tests = [record["test"] for record in run.history if "test" in record]
    last = tests[-LAST_EPOCHS_AVERAGED:]
    mean_last = {k: sum(t[k] for t in last) / len(last) for k in last[0]} if last else {}
    report = {
        "selected_epoch": run.best.get("epoch"),
        "selection_metric": run.config.training.selection_metric,
        "test_at_selected": run.best.get("test", {}),
        "val_at_selected": run.best.get("val", {}),
        f"test_mean_last_{LAST_EPOCHS_AVERAGED}_epochs": mean_last,
        "epochs": run.epoch,
        "steps": run.step,
        "weights_file": run.weights_file,
    }
    if run.config.run.single_task_reference and report["test_at_selected"]:
        report["delta_m_percent"] = delta_m(
            report["test_at_selected"], run.config.run.single_task_reference
        )
    (run.output / "final_metrics.json").write_text(json.dumps(report, indent=2))
    return report
