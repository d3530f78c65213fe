"""The registered rules of the regime map (study 1): how a predicted mean difference is classified,
when a measured interval holds a prediction, and the diagnosis of one that did not hold.

``d`` is ``gap(variant) - gap(baseline)``; the band of a comparison is
``band = band_relative |gap(baseline)| + band_absolute``. A prediction is *better* when the predicted
mean is below ``-band``, *worse* above ``band``, else *no difference*; it holds when the measured
two-sided interval lies below 0, above 0, or contains 0, respectively.
"""

from __future__ import annotations

import math

from experiments.stats import critical_z, seeds_needed
from experiments.synthetic.regime_map.config import Config

OUTCOMES = ("better", "worse", "no difference")
DIAGNOSES = ("held", "contradicted", "off in size", "inconclusive", "diverged")
POWER = 0.8
"""The power at which the seeds a registered test needs are computed."""


def band_of(reference_gap: float, config: Config) -> float:
    """The registered band ``band_relative |gap(baseline)| + band_absolute``."""
    return config.band_relative * abs(reference_gap) + config.band_absolute


def classify(mean_difference: float, reference_gap: float, config: Config) -> str:
    """The predicted outcome of a mean difference ``variant - baseline``."""
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
    """The outcome an interval shows: below 0 (better), above 0 (worse), else no difference."""
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
    """Why a prediction did or did not hold (a reading beside the registered rule, which alone
    scores the prediction), from the measured interval ``[low, high]``:

    - ``held``;
    - ``contradicted``: the interval is disjoint from the predicted region (the data exclude
      what was predicted);
    - ``off in size``: the interval overlaps the predicted region but excludes the predicted mean
      (the effect is demonstrably smaller, or larger, than predicted);
    - ``inconclusive``: the interval contains the predicted mean and the registered test could not
      decide (more seeds are needed, :func:`needed_seeds`)."""
    if held_:
        return "held"
    start, end = predicted_region(prediction, band)
    if high < start or low > end:
        return "contradicted"
    return "inconclusive" if low <= predicted_mean <= high else "off in size"


def needed_seeds(prediction: str, predicted_mean: float, sd: float, config: Config) -> int | None:
    """The paired seeds the registered two-sided test needs to find a true difference equal to the
    predicted mean with probability :data:`POWER`, ``((z_{1-a/2} + z_power) sd / |mean|)^2``
    (:func:`experiments.stats.seeds_needed`); None for a *no difference* prediction."""
    if prediction == "no difference":
        return None
    return seeds_needed(predicted_mean, sd, k=critical_z(config.confidence), power=POWER)
