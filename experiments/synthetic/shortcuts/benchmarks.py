"""What every shortcut benchmark of the suite provides, and the laws its splits are drawn from.

A benchmark is a multi-task data set with a *nuisance*: a factor that is not the cause of any
label but is tied to one task's label (the *shortcut task*) in the source and independent of it
in the target. Each split is drawn from a :class:`Law`:

- ``source`` with strength ``p``: with probability ``p`` the nuisance takes the value ``f(y)`` of
  the shortcut task's label ``y``, otherwise an independent draw;
- ``target``: the nuisance independent of every label (the random target);
- ``permuted``: the nuisance takes ``f(pi(y))`` for a seeded derangement ``pi`` of the classes
  (Colored-Cityscapes' target): reading ``y`` from the nuisance is wrong on every class.

A :class:`Benchmark` renders a split from ``(seed, split name, size, law)`` deterministically, so
every method trained on a seed sees the same data (paired seeds), and builds the backbone every
method starts from (an ``nn.Sequential`` of ``nn.Sequential`` stages, so that MTAN applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor, nn

from coremtl.tasks import Task
from scm.validation import InvalidParameterError, check_in_range

LAWS = ("source", "target", "permuted")


@dataclass(frozen=True)
class Law:
    """The environment of a split: ``kind`` in :data:`LAWS`, ``strength`` the shortcut strength
    ``p`` of a source (or the probability of the permuted value in a permuted target)."""

    kind: str
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in LAWS:
            raise InvalidParameterError(f"law: expected one of {LAWS}, got {self.kind!r}")
        check_in_range(self.strength, "strength", 0.0, 1.0)


SOURCE_SPLITS = ("train", "source_val")
TARGET_SPLITS = ("target_val", "target_test", "permuted_val", "permuted_test")
PROBE_SPLITS = ("probe_fit", "probe_eval")


class Benchmark(Protocol):
    """The interface the suite reads (module docstring)."""

    key: str
    """``<data set>/<nuisance>``, e.g. ``scenes/hue`` or ``digits/texture``."""
    nuisance: str
    shortcut_task: str
    metric: str
    """The target metric of the shortcut task, a key of :func:`coremtl.evaluate`'s result."""
    tasks: tuple[Task, ...]
    num_nuisance_values: int

    def draw(self, seed: int, split: str, n: int, law: Law) -> dict[str, Tensor]:
        """``n`` samples: inputs under ``x``, each task's labels under its key, the nuisance
        value of each sample under ``nuisance`` (an integer in ``[0, num_nuisance_values)``)."""
        ...

    def backbone(self, seed: int) -> nn.Sequential:
        """The shared encoder, initialised from ``seed``."""
        ...

    def extra_probes(self, model: nn.Module, fit: dict, evaluate: dict) -> dict[str, float]:
        """Probes that only this benchmark's truth allows (e.g. the true albedo of rendered
        scenes), on the shortcut-free probe splits; empty when it has none."""
        ...


def inputs_and_labels(batch: Mapping[str, Tensor], tasks: tuple[Task, ...]) -> dict[str, Tensor]:
    """The entries a method trains on: ``x`` and each task's labels (no nuisance, no extras)."""
    return {"x": batch["x"], **{task.key: batch[task.key] for task in tasks}}
