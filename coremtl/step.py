"""One optimisation step of a multi-task model, the part of :class:`coremtl.trainer.Trainer`
that sees a single batch.

``forward = model(batch[input_key])``, per-task losses ``L_t`` and the terms of the active
sources (:mod:`coremtl.terms`), both checked finite; the balancer
(:class:`coremtl.balancers.Balancer`) puts the gradient of its combination of the ``L_t`` plus
the terms (weight 1) into ``.grad``, differentiating the task losses at ``Forward.z_s`` when the
model has streams (the last representation every head reads, so the split is balanced as a shared
layer) and at ``Forward.shared`` otherwise (or when the heads also read pre-split features).
Before ``task_start_epoch`` only the terms train. Under data parallelism the balancer sees the
global batch's quantities or its own batch's (``config.distributed_balancing``,
:mod:`coremtl.distributed_balancing`), gradients are averaged over processes
(:mod:`coremtl.distributed`), the global norm is clipped, and AdamW steps
(:mod:`coremtl.optimization`). Balancers that ask for it (``needs_losses_after_step``, FAMO) get
the losses recomputed on the same batch after the step, batch norm frozen so running statistics
see each batch once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from coremtl import distributed, distributed_balancing
from coremtl.balancers.base import Balancer
from coremtl.counterfactual import frozen_batchnorm
from coremtl.devices import check_device
from coremtl.forward import Forward
from coremtl.optimization import build_optimizer
from coremtl.terms import ScheduledTerms, Sources, as_scheduled, collect_terms
from coremtl.trainer_config import TrainerConfig
from scm.validation import InvalidParameterError, NonFiniteError

TaskLoss = Callable[[Tensor, Mapping[str, Tensor]], Tensor]
TaskLossVector = Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor]
Probe = Callable[[nn.Module, Mapping[str, Tensor], Forward, int], Mapping[str, float] | float]


def shared_parameters(model: nn.Module) -> list[nn.Parameter]:
    """``model.shared_parameters()`` when defined, else every parameter outside ``model.heads``."""
    if hasattr(model, "shared_parameters"):
        return list(model.shared_parameters())
    heads = getattr(model, "heads", None)
    head_ids = {id(p) for p in heads.parameters()} if isinstance(heads, nn.Module) else set()
    return [p for p in model.parameters() if id(p) not in head_ids]


def _at_least_float32(loss: Tensor) -> Tensor:
    """A bf16 / fp16 loss (autocast) in float32; float32 and float64 losses as they are."""
    return loss if loss.dtype in (torch.float32, torch.float64) else loss.float()


def _finite_or_raise(values: Mapping[str, float], what: str, step: int) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteError(f"{what} {name!r} is {value} at step {step}")


class TrainingStep:
    """The model, its task losses, balancer, term sources and probes, and the optimiser that
    steps them (see the module docstring and :class:`coremtl.trainer.Trainer` for the
    arguments). ``step``, ``epoch`` and ``batches_per_epoch`` are the run's position, kept by the
    trainer."""

    def __init__(
        self,
        model: nn.Module,
        task_losses: Mapping[str, TaskLoss],
        balancer: Balancer,
        config: TrainerConfig,
        objective: Sources = None,
        probes: Mapping[str, Probe] | None = None,
        task_loss_vector: TaskLossVector | None = None,
    ):
        if len(task_losses) == 0:
            raise InvalidParameterError("task_losses: expected at least one task")
        check_device(config.device, "device", available=True)
        self.device = torch.device(config.device)
        self.config = config
        self.model = model.to(self.device)
        if self._uses_channels_last():
            self.model = self.model.to(memory_format=torch.channels_last)
        self.task_losses = dict(task_losses)
        self.task_loss_vector = task_loss_vector
        if distributed.is_distributed():
            distributed_balancing.check_supported(balancer, config.distributed_balancing)
        self.balancer = balancer.to(self.device)
        self.term_sources = as_scheduled(objective)
        self.probes = dict(probes or {})
        self.shared_params = shared_parameters(self.model)
        self.balancer_params = list(balancer.parameters())
        self.cfa_generator = torch.Generator()
        self.step = 0
        self.epoch = 0
        self.batches_per_epoch = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None

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
        return [s for s in self.term_sources if s.active(epoch)]

    def _build_optimizer(self, total_steps: int) -> None:
        self.optimizer, self.scheduler = build_optimizer(
            self.config, list(self.model.parameters()), self.balancer_params, total_steps
        )

    def _to_device(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if self.config.input_key not in batch:
            raise InvalidParameterError(
                f"input_key: the batch has no entry {self.config.input_key!r} "
                f"(its keys: {sorted(batch)})"
            )
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

    def _run_probes(self, batch, forward) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, probe in self.probes.items():
            result = probe(self.model, batch, forward, self.step)
            if isinstance(result, Mapping):
                values.update({f"probe/{name}/{key}": float(v) for key, v in result.items()})
            else:
                values[f"probe/{name}"] = float(result)
        return values

    def _balanced_at(self, forward: Forward) -> Tensor:
        """``Z_s`` when every head reads it alone, else the shared representation (single-stream
        models, and the skip-connection ablation whose heads also read pre-split features)."""
        heads_read_more = getattr(self.model, "heads_read_pre_split_features", False)
        return forward.z_s if forward.z_s is not None and not heads_read_more else forward.shared

    def _backward(self, task_losses, terms, forward: Forward) -> Mapping[str, float]:
        """Gradients of the balanced task losses plus the terms; returns the task weights."""
        extra = torch.stack([t.float() for t in terms.values()]).sum() if terms else None
        self.optimizer.zero_grad(set_to_none=True)
        if self.tasks_active(self.epoch):
            at = self._balanced_at(forward)
            mode = self.config.distributed_balancing
            return (
                distributed_balancing.balanced_backward(
                    self.balancer, mode, task_losses, at, self.shared_params, extra
                )
                or {}
            )
        if extra is None:
            raise InvalidParameterError(
                f"task_start_epoch: epoch {self.epoch} trains neither the tasks nor any term"
            )
        extra.backward()
        return {}

    def train_step(self, batch: Mapping[str, Tensor]) -> dict[str, Any]:
        """One optimisation step on ``batch`` (moved to the device and checked); returns the
        logged values. The step counter is advanced by :meth:`fit`, not here."""
        batch = self._to_device(batch)
        tasks_on = self.tasks_active(self.epoch)
        self.model.train()
        with self._autocast():
            forward = self.model(batch[self.config.input_key])
            task_losses = self.task_losses_fn(forward.predictions, batch) if tasks_on else {}
            terms = collect_terms(
                self.term_sources,
                self.epoch,
                self.step,
                self.batches_per_epoch,
                self.model,
                batch,
                forward,
                self.task_losses_fn,
                self.cfa_generator,
            )
        task_losses = {name: _at_least_float32(loss) for name, loss in task_losses.items()}
        values = {}
        if task_losses:
            stacked = torch.stack(list(task_losses.values())).detach().tolist()
            values = dict(zip(task_losses, stacked, strict=True))
        _finite_or_raise(values, "loss of task", self.step)
        term_values = {name: float(term.detach()) for name, term in terms.items()}
        _finite_or_raise(term_values, "loss term", self.step)
        row: dict[str, Any] = {}
        if self.probes and self.config.probe_every and self.step % self.config.probe_every == 0:
            row.update(self._run_probes(batch, forward))
        weights = self._backward(task_losses, terms, forward)
        parameters = [*self.model.parameters(), *self.balancer_params]
        distributed.average_gradients(parameters)
        if self.config.grad_clip is not None:
            row["grad_norm"] = float(
                torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
            )
        learning_rate = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if tasks_on and self.balancer.needs_losses_after_step:
            with torch.no_grad(), frozen_batchnorm(self.model), self._autocast():
                after = self.model(batch[self.config.input_key])
                losses = self.task_losses_fn(after.predictions, batch)
                losses = {k: _at_least_float32(v) for k, v in losses.items()}
                mode = self.config.distributed_balancing
                self.balancer.after_step(distributed_balancing.after_step_losses(losses, mode))
        row.update({f"loss/{name}": value for name, value in values.items()})
        row.update({f"term/{name}": value for name, value in term_values.items()})
        row.update({f"weight/{name}": float(value) for name, value in weights.items()})
        row["lr"] = learning_rate
        return row
