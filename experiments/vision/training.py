"""The vision pipeline on the toolkit's one trainer (:class:`coremtl.trainer.Trainer`).

What this module adds to the trainer is the vision run as configured (:mod:`.config`):

- the method from the library's one dispatcher (:func:`.model.build.build_preset`, through
  :func:`coremtl.build`): the model, the balancer, and the staged schedule as term sources with
  start epochs (:mod:`coremtl.schedule`): the grounding term ``l_rec L_rec`` from epoch 0 (the
  render L1 in linear RGB plus the priors of ``method``,
  :class:`coremtl.hard_grounding.HardGroundingTerms`, or the soft reconstruction of
  :class:`coremtl.objective.CoreMTLObjective`), the task losses from
  ``reconstruction_epochs``, and the independence terms ``l_cka(s) L_cka + l_cfa L_cfa`` (debiased
  CKA of the pooled streams with its warm-up ramp counted from the stage start; image-level
  counterfactuals through the grounding decoder, BN frozen, a derangement of the batch) from
  ``independence_start_epoch``; the Rep-MTL or MT-CRL regulariser from the start;
- the trainer settings: the training section as it stands (it is a
  :class:`coremtl.trainer_config.OptimizationConfig`) with the seed, device, bf16 autocast and
  channels-last of the run section, checkpoints in ``<output>/checkpoints/``;
- per-epoch evaluation over whole splits: validation (carved from training; selects
  ``best.pt``) and test (reported, never used for selection), and the final report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from coremtl.hard_grounding import HardGroundingDecoder
from coremtl.run_folder import CLI_FLAGS
from coremtl.trainer import Trainer, TrainerConfig
from scm.validation import InvalidParameterError

from .attributes import attribute_tasks
from .config import VisionConfig
from .datasets.builders import Splits, build_splits
from .losses import task_losses
from .metrics import HIGHER_IS_BETTER, DenseMetrics, delta_m
from .model.build import build_preset
from .reference import Reference, resolve_reference

LAST_EPOCHS_AVERAGED = 10
SELECTION_SCORE = "selection_score"


def trainer_config(config: VisionConfig, task_start_epoch: int = 0) -> TrainerConfig:
    """The training section's optimisation settings, run with the seed, device and precision of
    the run section, the data loaders' workers, the epoch the task losses start at and the
    selection of the pipeline."""
    run = config.run
    return TrainerConfig.from_optimization(
        config.training,
        seed=run.seed,
        device=run.device,
        mixed_precision=run.bf16,
        channels_last=run.channels_last,
        input_key="image",
        task_start_epoch=task_start_epoch,
        selection_metric=SELECTION_SCORE,
        selection_mode="min",
        progress=run.progress,
        num_workers=config.data.num_workers,
        distributed_balancing=run.distributed_balancing,
    )


@dataclass
class Run:
    """A configured vision run: its trainer, its data splits, where it writes, and the
    single-task reference of ``Delta_m`` with the source of each value
    (:func:`.reference.resolve_reference`)."""

    config: VisionConfig
    trainer: Trainer
    splits: Splits
    output: Path
    weights_file: str | None
    reference: Reference = field(default_factory=Reference)

    @property
    def model(self) -> nn.Module:
        return self.trainer.model

    @property
    def device(self) -> torch.device:
        return self.trainer.device

    @property
    def balancer(self):
        return self.trainer.balancer

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.trainer.history

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def epoch(self) -> int:
        return self.trainer.epoch


def selection_score(
    metrics: Mapping[str, float], name: str, reference: Mapping[str, float], history
) -> float:
    """Lower is better: ``Delta_m`` against the single-task ``reference`` (``name`` ``delta_m``),
    or the metric ``name`` (negated when higher is better). Without a single-task reference,
    ``Delta_m`` is taken against the first epoch's validation metrics (LibMTL's convention),
    skipping those that are 0 there (a single-task reference never holds a 0: it is refused where
    it is read), so selection scores ``Delta_m`` as the final report does."""
    if name == "delta_m":
        if reference:
            return delta_m(metrics, dict(reference))
        first = history[0]["val"] if history else metrics
        reference = {k: v for k, v in first.items() if k != SELECTION_SCORE}
        return delta_m(metrics, reference, skip_zero_reference=True)
    if name not in metrics:
        raise InvalidParameterError(
            f"training.selection_metric: {name!r} is not among {sorted(metrics)} or 'delta_m'"
        )
    return -metrics[name] if HIGHER_IS_BETTER.get(name, False) else metrics[name]


def build_run(config: VisionConfig, output: Path | None = None) -> Run:
    """Model, data, balancer, term sources and the trainer that runs them. The single-task
    reference of ``Delta_m`` is resolved once (:func:`~.reference.resolve_reference`: the file
    wins) and kept with its sources on the returned run; ``config`` is left as it is."""
    from coremtl.devices import check_device

    torch.manual_seed(config.run.seed)
    check_device(config.run.device, "run.device", available=True)
    reference = resolve_reference(config)
    splits = build_splits(config.data, config.run.seed)
    preset, weights_file = build_preset(config)
    output = Path(output or config.run.output_dir)
    tasks = list(config.data.tasks)
    recorded = config.to_dict()
    recorded["run"]["single_task_reference"] = dict(reference.values)
    trainer = Trainer(
        preset.model,
        {task: _task_loss(task) for task in tasks},
        preset.balancer,
        trainer_config(config, preset.task_start_epoch),
        output,
        objective=preset.term_sources,
        validate=lambda m: _validation_metrics(m, splits.val, config, reference.values, trainer),
        test=lambda m: evaluate(m, splits.test, config, trainer.device),
        run_info={"vision_config": recorded, "weights_file": weights_file},
        checkpoint_dir=output / "checkpoints",
        checkpoint_metadata={"config": json.dumps(recorded)},
        task_loss_vector=attribute_loss_vector(tasks) if attribute_tasks(tasks) == tasks else None,
    )
    trainer.folder_flags = CLI_FLAGS
    trainer.prepare(splits.train)
    return Run(config, trainer, splits, output, weights_file, reference)


def attribute_loss_vector(tasks: list[str]):
    """The binary cross-entropies of every attribute task from one call on the stacked logits
    ``(B, K)`` against the stacked labels, averaged over the batch: the trainer's
    ``task_loss_vector``, so the losses cost the same for 10 or 40 attributes."""

    def losses(predictions: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> Tensor:
        logits = torch.stack([predictions[t] for t in tasks], dim=1).float()
        labels = torch.stack([batch[t] for t in tasks], dim=1).float()
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(dim=0)

    return losses


def _task_loss(task: str):
    def loss(prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return task_losses({task: prediction}, batch, [task])[task]

    return loss


def _validation_metrics(
    model, dataset, config: VisionConfig, reference: Mapping[str, float], trainer: Trainer
) -> dict:
    metrics = evaluate(model, dataset, config, trainer.device)
    name = config.training.selection_metric
    metrics[SELECTION_SCORE] = selection_score(metrics, name, reference, trainer.history)
    return metrics


def first_batch(run: Run) -> dict[str, Tensor]:
    """The first training batch of epoch 0 for this process (benchmarks and tests)."""
    trainer = run.trainer
    indices = trainer.epoch_batches(run.splits.train, 0)[:1]
    return next(iter(trainer.iterate(run.splits.train, indices)))


def training_step(run: Run, batch: Mapping[str, Tensor]) -> dict:
    """One optimisation step of the run's trainer on ``batch``; returns the logged values."""
    record = run.trainer.train_step(batch)
    run.trainer.step += 1
    return record


def make_loader(dataset, config: VisionConfig, batch_size: int | None = None) -> DataLoader:
    """Sequential batches of ``dataset`` for evaluation."""
    return DataLoader(
        dataset,
        batch_size=batch_size or config.training.batch_size,
        shuffle=False,
        num_workers=config.data.num_workers,
    )


def _move(batch: Mapping[str, Tensor], device: torch.device, channels_last: bool) -> dict:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if key == "image" and channels_last:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module, dataset, config: VisionConfig, device: torch.device, on_batch=None
) -> dict:
    """Metrics over the whole ``dataset`` (inference: encoder, semantic stream and heads; the
    grounding decoder only to score the decomposition when the truth is there). ``on_batch``, when
    given, is called with each batch's predictions in dataset order."""
    was_training = model.training
    model.eval()
    metrics = DenseMetrics(
        config.data.tasks, config.data.num_classes, device, config.metrics.miou_convention
    )
    decoder = getattr(model, "decoder", None)
    use_cuda_autocast = device.type == "cuda" and config.run.bf16
    channels_last = device.type == "cuda" and config.run.channels_last
    for batch in make_loader(dataset, config):
        batch = _move(batch, device, channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda_autocast):
            forward = model(batch["image"])
            predictions = {k: v.float() for k, v in forward.predictions.items()}
            if isinstance(decoder, HardGroundingDecoder) and "albedo" in batch:
                components = decoder.components(forward.z_s, forward.z_r)
                predictions["albedo"] = components["albedo"].float()
                predictions["shading"] = components["shading"].float()
        metrics.update(predictions, batch)
        if on_batch is not None:
            on_batch(predictions)
    model.train(was_training)
    return metrics.compute()


def train(
    run: Run, resume: bool = False, stop_after_steps: int | None = None, overwrite: bool = False
) -> dict:
    """Train to ``training.epochs`` (or stop after ``stop_after_steps`` steps in all, with a
    checkpoint, as an interruption would), then write and return the final report. A folder
    holding an earlier run is refused unless ``resume`` (continue it) or ``overwrite``."""
    from coremtl import distributed

    run.trainer.config = replace(run.trainer.config, stop_after_steps=stop_after_steps)
    run.trainer.fit(run.splits.train, resume=resume, overwrite=overwrite)
    return final_report(run) if distributed.is_main_process() else {}


def final_report(run: Run) -> dict:
    """Test metrics of the checkpoint selected on validation and the mean of the last epochs."""
    tests = [record["test"] for record in run.history if record.get("test")]
    last = tests[-LAST_EPOCHS_AVERAGED:]
    mean_last = {k: sum(t[k] for t in last) / len(last) for k in last[0]} if last else {}
    best = run.trainer.best or {}
    report = {
        "selected_epoch": best.get("epoch"),
        "selection_metric": run.config.training.selection_metric,
        "test_at_selected": best.get("test", {}),
        "val_at_selected": {k: v for k, v in best.get("val", {}).items() if k != SELECTION_SCORE},
        f"test_mean_last_{LAST_EPOCHS_AVERAGED}_epochs": mean_last,
        "epochs": run.epoch,
        "steps": run.step,
        "weights_file": run.weights_file,
    }
    if "segmentation" in run.config.data.tasks:
        report["miou_convention"] = run.config.metrics.miou_convention
    if run.reference.values:
        report["single_task_reference"] = run.reference.record()
    if run.reference.values and report["test_at_selected"]:
        report["delta_m_percent"] = delta_m(report["test_at_selected"], run.reference.values)
    (run.output / "final_metrics.json").write_text(json.dumps(report, indent=2))
    return report
