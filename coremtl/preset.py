"""CORE-MTL (and every baseline) on your own backbone and tasks: :func:`build` (and
:func:`coremtl.training.train`, which builds then fits).

``build(method, backbone, tasks, example, epochs=E)`` turns any ``nn.Module`` that maps inputs to
feature vectors ``(B, C)`` or maps ``(B, C, h, w)`` into a multi-task model with its per-task
losses, its balancer and its scheduled term sources (:class:`coremtl.trainer.ScheduledTerms`);
``train(method, backbone, tasks, data, ...)`` also runs it with :class:`coremtl.trainer.Trainer`
and returns the metrics (:mod:`coremtl.tasks`). ``method`` is one of :data:`~coremtl.names.METHODS`
(:mod:`coremtl.names`; an older spelling such as ``"coremtl"`` or ``"MT-CRL"`` is read as its name):

- ``"core-mtl"``: encoder = backbone, a stream split ``[Z_s; Z_r] = W F + b`` (1x1 convolution on
  maps), heads on ``Z_s`` only (:mod:`coremtl.heads`), a soft-grounding decoder (AdaIN for maps,
  its stages fitted to the input and feature sizes; an MLP for vectors) or, with
  ``grounding="hard"``, the Lambertian renderer of :mod:`coremtl.hard_grounding` (sRGB images in
  ``[0, 1]`` and map backbones only; normals from the surface-normal task when there is one,
  its terms in the grounding stage, CFA's counterfactual rendered) and the staged schedule
  of docs/VISION.md (:mod:`coremtl.schedule`): reconstruction alone from epoch 0, the tasks from
  ``task_start``, CKA and CFA from ``independence_start`` (:func:`coremtl.defaults.stage_starts`:
  1 and 2 for 6 epochs).
  The weights are the method's (:mod:`coremtl.defaults`), or those of the ``objective`` given
  (``CoreMTLObjective(independence="conditional")`` partials the tasks' labels out of the CKA);
  with the default objective the CKA warm-up is at most a quarter of the independence stage's
  steps, so a short run reaches the full weight. The task losses are combined by ``balancer``;
- any balancer name of :data:`coremtl.balancers.BALANCER_NAMES` (``"ew"``, ``"pcgrad"``, ...):
  hard parameter sharing, the heads on the backbone features, that balancer;
- ``"mtan"``: task attention over the stages of the backbone, which must be an
  ``nn.Sequential`` of stages, each an ``nn.Sequential`` of at least two modules (stages may pool,
  stride, change channels or end in vectors);
- ``"rep-mtl"``: hard sharing plus the Rep-MTL saliency regulariser;
- ``"mt-crl"``: four disentangled modules on the backbone features, a sampled task-to-module
  graph and the MT-CRL regulariser (its invariance term only with ``environment_key``; without
  it the label says "MT-CRL (no invariance)");
- ``"single-task"``: one copy of the backbone and one head per task, nothing shared.

Ablations and controls are options, not methods (:mod:`coremtl.variants`): ``weights="authors"``
(the authors' CORE-MTL configuration, :mod:`coremtl.authors`), ``heads_on="both"`` (CORE-MTL's
heads on ``[Z_s; Z_r]``), ``mtcrl=MTCRLOptions(...)`` (MT-CRL without decorrelation, sparsity or
routing, with one module), ``capacity_of="core-mtl" | "mt-crl" | "mtan"`` (a balancer's hard
sharing on the same extra layers, :mod:`coremtl.capacity`). :attr:`Preset.label` names the
result; ``Forward.representations()`` gives what a probe reads from any of them.

A pipeline with layers of its own (heads, a grounding decoder and its terms, the model classes, a
regulariser's weights) passes them as ``parts`` (:class:`coremtl.parts.Parts`); what each method
is made of is still decided here. The vision pipeline builds every model this way.

Every method gets its own deep copy of ``backbone`` (the module passed in is never trained), and
the new layers are initialised from ``seed``, so methods built with one seed start from the same
backbone weights. Where the library cannot adapt it says so in one line: a dense task on vector
features, hard grounding of vectors or of inputs that are not sRGB images, a decoder for maps of
non-image inputs, MTAN on a backbone without stages, a stage that would start after the last
epoch, a method that balances the gradients of shared parameters (or Rep-MTL's saliencies) on a
backbone with none that train, an option the method does not have (:data:`METHOD_OPTIONS`).
:func:`coremtl.training.train` checks its data, validation and test data alike
(:func:`coremtl.data_check.check_data`) before building anything.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from coremtl import backbones
from coremtl.architectures.mtcrl import MTCRLOptions
from coremtl.balancers.registry import BALANCER_NAMES
from coremtl.labels import method_label
from coremtl.names import canonical_method
from coremtl.objective import CoreMTLObjective
from coremtl.parts import Parts
from coremtl.schedule import core_mtl_sources
from coremtl.tasks import Task, check_tasks, task_loss
from coremtl.trainer import ScheduledTerms
from coremtl.variants import (
    authors_weights,
    check_variant_options,
    check_without,
    stages_without_grounding,
    switch_off,
)
from scm.validation import InvalidParameterError, check_seed

METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "streams": ("core-mtl",),
    "grounding": ("core-mtl",),
    "objective": ("core-mtl",),
    "stages": ("core-mtl",),
    "environment_key": ("mt-crl",),
}
"""The options of :func:`build` that only some methods have; given to another, they are refused."""
BUILD_ARGUMENTS_OF_TRAIN = (
    "method",
    "backbone",
    "tasks",
    "example",
    "epochs",
    "steps_per_epoch",
    "seed",
)
"""The arguments of :func:`build` that :func:`coremtl.training.train` sets itself."""


@dataclass
class Preset:
    """What :func:`build` returns: everything :class:`coremtl.trainer.Trainer` needs, and the
    ``label`` tables print (:func:`coremtl.labels.method_label`)."""

    method: str
    model: nn.Module
    tasks: tuple[Task, ...]
    task_losses: dict[str, Any]
    balancer: Any
    term_sources: list[ScheduledTerms] = field(default_factory=list)
    task_start_epoch: int = 0
    label: str = ""


@dataclass
class Result:
    """What :func:`coremtl.training.train` returns: the trained model, its last ``val``/``test`` metrics (empty
    without those splits) and the trainer's per-epoch history."""

    preset: Preset
    val: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, Any]]

    @property
    def model(self) -> nn.Module:
        return self.preset.model


def build(
    method: str,
    backbone: nn.Module,
    tasks: Sequence[Task],
    example: Tensor,
    epochs: int,
    balancer: str | None = None,
    balancer_options: Mapping[str, Any] | None = None,
    streams: tuple[int, int] | None = None,
    grounding: str | None = None,
    objective: CoreMTLObjective | None = None,
    stages: tuple[int, int] | None = None,
    steps_per_epoch: int | None = None,
    environment_key: str | None = None,
    seed: int | None = 0,
    mtcrl: MTCRLOptions | None = None,
    weights: str = "library",
    authors_config: str = "cityscapes",
    heads_on: str = "semantic",
    capacity_of: str | None = None,
    without: tuple[str, ...] = (),
    parts: Parts | None = None,
) -> Preset:
    """The model, losses, balancer and term sources of ``method`` on ``backbone`` (see the module
    docstring). ``example`` is a batch of inputs (its shape sizes the heads and the decoder);
    ``streams`` the ``(semantic, residual)`` widths (default: half the feature channels each);
    ``grounding`` ``"soft"`` (default), ``"hard"`` or ``"none"``; ``stages`` an explicit
    ``(task_start, independence_start)`` for CORE-MTL; ``seed`` the seed of the new layers (None:
    drawn from torch's generator as it stands). ``balancer`` (default ``"ew"``) combines the task
    losses of every method but single-task. The options of the ablations and controls (module
    docstring): ``mtcrl``, ``weights`` with ``authors_config``, ``heads_on``, ``capacity_of``,
    ``without`` (CORE-MTL terms switched off).
    ``parts`` replaces the library's layers and terms with the caller's
    (:class:`coremtl.parts.Parts`)."""
    from coremtl.architectures import (
        MTCRLRegularizer,
        RepMTLRegularizer,
        SharedBottom,
        SingleTaskModels,
    )
    from coremtl.balancers import make_balancer
    from coremtl.capacity import capacity_trunk
    from coremtl.representation import BothStreamsModel, DualStreamModel, StreamSplit

    method = canonical_method(method)
    if capacity_of is not None:
        capacity_of = canonical_method(capacity_of, "capacity_of")
    if method in BALANCER_NAMES and balancer not in (None, method):
        raise InvalidParameterError(
            f"balancer: method {method!r} is itself the balancer; got balancer={balancer!r} too"
        )
    if method == "single-task" and (balancer is not None or balancer_options):
        raise InvalidParameterError(
            "balancer: single-task trains each task on its own model, there is nothing to balance"
        )
    given = {
        "streams": streams,
        "grounding": grounding,
        "objective": objective,
        "stages": stages,
        "environment_key": environment_key,
    }
    for option, value in given.items():
        if value is not None and method not in METHOD_OPTIONS[option]:
            raise InvalidParameterError(
                f"{option}: an option of {', '.join(METHOD_OPTIONS[option])} only, not of method "
                f"{method!r}"
            )
    if objective is not None and not isinstance(objective, CoreMTLObjective):
        raise InvalidParameterError(
            f"objective: expected a CoreMTLObjective, got {type(objective).__name__}"
        )
    if balancer_options is not None and not isinstance(balancer_options, Mapping):
        raise InvalidParameterError(
            f"balancer_options: expected a mapping of option names to values, got "
            f"{type(balancer_options).__name__}"
        )
    if seed is not None:
        check_seed(seed)
    tasks = check_tasks(tasks)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidParameterError(f"epochs: expected a positive integer, got {epochs!r}")
    if not isinstance(backbone, nn.Module):
        raise InvalidParameterError(
            f"backbone: expected an nn.Module, got {type(backbone).__name__}"
        )
    check_variant_options(
        method,
        weights,
        heads_on,
        capacity_of,
        mtcrl,
        objective,
        authors_config,
        grounding or "soft",
    )
    without = check_without(method, without)
    backbone = copy.deepcopy(backbone)
    channels, maps, size = backbones.feature_shape(backbone, example)
    input_shape = tuple(example.shape[1:])
    names = [task.name for task in tasks]
    parts = parts or Parts()
    make_heads = parts.heads or backbones.library_heads(tasks, maps, input_shape)
    shared_bottom = parts.shared_bottom or SharedBottom
    if seed is not None:
        torch.manual_seed(seed)
    sources: list[ScheduledTerms] = []
    task_start = 0
    balancer_name = method if method in BALANCER_NAMES else balancer or "ew"
    if method == "core-mtl":
        semantic, residual = backbones.stream_widths(channels, streams)
        split = StreamSplit(channels, semantic, residual, maps=maps)
        both = heads_on == "both"
        heads = make_heads(semantic + residual if both else semantic)
        if parts.decoder is not None:
            decoder = parts.decoder(semantic, residual, heads)
        else:
            decoder = backbones.grounding_decoder(
                grounding or "soft", tasks, heads, semantic, residual, maps, size, example
            )
        dual_stream = parts.dual_stream or (BothStreamsModel if both else DualStreamModel)
        model: nn.Module = dual_stream(backbone, split, heads, decoder)
        chosen_stages = stages
        if weights != "library":
            objective, stages = authors_weights(
                weights, authors_config, epochs, steps_per_epoch, len(tasks), stages
            )
        if without:
            objective = switch_off(objective, without)
            stages = stages_without_grounding(stages, chosen_stages, without)
        sources, task_start = core_mtl_sources(
            objective, decoder, epochs, stages, steps_per_epoch, tasks, parts.grounding_terms
        )
    elif method == "mtan":
        model = backbones.mtan_on(backbone, tasks, example, input_shape, make_heads)
    elif method == "mt-crl":
        options = mtcrl or MTCRLOptions()
        model = backbones.mtcrl_on(
            backbone, tasks, channels, maps, input_shape, options, make_heads
        )
        regularizer = parts.regularizer or MTCRLRegularizer(
            decorrelation_weight=options.decorrelation,
            invariance_weight=options.invariance if environment_key else 0.0,
            sparsity_weight=options.sparsity,
            environment_key=environment_key or "environment",
        )
        sources = [ScheduledTerms(regularizer, 0, "mt-crl")]
    elif method == "single-task":
        trunks = {name: copy.deepcopy(backbone) for name in names}
        model = SingleTaskModels(trunks, make_heads(channels))
        balancer_name = "ew"
    elif capacity_of is not None:
        trunk, width = capacity_trunk(
            capacity_of, backbone, tasks, example, streams, heads_on, mtcrl
        )
        model = shared_bottom(trunk, make_heads(width))
    else:
        model = shared_bottom(backbone, make_heads(channels))
        if method == "rep-mtl":
            regularizer = parts.regularizer or RepMTLRegularizer()
            sources = [ScheduledTerms(regularizer, 0, "rep-mtl")]
    chosen = make_balancer(balancer_name, names, **dict(balancer_options or {}))
    _check_shared_parameters(method, chosen, model)
    return Preset(
        method=method,
        model=model,
        tasks=tasks,
        task_losses={task.name: task_loss(task) for task in tasks},
        balancer=chosen,
        term_sources=sources,
        task_start_epoch=task_start,
        label=method_label(
            method,
            balancer=balancer_name,
            environment_key=environment_key,
            mtcrl=mtcrl,
            weights=weights,
            authors_config=authors_config,
            heads_on=heads_on,
            grounding=grounding or "soft",
            capacity_of=capacity_of,
            independence=objective.independence if objective is not None else "unconditional",
            without=without,
        ),
    )


def _check_shared_parameters(method: str, balancer, model: nn.Module) -> None:
    """Refuse a method that acts on the shared parameters' gradients (Jacobian balancers,
    GradNorm) or on the saliencies of the shared representation (Rep-MTL) when no shared
    parameter trains (a frozen or parameter-free backbone)."""
    from coremtl.step import shared_parameters

    if not (balancer.needs_shared_parameters or method == "rep-mtl"):
        return
    if any(p.requires_grad for p in shared_parameters(model)):
        return
    why = "Rep-MTL's task saliencies" if method == "rep-mtl" else f"balancer {balancer.name!r}"
    raise InvalidParameterError(
        f"backbone: method {method!r} needs gradients on the shared parameters ({why}), and this "
        "backbone has none that train (frozen or parameter-free); unfreeze it or choose a loss "
        "weighting such as 'ew'"
    )
