"""The settings of one training run, checked when built.

:class:`OptimizationConfig` is how a run optimises and for how long (epochs, batches, AdamW,
learning-rate schedule, clipping, checkpoint cadence); an application's configuration can take it
as its training section (the vision pipeline does, :mod:`experiments.vision.config`).
:class:`TrainerConfig` adds where and how the run executes (seed, device, precision, input key,
stages, probes, model selection). Every field is JSON-serialisable (``config.json``); a value
out of its range is an :class:`~scm.validation.InvalidParameterError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from coremtl.devices import check_device
from scm.validation import InvalidParameterError

LR_SCHEDULES = ("cosine", "constant")
DISTRIBUTED_BALANCING = ("exact", "local")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_integers(config: Any, names: tuple[str, ...], minimum: int) -> None:
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidParameterError(f"{name}: expected {expected}, got {value!r}")


@dataclass
class OptimizationConfig:
    """How a run optimises and for how long.

    AdamW (decoupled weight decay, Loshchilov & Hutter 2019) at ``learning_rate`` with
    ``weight_decay``; ``weight_decay_on_vectors`` ``False`` exempts biases and normalisation
    scales (parameters with at most one dimension) from it. ``lr_schedule`` is ``'cosine'``
    (annealed to zero over the run) or ``'constant'``, after ``warmup_steps`` of linear warm-up.
    ``grad_clip`` clips the global gradient 2-norm (``None``: no clipping).
    ``max_batches_per_epoch`` caps an epoch (0: every full batch; ``drop_last`` drops the last
    incomplete one); ``log_every`` writes every that many steps to ``metrics.jsonl``;
    ``checkpoint_every`` saves ``last.pt`` every that many steps (0: at epoch ends only).
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-4
    weight_decay: float = 1e-4
    weight_decay_on_vectors: bool = True
    warmup_steps: int = 0
    lr_schedule: str = "cosine"
    grad_clip: float | None = 1.0
    drop_last: bool = True
    max_batches_per_epoch: int = 0
    log_every: int = 1
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        _check_integers(self, ("epochs", "batch_size", "log_every"), 1)
        _check_integers(self, ("warmup_steps", "checkpoint_every", "max_batches_per_epoch"), 0)
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise InvalidParameterError(f"{name}: expected a finite number >= 0, got {value!r}")
        if self.grad_clip is not None and not (
            _is_number(self.grad_clip) and math.isfinite(self.grad_clip) and self.grad_clip > 0
        ):
            raise InvalidParameterError(
                f"grad_clip: expected a positive number or None, got {self.grad_clip!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidParameterError(
                f"lr_schedule: expected one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
            )

    def optimization_settings(self) -> dict[str, Any]:
        """The fields of :class:`OptimizationConfig` (not those a subclass adds), by name."""
        return {f.name: getattr(self, f.name) for f in fields(OptimizationConfig)}


@dataclass
class TrainerConfig(OptimizationConfig):
    """Settings of one run: its optimisation (:class:`OptimizationConfig`) and its execution.

    ``seed`` seeds python, numpy, torch and the epoch orders; ``mixed_precision`` is bf16
    autocast and ``channels_last`` the memory format of the model and its input, both on CUDA
    only; ``input_key`` names the model input in a batch; ``task_start_epoch`` leaves the task
    losses out of the epochs before it; ``probe_every`` calls the probes every that many steps
    (0: never); ``stop_after_steps`` ends the run after that many steps with a checkpoint, as an
    interruption would; ``selection_metric`` names the validation metric that picks ``best.pt``
    (``selection_mode`` ``'min'`` or ``'max'``); ``num_workers`` loads a dataset's batches.
    ``distributed_balancing`` is how a data-parallel run balances the tasks: ``'exact'`` runs the
    balancer once on the global batch's quantities, ``'local'`` averages per-rank balanced
    gradients (an approximation for every balancer but Equal Weighting;
    :mod:`coremtl.distributed_balancing`).
    """

    seed: int = 0
    device: str = "cpu"
    mixed_precision: bool = False
    channels_last: bool = False
    input_key: str = "x"
    task_start_epoch: int = 0
    probe_every: int = 0
    stop_after_steps: int | None = None
    selection_metric: str | None = None
    selection_mode: str = "min"
    progress: bool = True
    num_workers: int = 0
    distributed_balancing: str = "exact"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.distributed_balancing not in DISTRIBUTED_BALANCING:
            raise InvalidParameterError(
                f"distributed_balancing: expected one of {DISTRIBUTED_BALANCING}, "
                f"got {self.distributed_balancing!r}"
            )
        _check_integers(self, ("probe_every", "num_workers", "task_start_epoch"), 0)
        limit = self.stop_after_steps
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidParameterError(
                f"stop_after_steps: expected a positive integer or None, got {limit!r}"
            )
        check_device(self.device)
        if not isinstance(self.input_key, str) or not self.input_key:
            raise InvalidParameterError(
                f"input_key: expected the name of the batch entry holding the input, "
                f"got {self.input_key!r}"
            )
        if self.selection_mode not in ("min", "max"):
            raise InvalidParameterError(
                f"selection_mode: expected 'min' or 'max', got {self.selection_mode!r}"
            )

    @classmethod
    def from_optimization(cls, optimization: OptimizationConfig, **settings: Any) -> TrainerConfig:
        """The run of ``optimization`` (its :class:`OptimizationConfig` fields, by name) with the
        execution ``settings``."""
        return cls(**optimization.optimization_settings(), **settings)
