"""The schema of a vision run: :class:`VisionConfig`, its sections and the checks across them.

Each section is a dataclass of its own module (:mod:`.data`, :mod:`.method`, :mod:`.run`);
:class:`VisionConfig` holds them and checks what involves several: hard grounding needs geometry,
``model.kind`` and ``training.balancer`` name one method, and CORE-MTL's stages start before the
last epoch with batches large enough for the debiased (or conditional) CKA.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from coremtl.balancers.registry import BALANCER_NAMES
from coremtl.label_matrix import label_columns
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

from ..attributes import attribute_tasks
from .checks import require
from .data import DataConfig
from .method import SHARED, MethodConfig, ModelConfig
from .run import MetricsConfig, RunConfig, TrainingConfig


@dataclass
class VisionConfig:
    """One run: data, model, CORE-MTL terms, training and run settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def __post_init__(self) -> None:
        attributes = bool(attribute_tasks(self.data.tasks))
        require(
            not (attributes and self.model.grounding == "hard"),
            "model.grounding",
            "'soft' (the default for data.dataset 'celeba') or 'none': hard grounding renders "
            "the image from surface normals, and attribute tasks carry no geometry",
            self.model.grounding,
        )
        self.model.grounding = resolve_grounding(self.model.grounding, self.data.tasks)
        self._resolve_balancer_kind()
        if self.model.kind == "core-mtl":
            self._check_coremtl_schedule()

    def _resolve_balancer_kind(self) -> None:
        """``model.kind`` made a method name: :data:`SHARED` becomes ``training.balancer``; a
        balancer's name is also the balancer that trains it (``training.balancer`` left at
        ``ew`` or naming the same one), as in :func:`coremtl.build`."""
        model, training = self.model, self.training
        if model.kind == SHARED:
            require(
                training.balancer in BALANCER_NAMES,
                "training.balancer",
                f"one of {', '.join(BALANCER_NAMES)}",
                training.balancer,
            )
            model.kind = training.balancer
        if model.kind in BALANCER_NAMES:
            require(
                training.balancer in ("ew", model.kind),
                "training.balancer",
                f"'ew' or {model.kind!r}: model.kind {model.kind!r} is itself the balancer",
                training.balancer,
            )
            training.balancer = model.kind

    def _check_coremtl_schedule(self) -> None:
        """The debiased CKA needs 4 samples a batch, and every stage starts before the last epoch."""
        method, training = self.method, self.training
        require(
            not (method.cka_weight > 0 and method.debiased_cka and training.batch_size < 4),
            "training.batch_size",
            "at least 4 (the debiased CKA of method.cka_weight needs 4 samples per batch)",
            training.batch_size,
        )
        if method.independence == "conditional" and method.cka_weight > 0:
            needed = label_columns(label_tasks(self)) + 4
            require(
                training.batch_size >= needed,
                "training.batch_size",
                f"at least {needed} for method.independence 'conditional' (4 samples beyond the "
                "label columns partialled out of each batch)",
                training.batch_size,
            )
        starts = {}
        if self.model.grounding != "none":
            starts["training.reconstruction_epochs"] = training.reconstruction_epochs
        if method.cka_weight > 0 or method.cfa_weight > 0:
            starts["training.independence_start_epoch"] = training.independence_start_epoch
        late = {key: start for key, start in starts.items() if start >= training.epochs}
        if late:
            named = ", ".join(f"{key}: {start}" for key, start in late.items())
            raise InvalidParameterError(
                f"{named}: expected below training.epochs ({training.epochs}); a stage starting "
                "there never trains (the tasks start at training.reconstruction_epochs, CKA and "
                "CFA at training.independence_start_epoch)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def label_tasks(config: VisionConfig) -> tuple[Task, ...]:
    """The run's tasks as :class:`coremtl.tasks.Task` (kind and outputs), from which the
    conditional independence penalty builds its label matrix (:func:`coremtl.label_matrix.label_matrix`):
    segmentation as dense classes (per-image class histograms), depth and normals as dense maps
    (per-image means), each CelebA attribute as a binary classification."""
    dense = {"segmentation": config.data.num_classes, "depth": 1, "normal": 3}
    return tuple(
        Task(name, "dense", dense[name]) if name in dense else Task(name, "classification", 1)
        for name in config.data.tasks
    )


def resolve_grounding(grounding: str, tasks: list[str]) -> str:
    """``model.grounding`` made concrete: ``"auto"`` is ``"soft"`` (the AdaIN decoder, docs/VISION.md's
    grounding for attributes) when the tasks are CelebA attributes, ``"hard"`` otherwise."""
    if grounding != "auto":
        return grounding
    return "soft" if attribute_tasks(tasks) else "hard"
