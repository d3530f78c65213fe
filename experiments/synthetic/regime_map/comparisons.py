"""The paired comparisons of the regime map (study 1): per cell, shift and variant, the difference
``gap(variant) - gap(baseline)`` over the cell's paired seeds, as a typed :class:`Row` that the
registered prediction is attached to (:func:`attach`).

The baseline is the best balancer of the cell, chosen by the lowest mean held-out source
validation risk over the cell's seeds (training-domain validation, the headline), or, in the
labelled target-oracle rows, by the lowest mean target risk in that shift; every variant is also
compared with Equal Weighting. A balancer with a diverged (non-finite) run is never selected. A
seed on which the variant or its baseline diverged is counted in ``diverged`` and left out of the
mean and interval, which are over the remaining seeds (:mod:`experiments.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from experiments.stats import Estimate, paired_difference
from experiments.synthetic.regime_map import rules
from experiments.synthetic.regime_map.cells import DIRECTIONS, Cell
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.methods import BALANCERS, HEADLINE, VARIANTS

Arrays = Mapping[str, Mapping[str, np.ndarray]]
"""``{method: {measurement: values per unit}}`` of one model, optimiser and run length."""
NOTHING = Estimate(math.nan, math.inf, 0, math.inf)
"""The estimate of a comparison whose every seed diverged."""


def gap_key(direction: str, delta: float) -> str:
    return f"gap|{direction}|{delta}"


def target_key(direction: str, delta: float) -> str:
    return f"target|{direction}|{delta}"


def number(value: Any, default: float) -> float:
    """A number read back from JSON, where a non-finite value was written as ``None``."""
    return default if value is None else float(value)


def estimate_from(record: Mapping[str, Any]) -> Estimate:
    """An :class:`~experiments.stats.Estimate` read back from JSON (``None``: NaN mean, infinite
    spread)."""
    return Estimate(
        number(record["mean"], math.nan),
        number(record["se"], math.inf),
        int(record["n"]),
        number(record["sd"], math.inf),
    )


@dataclass(frozen=True)
class Row:
    """One comparison: which model, optimiser and run length (``short``/``long``), cell, shift
    (``direction``, ``delta``), ``variant`` and ``baseline`` (``best`` or ``ew``); the selected
    balancer; the paired ``difference`` over the finite seeds, its two-sided interval
    ``[low, high]``, the number of ``diverged`` seeds and the baseline's mean gap.

    A registered row carries its ``prediction``, ``band`` and the ``statement`` behind it; a
    measured row, once :func:`attach` has scored it, also the ``predicted_mean``, the
    ``measured`` outcome, whether it ``held``, its ``diagnosis`` and the seeds its test needs."""

    model: str
    optimiser: str
    length: str
    cell: Cell
    direction: str
    delta: float
    variant: str
    baseline: str
    best_balancer: str
    difference: Estimate
    low: float
    high: float
    diverged: int
    reference_gap: float
    selection: str = "validation"
    prediction: str = ""
    band: float = math.nan
    statement: str = ""
    predicted_mean: float = math.nan
    measured: str = ""
    held: bool | None = None
    diagnosis: str = ""
    seeds_needed: int | None = None

    def key(self) -> tuple:
        """What a measured row and its registered prediction share (model B's prediction is
        model A's at ``psi_0 = pi/4``, so its cells match on ``v`` and the correlation)."""
        start = self.cell.start if self.model == "A" else None
        return (
            self.model,
            self.optimiser,
            self.length,
            self.cell.v,
            self.cell.correlation,
            start,
            self.direction,
            self.delta,
            self.variant,
            self.baseline,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Row:
        return cls(
            **{
                **record,
                "cell": Cell.from_dict(record["cell"]),
                "difference": estimate_from(record["difference"]),
                "low": number(record["low"], -math.inf),
                "high": number(record["high"], math.inf),
                "reference_gap": number(record["reference_gap"], math.nan),
                "band": number(record["band"], math.nan),
                "predicted_mean": number(record["predicted_mean"], math.nan),
            }
        )


def finite_mean(values: np.ndarray) -> float:
    """The mean over the finite values (diverged runs left out; NaN when none is finite)."""
    kept = values[np.isfinite(values)]
    return float(kept.mean()) if kept.size else math.nan


def selection_score(values: np.ndarray) -> float:
    """The mean of a balancer's selection metric over a cell's seeds; ``inf`` when a run
    diverged, so that a diverged balancer is never the best."""
    return float(values.mean()) if np.isfinite(values).all() else math.inf


def best_balancer(arrays: Arrays, seeds: np.ndarray, selection: str) -> str:
    """The balancer with the lowest mean ``selection`` measurement over the unit indices
    ``seeds`` (ties to the first of :data:`BALANCERS`)."""
    return min(BALANCERS, key=lambda m: selection_score(arrays[m][selection][seeds]))


def finite_difference(variant: np.ndarray, baseline: np.ndarray) -> tuple[Estimate, int]:
    """The :func:`experiments.stats.paired_difference` ``variant - baseline`` over the seeds where
    both runs are finite, and the number of seeds left out because one diverged."""
    finite = np.isfinite(variant) & np.isfinite(baseline)
    kept = int(finite.sum())
    difference = paired_difference(variant[finite], baseline[finite]) if kept else NOTHING
    return difference, int(finite.size - kept)


def interval_of(difference: Estimate, config: Config) -> tuple[float, float]:
    """The registered two-sided Student-t interval at ``config.confidence``."""
    return difference.interval(config.confidence)


def compare(
    arrays: Arrays,
    unit_cells: list[Cell],
    config: Config,
    setting: tuple[str, str, str],
    oracle: bool = False,
) -> list[Row]:
    """Every comparison of one ``setting`` (model, optimiser, length) with the cells of its units
    ``unit_cells``: the headline variants against the best balancer and every variant against EW
    (``oracle``: only the headline variants, against the best balancer by target risk)."""
    cells = list(dict.fromkeys(unit_cells))
    rows = []
    for cell in cells:
        seeds = np.flatnonzero([c == cell for c in unit_cells])
        for direction in DIRECTIONS:
            for delta in config.deltas:
                selection = target_key(direction, delta) if oracle else "validation"
                best = best_balancer(arrays, seeds, selection)
                pairs = [(v, best, "best") for v in HEADLINE]
                if not oracle:
                    pairs += [(v, "ew", "ew") for v in VARIANTS]
                for variant, baseline, role in pairs:
                    key = gap_key(direction, delta)
                    difference, diverged = finite_difference(
                        arrays[variant][key][seeds], arrays[baseline][key][seeds]
                    )
                    low, high = interval_of(difference, config)
                    model, optimiser, length = setting
                    rows.append(
                        Row(
                            model=model,
                            optimiser=optimiser,
                            length=length,
                            cell=cell,
                            direction=direction,
                            delta=delta,
                            variant=variant,
                            baseline=role,
                            best_balancer=best,
                            difference=difference,
                            low=low,
                            high=high,
                            diverged=diverged,
                            reference_gap=finite_mean(arrays[baseline][key][seeds]),
                            selection="target oracle" if oracle else "validation",
                        )
                    )
    return rows


def attach(measured: list[Row], registered: Mapping[tuple, Row], config: Config) -> list[Row]:
    """Each measured row scored against its registered prediction (``registered`` by
    :meth:`Row.key`): the measured outcome, whether it held, its diagnosis and the seeds its
    test needs at the measured spread (:mod:`.rules`). A row with a diverged seed does not hold."""
    out = []
    for row in measured:
        prediction = registered[row.key()]
        base = replace(
            row,
            prediction=prediction.prediction,
            band=prediction.band,
            statement=prediction.statement,
            predicted_mean=prediction.difference.mean,
        )
        if row.diverged:
            out.append(replace(base, measured="diverged", held=False, diagnosis="diverged"))
            continue
        holds = rules.held(base.prediction, row.low, row.high)
        out.append(
            replace(
                base,
                measured=rules.measured_outcome(row.low, row.high),
                held=holds,
                diagnosis=rules.diagnosis(
                    base.prediction, base.band, base.predicted_mean, row.low, row.high, holds
                ),
                seeds_needed=rules.needed_seeds(
                    base.prediction, base.predicted_mean, row.difference.sd, config
                ),
            )
        )
    return out
