"""The one trainer of the toolkit, for the synthetic and the vision experiments alike.

One step: ``forward = model(batch[input_key])``, per-task losses ``L_t``, the active loss terms
(the CORE-MTL objective :class:`coremtl.objective.CoreMTLObjective`, grounding, regularisers: any
source with a ``terms(model, batch, forward, step, task_losses_fn, generator) -> dict`` method,
each switched on at its own start epoch), then the balancer computes the gradients of its
combination of the ``L_t`` plus the terms (weight 1) into ``.grad``; the gradients are averaged
over processes when distributed (:mod:`coremtl.distributed`), the global gradient norm is clipped,
and AdamW (decoupled weight decay, Loshchilov & Hutter 2019) steps under a learning rate with
linear warm-up followed by cosine annealing to zero. Before ``task_start_epoch`` the task losses
are left out and only the terms train (a reconstruction warm-up stage). The balancer
differentiates the task losses at ``Forward.z_s`` when the model has streams (the last
representation every head reads, so the split is balanced as a shared layer) and at
``Forward.shared`` otherwise (or when the heads also read pre-split features). Balancers that
ask for it (``needs_losses_after_step``, FAMO) get the losses recomputed on the same batch after
the step (batch norm frozen, so running statistics see each batch once), and every balancer's
``end_epoch`` is called at the end of an epoch.

Each epoch ends with ``validate(model)`` (the split that selects ``best.pt``) and ``test(model)``
(reported, never used for selection), both optional, and an epoch record (mean of the logged
training values, validation and test metrics) in ``epochs.jsonl`` and :attr:`Trainer.history`.

Reproducibility: the run is seeded (python, numpy, torch); epoch ``e`` visits the training set in
the order ``randperm(n)`` drawn from a generator seeded by ``(seed, e)`` (rank ``r`` of ``w``
processes takes positions ``r, r + w, ...`` of it); a checkpoint stores model, optimiser,
scheduler, balancer (with its learnable parameters), every RNG state, the CFA generator, the step,
the epoch, the position in the epoch, the running epoch sums and the history, so a run resumed
from any step continues with the same batches and ends bit-for-bit where an uninterrupted run
ends (on the same device). Datasets with ``set_epoch(epoch)`` (seeded augmentation) are told the
epoch before it starts.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from coremtl import distributed
from coremtl.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from coremtl.counterfactual import frozen_batchnorm
from coremtl.forward import Forward
from coremtl.objective import TaskLossesFn
from scm.validation import InvalidParameterError

TaskLoss = Callable[[Tensor, Mapping[str, Tensor]], Tensor]
TaskLossVector = Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor]
Probe = Callable[[nn.Module, Mapping[str, Tensor], Forward, int], Mapping[str, float] | float]
Evaluate = Callable[[nn.Module], Mapping[str, float]]

LR_SCHEDULES = ("cosine", "constant")
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


class NonFiniteError(ValueError):
    """A loss or an input batch holds NaN or infinity; the message names which and the step."""


class TermSource(Protocol):
    """Anything that adds loss terms: :class:`coremtl.objective.CoreMTLObjective`, a grounding
    loss, the Rep-MTL or MT-CRL regulariser. ``step`` counts from the source's start."""

    def terms(
        self,
        model: nn.Module,
        batch: Mapping[str, Tensor],
        forward: Forward,
        step: int,
        task_losses_fn: TaskLossesFn | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]: ...


@dataclass
class ScheduledTerms:
    """A term source switched on at ``start_epoch``; the ``step`` it receives counts from there
    (so a warm-up ramp starts when the source does). ``name`` labels it in the logs (default: the
    source's class name)."""

    source: TermSource
    start_epoch: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.start_epoch, bool) or not isinstance(self.start_epoch, int):
            raise InvalidParameterError(
                f"start_epoch: expected an integer >= 0, got {self.start_epoch!r}"
            )
        if self.start_epoch < 0:
            raise InvalidParameterError(
                f"start_epoch: expected an integer >= 0, got {self.start_epoch!r}"
            )
        if not self.name:
            self.name = type(self.source).__name__


@dataclass
class TrainerConfig:
    """Settings of one run (all JSON-serialisable; written to ``config.json``).

    ``checkpoint_every`` saves ``last.pt`` every that many steps (0: at epoch ends only);
    ``stop_after_steps`` ends the run after that many steps with a checkpoint, as an interruption
    would; ``probe_every`` calls the probes every that many steps (0: never);
    ``selection_metric`` names the validation metric that picks ``best.pt`` (``selection_mode``
    ``'min'`` or ``'max'``); ``task_start_epoch`` leaves the task losses out of the epochs before
    it; ``max_batches_per_epoch`` caps an epoch (0: every full batch); ``weight_decay_on_vectors``
    ``False`` exempts biases and normalisation scales (parameters with at most one dimension)
    from weight decay; ``lr_schedule`` is ``'cosine'`` (annealed to zero over the run) or
    ``'constant'``, after ``warmup_steps`` of linear warm-up; ``mixed_precision`` is bf16 autocast and ``channels_last`` the memory
    format of the model and its input, both on CUDA only.
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-4
    weight_decay: float = 1e-4
    weight_decay_on_vectors: bool = True
    warmup_steps: int = 0
    lr_schedule: str = "cosine"
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "cpu"
    mixed_precision: bool = False
    channels_last: bool = False
    drop_last: bool = True
    input_key: str = "x"
    task_start_epoch: int = 0
    max_batches_per_epoch: int = 0
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
        for name in (
            "warmup_steps",
            "probe_every",
            "checkpoint_every",
            "num_workers",
            "task_start_epoch",
            "max_batches_per_epoch",
        ):
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
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidParameterError(
                f"lr_schedule: expected one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
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


def _scheduled(sources) -> list[ScheduledTerms]:
    if sources is None:
        return []
    if isinstance(sources, ScheduledTerms) or hasattr(sources, "terms"):
        sources = [sources]
    return [s if isinstance(s, ScheduledTerms) else ScheduledTerms(s) for s in sources]


def _source_config(source: TermSource) -> Any:
    if hasattr(source, "config"):
        return source.config()
    return type(source).__name__


class Trainer:
    """Train ``model`` on ``task_losses`` combined by ``balancer`` (plus ``objective`` terms).

    ``task_losses[t](prediction_t, batch)`` returns the scalar loss of task ``t``; ``objective`` is
    one term source or a list of them, each possibly wrapped in :class:`ScheduledTerms` to start
    at a later epoch; ``probes`` are callbacks ``probe(model, batch, forward, step)`` returning a
    number or a dict of numbers, called every ``config.probe_every`` steps before the backward
    pass; ``validate(model)`` returns the validation metrics that select ``best.pt`` and
    ``test(model)`` the reported ones, at the end of each epoch (the model in eval mode, on the
    main process only). ``checkpoint_metadata`` (strings, numbers) is stored in every checkpoint.
    ``task_loss_vector(predictions, batch)``, when given, returns the ``(K,)`` losses of every task
    in ``task_losses`` order from one call (e.g. one binary cross-entropy with
    ``reduction='none'`` over the stacked logits of :class:`coremtl.representation.LinearHeads`,
    averaged over the batch), so the cost of the losses does not grow with K; ``task_losses``
    then only names the tasks.
    Results go to ``output_dir``: ``config.json``, ``metrics.jsonl`` (one row per logged step and
    one per validation), ``metrics.csv``, ``epochs.jsonl``; checkpoints ``last.pt`` and
    ``best.pt`` go to ``checkpoint_dir`` (default ``output_dir``).
    """

    def __init__(
        self,
        model: nn.Module,
        task_losses: Mapping[str, TaskLoss],
        balancer,
        config: TrainerConfig,
        output_dir: str | Path | None,
        objective: TermSource
        | ScheduledTerms
        | Sequence[TermSource | ScheduledTerms]
        | None = None,
        probes: Mapping[str, Probe] | None = None,
        validate: Evaluate | None = None,
        test: Evaluate | None = None,
        run_info: Mapping[str, Any] | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_metadata: Mapping[str, Any] | None = None,
        task_loss_vector: TaskLossVector | None = None,
    ):
        if len(task_losses) == 0:
            raise InvalidParameterError("task_losses: expected at least one task")
        if config.selection_metric is not None and validate is None:
            raise InvalidParameterError("validate: a selection_metric needs a validation function")
        self.device = torch.device(config.device)
        self.config = config
        self.model = model.to(self.device)
        if self._uses_channels_last():
            self.model = self.model.to(memory_format=torch.channels_last)
        self.task_losses = dict(task_losses)
        self.task_loss_vector = task_loss_vector
        self.balancer = balancer.to(self.device) if hasattr(balancer, "to") else balancer
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.output_dir
        self.term_sources = _scheduled(objective)
        self.probes = dict(probes or {})
        self.validate = validate
        self.test = test
        self.run_info = dict(run_info or {})
        self.checkpoint_metadata = dict(checkpoint_metadata or {})
        self.shared_params = _shared_parameters(self.model)
        self.balancer_params = list(balancer.parameters())
        self.cfa_generator = torch.Generator()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.batches_per_epoch = 0
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.epoch_sums: dict[str, float] = {}
        self.epoch_count = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None

    @property
    def is_main(self) -> bool:
        return distributed.is_main_process()

    @property
    def writes_files(self) -> bool:
        """Whether this process writes outputs (the main process of a run with an output_dir)."""
        return self.output_dir is not None and self.is_main

    def _uses_channels_last(self) -> bool:
        return self.config.channels_last and self.device.type == "cuda"

    def task_losses_fn(
        self, predictions: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """``{t: L_t(prediction_t, batch)}`` for every task (one ``task_loss_vector`` call when
        given)."""
        if self.task_loss_vector is None:
            return {name: loss(predictions[name], batch) for name, loss in self.task_losses.items()}
        losses = self.task_loss_vector(predictions, batch)
        if tuple(losses.shape) != (len(self.task_losses),):
            raise InvalidParameterError(
                f"task_loss_vector: expected a tensor of shape ({len(self.task_losses)},), one "
                f"loss per task in the order {list(self.task_losses)}, got {tuple(losses.shape)}"
            )
        return dict(zip(self.task_losses, losses.unbind(), strict=True))

    def tasks_active(self, epoch: int) -> bool:
        return epoch >= self.config.task_start_epoch

    def active_sources(self, epoch: int) -> list[ScheduledTerms]:
        return [s for s in self.term_sources if epoch >= s.start_epoch]

    def _build_optimizer(self, total_steps: int) -> None:
        parameters = list(self.model.parameters())
        if self.config.weight_decay_on_vectors:
            groups = [{"params": parameters, "weight_decay": self.config.weight_decay}]
        else:
            groups = [
                {
                    "params": [p for p in parameters if p.ndim > 1],
                    "weight_decay": self.config.weight_decay,
                },
                {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0},
            ]
        if self.balancer_params:
            groups.append({"params": self.balancer_params, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=self.config.learning_rate)
        warmup = min(self.config.warmup_steps, max(total_steps - 1, 0))
        if self.config.lr_schedule == "cosine":
            after = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=max(total_steps - warmup, 1)
            )
        else:
            after = torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)
        if warmup == 0:
            self.scheduler = after
            return
        linear = torch.optim.lr_scheduler.LinearLR(
            self.optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
        )
        self.scheduler = torch.optim.lr_scheduler.SequentialLR(
            self.optimizer, [linear, after], milestones=[warmup]
        )

    def epoch_batches(self, data, epoch: int) -> list[Tensor]:
        """The index batches this process visits in ``epoch``: its share (positions ``r, r + w,
        ...`` of the epoch order), cut into ``batch_size`` chunks, the last incomplete one dropped
        when ``drop_last``, at most ``max_batches_per_epoch`` of them."""
        order = epoch_order(_num_samples(data), self.config.seed, epoch)
        world = distributed.world_size()
        usable = (len(order) // world) * world
        share = order[:usable][distributed.rank() :: world]
        batches = list(share.split(self.config.batch_size))
        if self.config.drop_last and len(batches) > 0 and len(batches[-1]) < self.config.batch_size:
            batches = batches[:-1]
        if self.config.max_batches_per_epoch:
            batches = batches[: self.config.max_batches_per_epoch]
        return batches

    def iterate(self, data, batches: Sequence[Tensor]):
        """The batches of ``data`` in the given index order. A dataset goes through a DataLoader
        whose worker seeds come from its own generator (seeded by run, epoch and position), so
        loading never draws from the global torch generator that the model's dropout uses."""
        if isinstance(data, Mapping):
            for indices in batches:
                yield {key: value[indices] for key, value in data.items()}
            return
        if hasattr(data, "set_epoch"):
            data.set_epoch(self.epoch)
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
                if key == self.config.input_key and value.ndim == 4 and self._uses_channels_last():
                    value = value.contiguous(memory_format=torch.channels_last)
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
            "history": self.history,
            "epoch_sums": self.epoch_sums,
            "epoch_count": self.epoch_count,
            "trainer_config": asdict(self.config),
            **self.checkpoint_metadata,
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
        self.history = list(state["history"])
        self.epoch_sums = dict(state["epoch_sums"])
        self.epoch_count = state["epoch_count"]

    def _write_config(self) -> None:
        record = {
            "trainer": asdict(self.config),
            "objective": None
            if not self.term_sources
            else [
                {"name": s.name, "start_epoch": s.start_epoch, "source": _source_config(s.source)}
                for s in self.term_sources
            ],
            "balancer": getattr(self.balancer, "name", type(self.balancer).__name__),
            "tasks": list(self.task_losses),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "world_size": distributed.world_size(),
            "run_info": self.run_info,
        }
        (self.output_dir / "config.json").write_text(json.dumps(record, indent=2, default=str))

    def _append(self, name: str, row: Mapping[str, Any]) -> None:
        if not self.writes_files:
            return
        with (self.output_dir / name).open("a") as file:
            file.write(json.dumps(row) + "\n")

    def _truncate(self, name: str, key: str, bound: int) -> None:
        """Keep the rows of ``output_dir/name`` whose ``key`` is below ``bound``."""
        path = self.output_dir / name
        if not path.exists():
            return
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        kept = [row for row in rows if row[key] < bound]
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

    def _terms(self, batch, forward) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        for scheduled in self.active_sources(self.epoch):
            step_in_stage = self.step - scheduled.start_epoch * self.batches_per_epoch
            produced = scheduled.source.terms(
                self.model,
                batch,
                forward,
                step_in_stage,
                task_losses_fn=self.task_losses_fn,
                generator=self.cfa_generator,
            )
            overlap = set(produced) & set(terms)
            if overlap:
                raise InvalidParameterError(
                    f"objective: two term sources both produce {sorted(overlap)}"
                )
            terms.update(produced)
        return terms

    def _balanced_at(self, forward: Forward) -> Tensor:
        """``Z_s`` when every head reads it alone, else the shared representation (single-stream
        models, and the skip-connection ablation whose heads also read pre-split features)."""
        heads_read_more = getattr(self.model, "heads_read_pre_split_features", False)
        return forward.z_s if forward.z_s is not None and not heads_read_more else forward.shared

    def train_step(self, batch: Mapping[str, Tensor]) -> dict[str, Any]:
        """One optimisation step on ``batch`` (moved to the device and checked); returns the
        logged values. The step counter is advanced by :meth:`fit`, not here."""
        batch = self._to_device(batch)
        tasks_on = self.tasks_active(self.epoch)
        self.model.train()
        with self._autocast():
            forward = self.model(batch[self.config.input_key])
            task_losses = self.task_losses_fn(forward.predictions, batch) if tasks_on else {}
            terms = self._terms(batch, forward)
        task_losses = {name: loss.float() for name, loss in task_losses.items()}
        values = (
            dict(
                zip(
                    task_losses,
                    torch.stack(list(task_losses.values())).detach().tolist(),
                    strict=True,
                )
            )
            if task_losses
            else {}
        )
        for name, value in values.items():
            if not math.isfinite(value):
                raise NonFiniteError(f"loss of task {name!r} is {value} at step {self.step}")
        term_values = {name: float(term.detach()) for name, term in terms.items()}
        for name, value in term_values.items():
            if not math.isfinite(value):
                raise NonFiniteError(f"loss term {name!r} is {value} at step {self.step}")
        row: dict[str, Any] = {}
        if self.probes and self.config.probe_every and self.step % self.config.probe_every == 0:
            row.update(self._run_probes(batch, forward))
        extra = torch.stack([t.float() for t in terms.values()]).sum() if terms else None
        self.optimizer.zero_grad(set_to_none=True)
        weights: Mapping[str, float] = {}
        if tasks_on:
            weights = (
                self.balancer.backward(
                    task_losses, self._balanced_at(forward), self.shared_params, extra
                )
                or {}
            )
        elif extra is not None:
            extra.backward()
        else:
            raise InvalidParameterError(
                f"task_start_epoch: epoch {self.epoch} trains neither the tasks nor any term"
            )
        distributed.average_gradients([*self.model.parameters(), *self.balancer_params])
        if self.config.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(
                [*self.model.parameters(), *self.balancer_params], self.config.grad_clip
            )
            row["grad_norm"] = float(norm)
        learning_rate = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if tasks_on and getattr(self.balancer, "needs_losses_after_step", False):
            with torch.no_grad(), frozen_batchnorm(self.model), self._autocast():
                after = self.model(batch[self.config.input_key])
                self.balancer.after_step(
                    {k: v.float() for k, v in self.task_losses_fn(after.predictions, batch).items()}
                )
        row.update({f"loss/{name}": value for name, value in values.items()})
        row.update({f"term/{name}": value for name, value in term_values.items()})
        row.update({f"weight/{name}": float(value) for name, value in weights.items()})
        row["lr"] = learning_rate
        return row

    def _evaluate(self, function: Evaluate | None) -> dict[str, float]:
        if function is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            return {key: float(value) for key, value in function(self.model).items()}
        finally:
            self.model.train(was_training)

    def _select(self, metrics: Mapping[str, float], test: Mapping[str, float]) -> None:
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
            self.best = {
                "metric": name,
                "value": value,
                "step": self.step,
                "epoch": self.epoch,
                "val": dict(metrics),
                "test": dict(test),
            }
            if self.writes_files:
                save_checkpoint(
                    {
                        "model": self.model.state_dict(),
                        "best": self.best,
                        **self.checkpoint_metadata,
                    },
                    self.checkpoint_dir / BEST_CHECKPOINT,
                )

    def _end_epoch(self) -> None:
        record: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "tasks_active": self.tasks_active(self.epoch),
            "terms_active": [s.name for s in self.active_sources(self.epoch)],
            "train": {k: v / max(self.epoch_count, 1) for k, v in self.epoch_sums.items()},
        }
        if self.is_main:
            metrics = self._evaluate(self.validate)
            test = self._evaluate(self.test)
            if metrics:
                self._append(
                    "metrics.jsonl",
                    {
                        "step": self.step,
                        "epoch": self.epoch,
                        **{f"val/{k}": v for k, v in metrics.items()},
                    },
                )
            record["val"] = metrics
            record["test"] = test
            self._select(metrics, test)
            self.history.append(record)
            self._append("epochs.jsonl", record)
        if hasattr(self.balancer, "end_epoch"):
            self.balancer.end_epoch()
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_sums = {}
        self.epoch_count = 0
        self._save_last()

    def _save_last(self) -> None:
        if self.output_dir is None:
            return
        if self.is_main:
            save_checkpoint(self.state_dict(), self.checkpoint_dir / LAST_CHECKPOINT)
        distributed.barrier()

    def _accumulate(self, row: Mapping[str, Any]) -> None:
        for key, value in row.items():
            if isinstance(value, float):
                self.epoch_sums[key] = self.epoch_sums.get(key, 0.0) + value
        self.epoch_count += 1

    def prepare(self, data) -> int:
        """Build optimiser and schedule for ``data``; returns the total number of steps."""
        self.batches_per_epoch = len(self.epoch_batches(data, 0))
        if self.batches_per_epoch == 0:
            raise InvalidParameterError(
                f"batch_size: {self.config.batch_size} leaves no full batch in "
                f"{_num_samples(data)} samples (drop_last={self.config.drop_last}, "
                f"{distributed.world_size()} processes)"
            )
        total_steps = self.batches_per_epoch * self.config.epochs
        self._build_optimizer(total_steps)
        return total_steps

    def fit(self, data, resume: bool = False) -> dict[str, Any]:
        """Train on ``data`` (a mapping of equally long tensors, or a dataset of dicts).

        With ``resume=True`` and ``checkpoint_dir/last.pt`` present, the run continues from it.
        With ``output_dir=None`` nothing is written (a quick in-memory run; no resume).
        Returns the final step, epoch, whether it was stopped early, and the best validation entry.
        """
        from tqdm.auto import tqdm

        if resume and self.output_dir is None:
            raise InvalidParameterError("resume: a run without an output_dir has no checkpoint")
        if self.writes_files:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        total_steps = self.prepare(data)
        last = None if self.checkpoint_dir is None else self.checkpoint_dir / LAST_CHECKPOINT
        if resume and last.exists():
            self.load_state_dict(load_checkpoint(last, map_location=self.device))
            if self.writes_files:
                self._truncate("metrics.jsonl", "step", self.step + 1)
                self._truncate("epochs.jsonl", "epoch", self.epoch)
        else:
            random.seed(self.config.seed)
            np.random.seed(self.config.seed % 2**32)  # noqa: NPY002 (the global state third-party code draws from)
            torch.manual_seed(self.config.seed)
            self.cfa_generator.manual_seed(self.config.seed + 1)
            if self.writes_files:
                (self.output_dir / "metrics.jsonl").write_text("")
                (self.output_dir / "epochs.jsonl").write_text("")
        distributed.broadcast_module(self.model)
        if self.writes_files:
            self._write_config()
        stopped = False
        with tqdm(
            total=total_steps,
            initial=self.step,
            disable=not (self.config.progress and self.is_main),
        ) as bar:
            while self.epoch < self.config.epochs and not stopped:
                batches = self.epoch_batches(data, self.epoch)
                remaining = batches[self.batch_in_epoch :]
                for batch in self.iterate(data, remaining):
                    row = self.train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    self._accumulate(row)
                    if self.step % self.config.log_every == 0:
                        self._append(
                            "metrics.jsonl", {"step": self.step, "epoch": self.epoch, **row}
                        )
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
                self._end_epoch()
        if stopped:
            self._save_last()
        if self.writes_files:
            self._write_csv()
        return {"step": self.step, "epoch": self.epoch, "stopped": stopped, "best": self.best}
