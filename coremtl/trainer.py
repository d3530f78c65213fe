"""The one trainer of the toolkit, for the synthetic and the vision experiments alike.

One step: ``forward = model(batch[input_key])``, per-task losses ``L_t``, the CORE-MTL terms
(:class:`coremtl.objective.CoreMTLObjective`, optional), then the balancer computes the gradients
of its combination of the ``L_t`` plus the terms (weight 1) into ``.grad``, the global gradient norm
is clipped, and AdamW (decoupled weight decay, Loshchilov & Hutter 2019) steps under a learning
rate with linear warm-up followed by cosine annealing to zero. The balancer differentiates the
task losses at ``Forward.z_s`` when the model has streams (the last representation every head
reads, so the split is balanced as a shared layer) and at ``Forward.shared`` otherwise. Balancers that ask for it
(``needs_losses_after_step``, FAMO) get the losses recomputed on the same batch after the step
(batch norm frozen, so running statistics see each batch once), and every balancer's
``end_epoch`` is called at the end of an epoch.

Reproducibility: the run is seeded (python, numpy, torch); epoch ``e`` visits the training set in
the order ``randperm(n)`` drawn from a generator seeded by ``(seed, e)``; a checkpoint stores model,
optimiser, scheduler, balancer (with its learnable parameters), every RNG state, the CFA
generator, the step, the epoch and the position in the epoch, so a resumed run continues with the
same batches and ends bit-for-bit where an uninterrupted run ends (on the same device).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from coremtl.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from coremtl.counterfactual import frozen_batchnorm
from coremtl.forward import Forward
from coremtl.objective import CoreMTLObjective
from scm.validation import InvalidParameterError

TaskLoss = Callable[[Tensor, Mapping[str, Tensor]], Tensor]
Probe = Callable[[nn.Module, Mapping[str, Tensor], Forward, int], Mapping[str, float] | float]
Validate = Callable[[nn.Module], Mapping[str, float]]

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


class NonFiniteError(ValueError):
    """A loss or an input batch holds NaN or infinity; the message names which and the step."""


@dataclass
class TrainerConfig:
    """Settings of one run (all JSON-serialisable; written to ``config.json``).

    ``checkpoint_every`` saves ``last.pt`` every that many steps (0: at epoch ends only);
    ``stop_after_steps`` ends the run after that many steps with a checkpoint, as an interruption
    would; ``probe_every`` calls the probes every that many steps (0: never);
    ``selection_metric`` names the validation metric that picks ``best.pt`` (``selection_mode``
    ``'min'`` or ``'max'``).
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "cpu"
    mixed_precision: bool = False
    drop_last: bool = True
    input_key: str = "x"
    log_every: int = 1
    probe_every: int = 0
    checkpoint_every: int = 0
    stop_after_steps: int | None = None
    selection_metric: str | None = None
    selection_mode: str = "min"
    progress: bool = True
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("warmup_steps", "probe_every", "checkpoint_every", "num_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidParameterError(f"{name}: expected an integer >= 0, got {value!r}")
        if self.stop_after_steps is not None and self.stop_after_steps < 1:
            raise InvalidParameterError(
                f"stop_after_steps: expected a positive integer or None, got {self.stop_after_steps}"
            )
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidParameterError(f"{name}: expected a finite number >= 0, got {value!r}")
        if self.grad_clip is not None and not (
            math.isfinite(self.grad_clip) and self.grad_clip > 0
        ):
            raise InvalidParameterError(
                f"grad_clip: expected a positive number or None, got {self.grad_clip!r}"
            )
        if self.selection_mode not in ("min", "max"):
            raise InvalidParameterError(
                f"selection_mode: expected 'min' or 'max', got {self.selection_mode!r}"
            )


def epoch_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    """The visiting order of epoch ``epoch``: ``randperm`` from a generator seeded by both."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=generator)


def _num_samples(data) -> int:
    if isinstance(data, Mapping):
        sizes = {int(value.shape[0]) for value in data.values()}
        if len(sizes) != 1:
            raise InvalidParameterError(
                f"data: expected tensors with one common first dimension, got sizes {sorted(sizes)}"
            )
        return sizes.pop()
    return len(data)


def _shared_parameters(model: nn.Module) -> list[nn.Parameter]:
    """``model.shared_parameters()`` when defined, else every parameter outside ``model.heads``."""
    if hasattr(model, "shared_parameters"):
        return list(model.shared_parameters())
    heads = getattr(model, "heads", None)
    head_ids = {id(p) for p in heads.parameters()} if isinstance(heads, nn.Module) else set()
    return [p for p in model.parameters() if id(p) not in head_ids]


class Trainer:
    """Train ``model`` on ``task_losses`` combined by ``balancer`` (and ``objective`` terms).

    ``task_losses[t](prediction_t, batch)`` returns the scalar loss of task ``t``; ``probes`` are
    callbacks ``probe(model, batch, forward, step)`` returning a number or a dict of numbers, called
    every ``config.probe_every`` steps before the backward pass; ``validate(model)`` returns
    validation metrics at the end of each epoch (the model in eval mode). Results go to
    ``output_dir``: ``config.json``, ``metrics.jsonl``, ``metrics.csv``, ``last.pt``, ``best.pt``.
    """

    def __init__(
        self,
        model: nn.Module,
        task_losses: Mapping[str, TaskLoss],
        balancer,
        config: TrainerConfig,
        output_dir: str | Path,
        objective: CoreMTLObjective | None = None,
        probes: Mapping[str, Probe] | None = None,
        validate: Validate | None = None,
        run_info: Mapping[str, Any] | None = None,
    ):
        if len(task_losses) == 0:
            raise InvalidParameterError("task_losses: expected at least one task")
        if config.selection_metric is not None and validate is None:
            raise InvalidParameterError("validate: a selection_metric needs a validation function")
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        self.task_losses = dict(task_losses)
        self.balancer = balancer.to(self.device) if hasattr(balancer, "to") else balancer
        self.config = config
        self.output_dir = Path(output_dir)
        self.objective = objective
        self.probes = dict(probes or {})
        self.validate = validate
        self.run_info = dict(run_info or {})
        self.shared_params = _shared_parameters(self.model)
        self.balancer_params = [p for p in balancer.parameters()]
        self.cfa_generator = torch.Generator()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best: dict[str, Any] | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None

    def task_losses_fn(
        self, predictions: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """``{t: L_t(prediction_t, batch)}`` for every task."""
        return {name: loss(predictions[name], batch) for name, loss in self.task_losses.items()}

    def _build_optimizer(self, total_steps: int) -> None:
        groups = [
            {"params": list(self.model.parameters()), "weight_decay": self.config.weight_decay}
        ]
        if self.balancer_params:
            groups.append({"params": self.balancer_params, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=self.config.learning_rate)
        warmup = min(self.config.warmup_steps, max(total_steps - 1, 0))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(total_steps - warmup, 1)
        )
        if warmup == 0:
            self.scheduler = cosine
            return
        linear = torch.optim.lr_scheduler.LinearLR(
            self.optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
        )
        self.scheduler = torch.optim.lr_scheduler.SequentialLR(
            self.optimizer, [linear, cosine], milestones=[warmup]
        )

    def _batches(self, data, epoch: int) -> list[Tensor]:
        order = epoch_order(_num_samples(data), self.config.seed, epoch)
        batches = list(order.split(self.config.batch_size))
        if self.config.drop_last and len(batches) > 0 and len(batches[-1]) < self.config.batch_size:
            batches = batches[:-1]
        return batches

    def _iterate(self, data, batches: list[Tensor]):
        """The batches of ``data`` in the given index order. A dataset goes through a DataLoader
        whose worker seeds come from its own generator (seeded by run, epoch and position), so
        loading never draws from the global torch generator that the model's dropout uses."""
        if isinstance(data, Mapping):
            for indices in batches:
                yield {key: value[indices] for key, value in data.items()}
            return
        seed = (self.config.seed * 1_000_003 + self.epoch) * 1_000_003 + self.batch_in_epoch
        loader = torch.utils.data.DataLoader(
            data,
            batch_sampler=[b.tolist() for b in batches],
            num_workers=self.config.num_workers,
            generator=torch.Generator().manual_seed(seed),
        )
        yield from loader

    def _to_device(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        moved = {}
        for key, value in batch.items():
            if isinstance(value, Tensor):
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise NonFiniteError(
                        f"batch key {key!r} holds NaN or infinity at step {self.step}"
                    )
                value = value.to(self.device, non_blocking=True)
            moved[key] = value
        return moved

    def _autocast(self):
        if self.config.mixed_precision and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "balancer": self.balancer.state_dict(),
            "rng": rng_state(),
            "cfa_generator": self.cfa_generator.get_state(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.balancer.load_state_dict(state["balancer"])
        set_rng_state(state["rng"])
        self.cfa_generator.set_state(state["cfa_generator"])
        self.step = state["step"]
        self.epoch = state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.best = state["best"]

    def _write_config(self) -> None:
        record = {
            "trainer": asdict(self.config),
            "objective": None if self.objective is None else self.objective.config(),
            "balancer": getattr(self.balancer, "name", type(self.balancer).__name__),
            "tasks": list(self.task_losses),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "run_info": self.run_info,
        }
        (self.output_dir / "config.json").write_text(json.dumps(record, indent=2, default=str))

    def _log(self, row: Mapping[str, Any]) -> None:
        with (self.output_dir / "metrics.jsonl").open("a") as file:
            file.write(json.dumps(row) + "\n")

    def _truncate_log(self, step: int) -> None:
        path = self.output_dir / "metrics.jsonl"
        if not path.exists():
            return
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        kept = [row for row in rows if row["step"] <= step]
        path.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def _write_csv(self) -> None:
        path = self.output_dir / "metrics.jsonl"
        if not path.exists():
            return
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        columns: list[str] = []
        for row in rows:
            columns.extend(key for key in row if key not in columns)
        with (self.output_dir / "metrics.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def _run_probes(self, batch, forward) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, probe in self.probes.items():
            result = probe(self.model, batch, forward, self.step)
            if isinstance(result, Mapping):
                values.update({f"probe/{name}/{key}": float(v) for key, v in result.items()})
            else:
                values[f"probe/{name}"] = float(result)
        return values

    def _train_step(self, batch: dict[str, Tensor]) -> dict[str, Any]:
        self.model.train()
        with self._autocast():
            forward = self.model(batch[self.config.input_key])
            task_losses = self.task_losses_fn(forward.predictions, batch)
            terms = (
                {}
                if self.objective is None
                else self.objective.terms(
                    self.model,
                    batch,
                    forward,
                    self.step,
                    task_losses_fn=self.task_losses_fn,
                    generator=self.cfa_generator,
                )
            )
        task_losses = {name: loss.float() for name, loss in task_losses.items()}
        values = {name: float(loss.detach()) for name, loss in task_losses.items()}
        for name, value in values.items():
            if not math.isfinite(value):
                raise NonFiniteError(f"loss of task {name!r} is {value} at step {self.step}")
        term_values = {name: float(term.detach()) for name, term in terms.items()}
        for name, value in term_values.items():
            if not math.isfinite(value):
                raise NonFiniteError(f"CORE-MTL term {name!r} is {value} at step {self.step}")
        row: dict[str, Any] = {}
        if self.probes and self.config.probe_every and self.step % self.config.probe_every == 0:
            row.update(self._run_probes(batch, forward))
        extra = torch.stack([t.float() for t in terms.values()]).sum() if terms else None
        self.optimizer.zero_grad(set_to_none=True)
        features = forward.z_s if forward.z_s is not None else forward.shared
        weights = self.balancer.backward(task_losses, features, self.shared_params, extra)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(
                [*self.model.parameters(), *self.balancer_params], self.config.grad_clip
            )
        learning_rate = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if getattr(self.balancer, "needs_losses_after_step", False):
            with torch.no_grad(), frozen_batchnorm(self.model), self._autocast():
                after = self.model(batch[self.config.input_key])
                self.balancer.after_step(
                    {k: v.float() for k, v in self.task_losses_fn(after.predictions, batch).items()}
                )
        row.update({f"loss/{name}": value for name, value in values.items()})
        row.update({f"term/{name}": value for name, value in term_values.items()})
        row.update({f"weight/{name}": float(value) for name, value in (weights or {}).items()})
        row["lr"] = learning_rate
        return row

    def _validate_epoch(self) -> None:
        if self.validate is None:
            return
        was_training = self.model.training
        self.model.eval()
        try:
            metrics = {key: float(value) for key, value in self.validate(self.model).items()}
        finally:
            self.model.train(was_training)
        self._log(
            {"step": self.step, "epoch": self.epoch, **{f"val/{k}": v for k, v in metrics.items()}}
        )
        name = self.config.selection_metric
        if name is None:
            return
        if name not in metrics:
            raise InvalidParameterError(
                f"selection_metric: {name!r} is not among the validation metrics {sorted(metrics)}"
            )
        value = metrics[name]
        better = (
            self.best is None
            or (self.config.selection_mode == "min" and value < self.best["value"])
            or (self.config.selection_mode == "max" and value > self.best["value"])
        )
        if better:
            self.best = {"metric": name, "value": value, "step": self.step, "epoch": self.epoch}
            save_checkpoint(
                {"model": self.model.state_dict(), "best": self.best},
                self.output_dir / BEST_CHECKPOINT,
            )

    def _save_last(self) -> None:
        save_checkpoint(self.state_dict(), self.output_dir / LAST_CHECKPOINT)

    def fit(self, data, resume: bool = False) -> dict[str, Any]:
        """Train on ``data`` (a mapping of equally long tensors, or a dataset of dicts).

        With ``resume=True`` and ``output_dir/last.pt`` present, the run continues from it.
        Returns the final step, epoch, whether it was stopped early, and the best validation entry.
        """
        from tqdm.auto import tqdm

        self.output_dir.mkdir(parents=True, exist_ok=True)
        num_batches = len(self._batches(data, 0))
        if num_batches == 0:
            raise InvalidParameterError(
                f"batch_size: {self.config.batch_size} leaves no full batch in "
                f"{_num_samples(data)} samples (drop_last={self.config.drop_last})"
            )
        total_steps = num_batches * self.config.epochs
        self._build_optimizer(total_steps)
        last = self.output_dir / LAST_CHECKPOINT
        if resume and last.exists():
            self.load_state_dict(load_checkpoint(last, map_location=self.device))
            self._truncate_log(self.step)
        else:
            random.seed(self.config.seed)
            np.random.seed(self.config.seed % 2**32)  # noqa: NPY002 (the global state third-party code draws from)
            torch.manual_seed(self.config.seed)
            self.cfa_generator.manual_seed(self.config.seed + 1)
            (self.output_dir / "metrics.jsonl").write_text("")
        self._write_config()
        stopped = False
        with tqdm(total=total_steps, initial=self.step, disable=not self.config.progress) as bar:
            while self.epoch < self.config.epochs and not stopped:
                batches = self._batches(data, self.epoch)
                remaining = batches[self.batch_in_epoch :]
                for batch in self._iterate(data, remaining):
                    batch = self._to_device(batch)
                    row = self._train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    if self.step % self.config.log_every == 0:
                        self._log({"step": self.step, "epoch": self.epoch, **row})
                    bar.update(1)
                    if (
                        self.config.checkpoint_every
                        and self.step % self.config.checkpoint_every == 0
                    ):
                        self._save_last()
                    if self.config.stop_after_steps is not None and (
                        self.step >= self.config.stop_after_steps
                    ):
                        stopped = True
                        break
                if stopped:
                    break
                self._validate_epoch()
                if hasattr(self.balancer, "end_epoch"):
                    self.balancer.end_epoch()
                self.epoch += 1
                self.batch_in_epoch = 0
                self._save_last()
        if stopped:
            self._save_last()
        self._write_csv()
        return {"step": self.step, "epoch": self.epoch, "stopped": stopped, "best": self.best}
