"""The cells of the regime map (study 1): the grid's configuration, the methods, and the paired
comparison of CORE-MTL's variants against the best balancer per cell, with the pre-registered
prediction attached to each measured row (the rules are in
:mod:`experiments.synthetic.study1_regime_map`). Models A (:mod:`.regime_angle`) and B
(:mod:`.regime_mlp`) are both measured and compared through these functions."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from coremtl.objective import CoreMTLObjective

BALANCERS = ("ew", "pcgrad", "mgda", "rlw", "alignedmtl", "upgrad", "cagrad")
"""The balancers compared (registry names, all batched in :mod:`coremtl.batched.balancing`).
IMTL-G is left out: model A has one shared parameter, so ``J = j`` is ``K x 1`` and torchjd's
IMTL-G (``w = G^+ d / 1^T G^+ d``) updates it by ``||j||^2 / sum_i j_i``, unbounded when the task
derivatives nearly cancel; the runs diverge."""

LOSS_BALANCERS = ("ew", "rlw")
"""The balancers among them that weight the losses (one backward pass per step)."""


VARIANTS = {
    "core-mtl": (),
    "cka only": ("cfa", "reconstruction"),
    "w/o CKA": ("cka",),
    "w/o CFA": ("cfa",),
    "w/o rec": ("reconstruction",),
}
"""CORE-MTL and its ablations: the terms of ``Config.objective`` each switches off."""


METHODS = (*BALANCERS, *VARIANTS)


HEADLINE = ("core-mtl", "cka only")


DIRECTIONS = ("random", "worst")


DIAGNOSES = ("held", "contradicted", "off in size", "inconclusive", "diverged")


@dataclass(frozen=True)
class Schedule:
    """One optimiser: its rate, weight decay and the short and long step counts."""

    lr: float
    short: int
    long: int
    weight_decay: float = 0.0


@dataclass(frozen=True)
class MLPConfig:
    variances: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0, 3.0)
    rhos: tuple[float, ...] = (0.0, 0.5, 0.9)
    mixings: tuple[str, ...] = ("linear", "nonlinear")
    hidden: tuple[int, ...] = (16, 16)
    decoder_hidden: tuple[int, ...] = (16,)
    train: int = 512
    validation: int = 512
    evaluation: int = 50_000
    jacobian_points: int = 2048
    nonlinear_strength: float = 1.0
    schedules: dict = field(
        default_factory=lambda: {
            "gd": Schedule(lr=0.05, short=100, long=400),
            "adamw": Schedule(lr=3e-3, short=100, long=400, weight_decay=1e-2),
        }
    )
    chunk: int = 512


@dataclass(frozen=True)
class Config:
    seeds: int = 10
    k: int = 2
    tasks: int = 2
    noise_std: float = 0.1
    variances: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0, 3.0)
    rhos: tuple[float, ...] = (0.0, 0.5, 0.9)
    starts: tuple[float, ...] = (0.3, 0.6, 1.0)
    deltas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    head_scale: float = 0.5
    a_train: int = 256
    a_validation: int = 256
    schedules: dict = field(
        default_factory=lambda: {
            "gd": Schedule(lr=0.1, short=30, long=600),
            "adamw": Schedule(lr=0.01, short=30, long=600, weight_decay=1e-2),
        }
    )
    objective: CoreMTLObjective = field(
        default_factory=lambda: CoreMTLObjective(
            cka_weight=1.0,
            cka_warmup_steps=0,
            cfa_weight=1.0,
            cfa_probability=1.0,
            reconstruction_weight=1.0,
        )
    )
    band_relative: float = 0.05
    band_absolute: float = 1e-4
    confidence: float = 0.95
    agree_share: float = 0.9
    mlp: MLPConfig | None = field(default_factory=MLPConfig)


def variant_objective(config: Config, method: str) -> CoreMTLObjective | None:
    """The objective of CORE-MTL variant ``method`` (``config.objective`` with the terms of
    :data:`VARIANTS` switched off), or None for a balancer (no CORE-MTL terms)."""
    if method not in VARIANTS:
        return None
    off = {f"{term}_weight": 0.0 for term in VARIANTS[method]}
    return dataclasses.replace(config.objective, **off)


def method_weights(config: Config, methods: list[str], units: int, device="cpu"):
    """``TermWeights`` over ``methods x units`` models (method-major), on ``device``."""
    from coremtl.batched import TermWeights

    objectives = [variant_objective(config, m) for m in methods for _ in range(units)]
    return TermWeights.per_model(objectives, torch.float64, device)


GROUPS = (
    (*LOSS_BALANCERS, *VARIANTS),
    tuple(m for m in BALANCERS if m not in LOSS_BALANCERS),
)
"""Methods trained as one batch: the loss weightings (Equal Weighting, RLW) and the CORE-MTL
variants (one backward pass per step), and the Jacobian balancers (one pass per task)."""


def balancer_names(methods: tuple[str, ...], units: int) -> tuple[str, ...]:
    """The balancer of every model of a ``methods x units`` batch (CORE-MTL variants use EW)."""
    return tuple(m if m in BALANCERS else "ew" for m in methods for _ in range(units))


def band_of(reference_gap: float, config: Config) -> float:
    """The registered band ``band_relative |gap(baseline)| + band_absolute``."""
    return config.band_relative * abs(reference_gap) + config.band_absolute


def classify(mean_difference: float, reference_gap: float, config: Config) -> str:
    """The predicted outcome of a mean difference ``CORE variant - best balancer``."""
    band = band_of(reference_gap, config)
    if mean_difference < -band:
        return "better"
    if mean_difference > band:
        return "worse"
    return "no difference"


def held(prediction: str, low: float, high: float) -> bool:
    """Whether the interval ``[low, high]`` of the measured difference matches ``prediction``."""
    if prediction == "better":
        return high < 0
    if prediction == "worse":
        return low > 0
    return low <= 0 <= high


def measured_outcome(low: float, high: float) -> str:
    return "better" if high < 0 else "worse" if low > 0 else "no difference"


def predicted_region(prediction: str, band: float) -> tuple[float, float]:
    """The values of the true difference that ``prediction`` asserts: ``d < -band`` (better),
    ``d > band`` (worse), ``|d| <= band`` (no difference), the regions :func:`classify` cuts."""
    if prediction == "better":
        return -math.inf, -band
    if prediction == "worse":
        return band, math.inf
    return -band, band


def diagnosis(
    prediction: str, band: float, predicted_mean: float, low: float, high: float, held_: bool
) -> str:
    """Why a prediction did or did not hold (a reading added after the registered rule, which
    stays the verdict's), from the measured interval ``[low, high]``:

    - ``held``;
    - ``contradicted``: the interval is disjoint from the predicted region (the data exclude
      what was predicted);
    - ``off in size``: the interval overlaps the predicted region but excludes the predicted mean
      (the effect is demonstrably smaller, or larger, than predicted);
    - ``inconclusive``: the interval contains the predicted mean and the registered test could not
      decide (more seeds are needed, :func:`seeds_needed`)."""
    if held_:
        return "held"
    start, end = predicted_region(prediction, band)
    if high < start or low > end:
        return "contradicted"
    return "inconclusive" if low <= predicted_mean <= high else "off in size"


def seeds_needed(predicted_mean: float, sd: float, power: float = 0.8, confidence: float = 0.95):
    """Paired seeds for the registered two-sided test to find a true difference equal to the
    predicted mean with probability ``power``: ``n = ((z_{1-a/2} + z_power) sd / |mean|)^2``
    (normal approximation); ``None`` for a zero predicted mean."""
    from scipy.stats import norm

    if predicted_mean == 0 or not math.isfinite(sd):
        return None
    z = norm.ppf(0.5 + confidence / 2) + norm.ppf(power)
    return max(2, math.ceil((z * sd / abs(predicted_mean)) ** 2))


def comparisons(
    evaluated: dict, cells: list, unit_cells: list, config: Config, step: int, oracle: bool = False
) -> list[dict]:
    """Per cell, direction and shift size: ``gap(variant) - gap(best balancer)`` for the headline
    variants, and ``gap(variant) - gap(EW)`` for every variant (the effect of its terms), each as
    mean, standard error and a two-sided Student-t interval over the cell's paired seeds.

    The best balancer of a cell is the one with the lowest mean validation risk over the cell's
    seeds (training-domain validation), or, with ``oracle``, the lowest mean target risk in that
    shift (the labelled target-oracle row); a balancer with a diverged (non-finite) run is never
    selected. A seed on which the variant or its baseline diverged is counted in ``diverged`` and
    left out of the mean and interval, which are over the remaining seeds.
    """
    from scipy.stats import t as student

    rows = []
    cell_index = np.asarray([cells.index(c) for c in unit_cells])
    for position, cell in enumerate(cells):
        idx = np.flatnonzero(cell_index == position)
        for direction in DIRECTIONS:
            for delta in config.deltas:
                key = f"gap|{direction}|{delta}"
                select = f"target|{direction}|{delta}" if oracle else "validation"
                best = min(
                    BALANCERS, key=lambda m: selection_score(evaluated[m][step][select][idx])
                )
                pairs = [(v, best, "best") for v in HEADLINE]
                pairs += [(v, "ew", "ew") for v in VARIANTS]
                for variant, baseline, role in pairs:
                    diff = evaluated[variant][step][key][idx] - evaluated[baseline][step][key][idx]
                    kept = diff[np.isfinite(diff)]
                    n = kept.size
                    mean = float(kept.mean()) if n else math.nan
                    se = float(kept.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
                    quantile = (
                        float(student.ppf(0.5 + config.confidence / 2, n - 1))
                        if n > 1
                        else math.inf
                    )
                    reference = evaluated[baseline][step][key][idx]
                    rows.append({
                        "cell": list(cell), "direction": direction, "delta": delta,
                        "variant": variant, "baseline": role,
                        "best_balancer": best, "mean": mean, "se": se,
                        "low": mean - quantile * se, "high": mean + quantile * se, "seeds": n,
                        "diverged": int(diff.size - n),
                        "reference_gap": finite_mean(reference),
                    })  # fmt: skip
    return rows


def finite_mean(values: np.ndarray) -> float:
    """The mean over the finite values (diverged runs left out; NaN when none is finite)."""
    kept = values[np.isfinite(values)]
    return float(kept.mean()) if kept.size else math.nan


def selection_score(values: np.ndarray) -> float:
    """The mean of a balancer's selection metric over a cell's seeds; ``inf`` when a run
    diverged, so that a diverged balancer is never the best."""
    return float(values.mean()) if np.isfinite(values).all() else math.inf


def summaries(evaluated: dict, cells: list, unit_cells: list, step: int, delta: float) -> list:
    """Per cell and method: means over seeds of the measurements (worst-case shift ``delta``)."""
    cell_index = np.asarray([cells.index(c) for c in unit_cells])
    rows = []
    for position, cell in enumerate(cells):
        idx = np.flatnonzero(cell_index == position)
        for method in METHODS:
            numbers = evaluated[method][step]
            entry = {
                "cell": list(cell),
                "method": method,
                "diverged": int((~np.isfinite(numbers["source_risk"][idx])).sum()),
            }
            for key in ("sin2_psi", "leakage_ratio", "stream_cka", "source_excess"):
                entry[key] = finite_mean(numbers[key][idx])
            entry["gap_worst"] = finite_mean(numbers[f"gap|worst|{delta}"][idx])
            entry["target_worst"] = finite_mean(numbers[f"target|worst|{delta}"][idx])
            entry["gap_random"] = finite_mean(numbers[f"gap|random|{delta}"][idx])
            if "outside_support|random|" + str(delta) in numbers:
                entry["outside_support"] = finite_mean(
                    numbers[f"outside_support|random|{delta}"][idx]
                )
            rows.append(entry)
    return rows


def _key(row: dict, cell_length: int) -> tuple:
    return (tuple(row["cell"][:cell_length]), row["direction"], row["delta"], row["variant"],
            row["baseline"])  # fmt: skip


def attach(measured: list[dict], predicted: list[dict], cell_length: int) -> list[dict]:
    """Each measured row with its pre-registered prediction and whether it held."""
    lookup = {_key(row, cell_length): row for row in predicted}
    for row in measured:
        prediction = lookup[_key(row, cell_length)]
        row["prediction"] = prediction["prediction"]
        row["predicted_mean"] = prediction["mean"]
        row["predicted_band"] = prediction["band"]
        row["statement"] = prediction["statement"]
        row["measured"] = measured_outcome(row["low"], row["high"])
        row["held"] = held(row["prediction"], row["low"], row["high"]) and not row["diverged"]
        if row["diverged"]:
            row["measured"] = row["diagnosis"] = "diverged"
            row["seeds_needed"] = None
            continue
        row["diagnosis"] = diagnosis(
            row["prediction"], row["predicted_band"], row["predicted_mean"], row["low"],
            row["high"], row["held"],
        )  # fmt: skip
        sd = row["se"] * math.sqrt(row["seeds"])
        row["seeds_needed"] = (
            seeds_needed(row["predicted_mean"], sd)
            if row["prediction"] != "no difference"
            else None
        )
    return measured


def display_delta(config: Config) -> float:
    return 1.0 if 1.0 in config.deltas else config.deltas[0]
