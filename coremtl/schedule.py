"""CORE-MTL's staged schedule as term sources: the one place that turns an objective into stages.

docs/VISION.md's schedule: the grounding term alone from epoch 0, the task losses from
``task_start``, the independence terms (CKA and CFA) from ``independence_start``.
:func:`core_mtl_sources` returns the term sources with their start epochs
(:class:`coremtl.trainer.ScheduledTerms`) and ``task_start``, for :func:`coremtl.build` and every
pipeline that builds through it:

- ``"grounding"`` from epoch 0, when there is a decoder and a positive reconstruction weight: the
  grounding source a caller gives for its decoder (the vision pipeline's hard-grounding priors),
  else the render loss and priors of the hard-grounding decoder
  (:class:`coremtl.hard_grounding.HardGroundingTerms`) or the objective's reconstruction term
  alone (CKA and CFA weights 0);
- ``"independence"`` from ``independence_start``: the objective without its reconstruction term.

Stages not given are :func:`coremtl.defaults.stage_starts` of the run length (no reconstruction
stage without grounding). Without a decoder the input-level CFA has nothing to decode, so its
weight is 0; the label-conditional CKA partials out the labels of ``tasks`` unless the objective
names its own. The library's default objective (``objective=None``) has its CKA warm-up capped at
a quarter of the independence stage's steps, so a short run reaches the full weight; a given
objective is used as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from torch import nn

from coremtl import defaults
from coremtl.objective import CoreMTLObjective
from coremtl.tasks import Task
from coremtl.terms import TermSource
from coremtl.trainer import ScheduledTerms
from scm.validation import InvalidParameterError

GroundingTerms = Callable[[nn.Module, CoreMTLObjective], TermSource | None]
"""``(decoder, objective) -> the grounding stage's term source`` (None: the L1 reconstruction)."""


def core_mtl_sources(
    objective: CoreMTLObjective | None,
    decoder: nn.Module | None,
    epochs: int,
    stages: tuple[int, int] | None = None,
    steps_per_epoch: int | None = None,
    tasks: Sequence[Task] = (),
    grounding_terms: GroundingTerms | None = None,
) -> tuple[list[ScheduledTerms], int]:
    """``(term sources, task_start)`` of CORE-MTL with ``objective`` (None: the method's
    defaults) and ``decoder`` over ``epochs`` epochs (module docstring)."""
    chosen = objective or CoreMTLObjective()
    if chosen.independence == "conditional" and not chosen.label_tasks:
        chosen = dataclasses.replace(chosen, label_tasks=tuple(tasks))
    if decoder is None and chosen.cfa_mode == "input":
        chosen = dataclasses.replace(chosen, cfa_weight=0.0, reconstruction_weight=0.0)
    grounded = decoder is not None and chosen.reconstruction_weight > 0
    if stages is not None and not (isinstance(stages, (tuple, list)) and len(stages) == 2):
        raise InvalidParameterError(
            f"stages: expected (task_start, independence_start) epochs, got {stages!r}"
        )
    if stages is None:
        fraction = defaults.RECONSTRUCTION_FRACTION if grounded else 0.0
        stages = defaults.stage_starts(epochs, fraction, defaults.INDEPENDENCE_FRACTION)
    task_start, independence_start = stages
    defaults.check_stages(epochs, task_start, independence_start)
    if objective is None and steps_per_epoch:
        quarter = max(1, (epochs - independence_start) * steps_per_epoch // 4)
        chosen = dataclasses.replace(chosen, cka_warmup_steps=min(chosen.cka_warmup_steps, quarter))
    sources = []
    if grounded:
        own = grounding_terms(decoder, chosen) if grounding_terms is not None else None
        sources.append(ScheduledTerms(own or _grounding_terms(decoder, chosen), 0, "grounding"))
    independence = dataclasses.replace(chosen, reconstruction_weight=0.0)
    sources.append(ScheduledTerms(independence, independence_start, "independence"))
    return sources, task_start


def _grounding_terms(decoder: nn.Module, objective: CoreMTLObjective) -> TermSource:
    """The library's grounding term of ``decoder``: the hard-grounding render loss and priors at
    the objective's reconstruction weight (:class:`coremtl.hard_grounding.HardGroundingTerms`),
    or the objective's L1 reconstruction alone."""
    from coremtl.hard_grounding import HardGroundingDecoder, HardGroundingTerms

    if isinstance(decoder, HardGroundingDecoder):
        return HardGroundingTerms(objective.reconstruction_weight, input_key=objective.input_key)
    return dataclasses.replace(objective, cka_weight=0.0, cfa_weight=0.0)
