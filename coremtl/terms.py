"""Loss terms beside the task losses, and the epoch each starts at.

A term source is anything with a ``terms(model, batch, forward, step, task_losses_fn, generator)
-> dict`` method (:class:`coremtl.objective.CoreMTLObjective`, a grounding loss, the Rep-MTL or
MT-CRL regulariser); :class:`ScheduledTerms` switches one on at a start epoch, and
:func:`collect_terms` gathers the terms of the sources active at a step. The trainer adds them
(weight 1) to the balanced task losses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from coremtl.forward import Forward
from coremtl.objective import TaskLossesFn
from scm.validation import InvalidParameterError


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
        if (
            isinstance(self.start_epoch, bool)
            or not isinstance(self.start_epoch, int)
            or self.start_epoch < 0
        ):
            raise InvalidParameterError(
                f"start_epoch: expected an integer >= 0, got {self.start_epoch!r}"
            )
        if not self.name:
            self.name = type(self.source).__name__

    def active(self, epoch: int) -> bool:
        return epoch >= self.start_epoch

    def description(self) -> dict[str, Any]:
        """Name, start epoch and the source's ``config()`` (or class name), for ``config.json``."""
        source = self.source
        config = source.config() if hasattr(source, "config") else type(source).__name__
        return {"name": self.name, "start_epoch": self.start_epoch, "source": config}


Sources = TermSource | ScheduledTerms | Sequence[TermSource | ScheduledTerms] | None


def as_scheduled(sources: Sources) -> list[ScheduledTerms]:
    """``sources`` (none, one, or a list, each possibly scheduled) as a list of
    :class:`ScheduledTerms` (a bare source starts at epoch 0)."""
    if sources is None:
        return []
    if isinstance(sources, ScheduledTerms) or hasattr(sources, "terms"):
        sources = [sources]
    return [s if isinstance(s, ScheduledTerms) else ScheduledTerms(s) for s in sources]


def collect_terms(
    sources: Sequence[ScheduledTerms],
    epoch: int,
    step: int,
    batches_per_epoch: int,
    model: nn.Module,
    batch: Mapping[str, Tensor],
    forward: Forward,
    task_losses_fn: TaskLossesFn,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """The terms of every source active in ``epoch``, each called with the steps since its start
    (``step - start_epoch * batches_per_epoch``); two sources naming the same term are refused."""
    terms: dict[str, Tensor] = {}
    for scheduled in sources:
        if not scheduled.active(epoch):
            continue
        produced = scheduled.source.terms(
            model,
            batch,
            forward,
            step - scheduled.start_epoch * batches_per_epoch,
            task_losses_fn=task_losses_fn,
            generator=generator,
        )
        overlap = set(produced) & set(terms)
        if overlap:
            raise InvalidParameterError(
                f"objective: two term sources both produce {sorted(overlap)}"
            )
        terms.update(produced)
    return terms
