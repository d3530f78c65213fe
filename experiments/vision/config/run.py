"""The ``training``, ``run`` and ``metrics`` sections: optimisation and the staged schedule, where
outputs go with the seed and device settings, and how reported metrics are computed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from coremtl.devices import DEVICE_TYPES, check_device
from coremtl.trainer_config import OptimizationConfig
from scm.validation import InvalidParameterError

from .checks import require


@dataclass
class TrainingConfig(OptimizationConfig):
    """Optimisation and the staged schedule.

    The optimisation fields are those of :class:`coremtl.trainer_config.OptimizationConfig`, by
    the same names and meaning, handed to the trainer as they are: AdamW with decoupled weight
    decay (biases and normalisation scales exempt unless ``weight_decay_on_vectors``),
    ``warmup_steps`` of linear warm-up then ``lr_schedule`` (cosine decay to zero), clipping of
    the global gradient 2-norm at ``grad_clip`` (``null``: none), ``max_batches_per_epoch``
    (0: all full batches), ``checkpoint_every`` (also save ``last.pt`` every that many steps, so
    a run can resume from inside an epoch; 0: at epoch ends only).

    Epochs ``[0, reconstruction_epochs)`` train the grounding reconstruction alone; epochs
    ``[reconstruction_epochs, independence_start_epoch)`` add the task losses; from
    ``independence_start_epoch`` on, CKA and CFA are added as well. ``balancer`` (with
    ``balancer_options``) combines the task losses; ``selection_metric`` picks ``best.pt``
    (``delta_m`` or a validation metric's name).

    Older names are accepted (:data:`ALIASES`, resolved by :func:`from_dict`): ``lr`` for
    ``learning_rate``, ``max_steps_per_epoch`` for ``max_batches_per_epoch``,
    ``checkpoint_every_steps`` for ``checkpoint_every``; and ``grad_clip: 0`` means no clipping.
    """

    ALIASES: ClassVar[dict[str, str]] = {
        "lr": "learning_rate",
        "max_steps_per_epoch": "max_batches_per_epoch",
        "checkpoint_every_steps": "checkpoint_every",
    }

    epochs: int = 200
    batch_size: int = 8
    weight_decay_on_vectors: bool = False
    warmup_steps: int = 500
    reconstruction_epochs: int = 0
    independence_start_epoch: int = 0
    balancer: str = "ew"
    balancer_options: dict[str, Any] = field(default_factory=dict)
    selection_metric: str = "delta_m"

    def __post_init__(self) -> None:
        if self.grad_clip == 0:
            self.grad_clip = None
        try:
            super().__post_init__()
        except InvalidParameterError as error:
            raise InvalidParameterError(f"training.{error}") from None
        require(self.batch_size >= 2, "training.batch_size", "an integer >= 2", self.batch_size)
        require(
            self.learning_rate > 0,
            "training.learning_rate",
            "a positive number",
            self.learning_rate,
        )
        require(
            0 <= self.reconstruction_epochs <= self.independence_start_epoch
            or self.independence_start_epoch == 0 == self.reconstruction_epochs,
            "training.reconstruction_epochs",
            "at most training.independence_start_epoch",
            self.reconstruction_epochs,
        )


@dataclass
class RunConfig:
    """Where outputs go, the seed and the device settings.

    ``Delta_m`` is taken against the single-task reference: the metrics of
    ``single_task_reference_file`` (a JSON mapping ``metric name -> value``, as written by
    ``coremtl train --single-task-references``) when given (the file wins), else the inline
    ``single_task_reference``, whose origin ``single_task_reference_label`` names (e.g. "inline:
    paper ResNet-50"); ``single_task_reference_mix: true`` lets inline values fill the metrics a
    file lacks. See :mod:`experiments.vision.single_task`. Reference values must be non-zero.
    ``distributed_balancing`` is how a ``torchrun`` run balances the tasks (``exact``: once on the
    global batch's quantities; ``local``: per rank, then averaged; :mod:`coremtl.distributed_balancing`).
    """

    output_dir: str = "runs/vision"
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True
    channels_last: bool = True
    progress: bool = False
    num_sample_images: int = 4
    single_task_reference: dict[str, float] = field(default_factory=dict)
    single_task_reference_file: str | None = None
    single_task_reference_label: str = "inline: run.single_task_reference"
    single_task_reference_mix: bool = False
    distributed_balancing: str = "exact"

    def __post_init__(self) -> None:
        check_device(self.device, "run.device", DEVICE_TYPES)
        require(
            self.distributed_balancing in ("exact", "local"),
            "run.distributed_balancing",
            "'exact' (the balancer on the global batch) or 'local' (per-rank, averaged)",
            self.distributed_balancing,
        )
        require(self.seed >= 0, "run.seed", "an integer >= 0", self.seed)
        output = Path(self.output_dir)
        for folder in (output, *output.parents):
            require(
                not folder.exists() or folder.is_dir(),
                "run.output_dir",
                f"a folder ({folder} is a file)",
                self.output_dir,
            )
        for name, value in self.single_task_reference.items():
            require(
                math.isfinite(value) and value != 0,
                f"run.single_task_reference.{name}",
                "a finite non-zero number (Delta_m divides by it)",
                value,
            )
        require(
            self.num_sample_images >= 0,
            "run.num_sample_images",
            "an integer >= 0",
            self.num_sample_images,
        )


MIOU_CONVENTIONS = ("present", "libmtl")


@dataclass
class MetricsConfig:
    """How reported metrics are computed (:mod:`experiments.vision.metrics`).

    ``miou_convention``: ``present`` (the mean IoU over the classes present in the split's truth or
    prediction, as torchmetrics computes it) or ``libmtl`` (LibMTL's mean over all
    ``data.num_classes`` classes of the split's confusion matrix: NaN when a class is absent from
    both), to compare with numbers published with LibMTL like for like.
    """

    miou_convention: Literal["present", "libmtl"] = "present"
