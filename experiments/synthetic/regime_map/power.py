"""How many paired seeds model A's registered tests need (study 1), chosen before the measurement.

A *better* or *worse* prediction with registered mean difference ``d`` is tested by the two-sided
``1 - a`` Student-t interval of the measured mean; with per-seed spread ``s`` of the paired
difference it finds a true difference ``d`` with probability ``0.8`` from

    n = ((z_{1-a/2} + z_{0.8}) s / |d|)^2                (:func:`experiments.stats.seeds_needed`)

paired seeds. The plan takes ``d`` from the registration and ``s`` from a pilot: the study run on
``pilot_seeds`` seeds from ``pilot_seed``, seeds the measurement never uses, so neither the
measured means nor the measured seeds enter the choice. The seed count is the ``quantile`` of the
per-test needs, at least ``minimum`` and at most ``cap`` (the time limit of ``coremtl verify``).

A setting's ``plan`` (:class:`.config.PilotPlan`) records the arguments; :func:`plan_seeds`
reruns it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from experiments.synthetic.regime_map.comparisons import Row
from experiments.synthetic.regime_map.config import Config, PilotPlan
from scm.validation import InvalidParameterError


@dataclass(frozen=True)
class SeedPlan:
    """The needs of the registered better/worse tests (sorted), the rule's ``quantile``,
    ``minimum`` and ``cap``, and the chosen ``seeds``."""

    needs: tuple[int, ...]
    quantile: float
    minimum: int
    cap: int
    seeds: int

    def share_met(self, seeds: int | None = None) -> float:
        """The share of tests whose need ``seeds`` (default the chosen count) meets."""
        count = self.seeds if seeds is None else seeds
        return sum(n <= count for n in self.needs) / len(self.needs) if self.needs else 1.0


def plan(rows: list[Row], quantile: float, minimum: int, cap: int) -> SeedPlan:
    """The seed count from scored rows (:func:`.comparisons.attach`: registered prediction and
    measured spread): the ``quantile`` of the needs of the better/worse tests against the best
    balancer, within ``[minimum, cap]``."""
    if not 0 < quantile <= 1:
        raise InvalidParameterError(f"quantile: expected a number in (0, 1], got {quantile!r}")
    if not 2 <= minimum <= cap:
        raise InvalidParameterError(
            f"minimum, cap: expected 2 <= minimum <= cap, got {minimum!r}, {cap!r}"
        )
    needs = tuple(
        sorted(r.seeds_needed for r in rows if r.baseline == "best" and r.seeds_needed is not None)
    )
    wanted = math.ceil(float(np.quantile(needs, quantile, method="higher"))) if needs else minimum
    return SeedPlan(needs, quantile, minimum, cap, int(min(cap, max(minimum, wanted))))


def pilot_rows(config: Config, pilot_seed: int, pilot_seeds: int) -> list[Row]:
    """Model A's scored rows of the study run on ``pilot_seeds`` seeds from ``pilot_seed``
    (model B left out)."""
    from experiments.synthetic.regime_map import STUDY

    result = STUDY.run(replace(config, seeds=pilot_seeds, mlp=None), seed=pilot_seed)
    return [Row.from_dict(r) for r in result["summary"]["rows"]]


def plan_seeds(config: Config, arguments: PilotPlan | None = None) -> SeedPlan:
    """The plan of a setting (its ``plan`` unless ``arguments`` are given): the pilot, then
    :func:`plan`."""
    arguments = arguments or config.plan
    if arguments is None:
        raise InvalidParameterError("plan: expected a PilotPlan, the setting has none")
    rows = pilot_rows(config, arguments.pilot_seed, arguments.pilot_seeds)
    return plan(rows, arguments.quantile, arguments.minimum, arguments.cap)
