"""The summary of the regime map (study 1): every comparison scored against its registered
prediction, the regimes, the diagnosis per model, the S6 control and the verdict on the claim.

A regime (:func:`.cells.regime_of`) groups the cells of one size of ``v`` and one kind of source
correlation. Per model, optimiser, run length and regime, CORE-MTL's paired difference from the
best balancer (worst-case shift of the headline size, training-domain selection) is averaged per
seed over the regime's cells (the seeds are paired across cells) and summarised over seeds
(:func:`experiments.stats.paired_difference`); CORE-MTL is *reliably better* in the regime when the
registered interval of that mean lies below 0. The claim "CORE-MTL has a smaller OOD gap than the
best gradient balancer" *holds* when it is reliably better in every regime of every model and
optimiser (long runs), *holds only as stated here* when only in some, and *fails* when in none;
the same rule on the registered predicted means gives the verdict the predictions imply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.stats import Estimate
from experiments.study import FAILS, HOLDS, QUALIFIED
from experiments.synthetic.regime_map import model_a, model_b
from experiments.synthetic.regime_map.cells import Cell, regime_of
from experiments.synthetic.regime_map.comparisons import (
    Arrays,
    Row,
    attach,
    compare,
    estimate_from,
    finite_difference,
    finite_mean,
    gap_key,
    interval_of,
    number,
    target_key,
)
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.label_mediated import LabelRegime, label_regimes
from experiments.synthetic.regime_map.methods import METHODS
from experiments.synthetic.regime_map.rules import DIAGNOSES, band_of, classify, measured_outcome

CLAIM_LENGTH = "long"
"""The run length the claim is judged on (the trained method)."""


@dataclass(frozen=True)
class Regime:
    """One model, optimiser, run length and regime: its ``cells``, how many headline rows (every
    shift, both headline variants, against the best balancer) it has and their diagnoses;
    CORE-MTL minus the best balancer (worst-case shift of the headline size) averaged per seed over
    the cells, its interval, the seeds left out because a run diverged, and the same mean
    predicted by the registration with its band and classification."""

    model: str
    optimiser: str
    length: str
    regime: str
    cells: int
    rows: int
    diagnoses: dict[str, int]
    difference: Estimate
    low: float
    high: float
    diverged: int
    measured: str
    predicted_mean: float
    band: float
    predicted: str

    @property
    def label(self) -> str:
        return f"{self.model} {self.optimiser}, {self.regime}"


def arrays_of(raw: Mapping[str, Mapping[str, list]]) -> dict[str, dict[str, np.ndarray]]:
    """Measurements read back from JSON (``None``, a non-finite value, becomes NaN)."""
    return {
        method: {key: np.asarray(values, dtype=float) for key, values in by_key.items()}
        for method, by_key in raw.items()
    }


def unit_cells(model: str, config: Config) -> list[Cell]:
    return model_a.unit_cells(config) if model == "A" else model_b.unit_cells(config)


def method_means(
    arrays: Arrays, cells: list[Cell], setting: tuple[str, str, str], delta: float
) -> list[dict[str, Any]]:
    """Per cell and method: the means over seeds of the measurements (diverged runs left out),
    the gaps and target risk at shift size ``delta``."""
    rows = []
    for cell in dict.fromkeys(cells):
        seeds = np.flatnonzero([c == cell for c in cells])
        for method in METHODS:
            numbers = arrays[method]
            entry = {
                "model": setting[0],
                "optimiser": setting[1],
                "length": setting[2],
                "cell": asdict(cell),
                "method": method,
                "diverged": int((~np.isfinite(numbers["source_risk"][seeds])).sum()),
            }
            for key in ("sin2_psi", "leakage_ratio", "stream_cka", "source_excess"):
                entry[key] = finite_mean(numbers[key][seeds])
            entry["gap_worst"] = finite_mean(numbers[gap_key("worst", delta)][seeds])
            entry["target_worst"] = finite_mean(numbers[target_key("worst", delta)][seeds])
            entry["gap_random"] = finite_mean(numbers[gap_key("random", delta)][seeds])
            outside = f"outside_support|random|{delta}"
            if outside in numbers:
                entry["outside_support"] = finite_mean(numbers[outside][seeds])
            rows.append(entry)
    return rows


def pooled_difference(
    arrays: Arrays, cells: list[Cell], core: list[Row], delta: float
) -> tuple[Estimate, int]:
    """CORE-MTL against each cell's best balancer (worst-case shift ``delta``), both gaps averaged
    per seed over the cells of ``core`` (one headline row per cell): their paired difference over
    the seeds where every run is finite, and the seeds left out."""
    key = gap_key("worst", delta)
    places = [np.flatnonzero([c == row.cell for c in cells]) for row in core]
    variant = np.mean([arrays["core-mtl"][key][p] for p in places], axis=0)
    baseline = np.mean(
        [arrays[row.best_balancer][key][p] for row, p in zip(core, places, strict=True)], axis=0
    )
    return finite_difference(variant, baseline)


def is_claim_row(row: Row, config: Config) -> bool:
    """A row the claim reads: CORE-MTL against the best balancer, worst-case shift of the
    headline size."""
    return (
        row.variant == "core-mtl"
        and row.baseline == "best"
        and row.direction == "worst"
        and row.delta == config.display_delta
    )


def predicted_regimes(
    registered: list[Row], config: Config
) -> dict[tuple, tuple[float, float, str]]:
    """Per (model, optimiser, length, regime): the registered mean of CORE-MTL minus the best
    balancer averaged over the regime's cells, its band and its classification
    (:func:`.rules.classify` of the averaged mean against the averaged baseline gap)."""
    groups: dict[tuple, list[Row]] = {}
    for row in registered:
        if is_claim_row(row, config):
            key = (row.model, row.optimiser, row.length, regime_of(row.cell))
            groups.setdefault(key, []).append(row)
    out = {}
    for key, rows in groups.items():
        mean = float(np.mean([r.difference.mean for r in rows]))
        reference = float(np.mean([r.reference_gap for r in rows]))
        out[key] = (mean, band_of(reference, config), classify(mean, reference, config))
    return out


def implied_verdict(predicted: Mapping[tuple, tuple[float, float, str]]) -> str:
    """The verdict the registered predictions imply for the claim (:func:`predicted_regimes`,
    long runs)."""
    judged = [outcome for key, (_, _, outcome) in predicted.items() if key[2] == CLAIM_LENGTH]
    return verdict_of(judged.count("better"), len(judged))


def regimes_of(
    arrays: Arrays,
    cells: list[Cell],
    rows: list[Row],
    predicted: Mapping[tuple, tuple[float, float, str]],
    config: Config,
) -> list[Regime]:
    """The :class:`Regime` entries of one setting from its scored rows ``rows``."""
    delta = config.display_delta
    headline = [r for r in rows if r.baseline == "best"]
    out = []
    for name in dict.fromkeys(regime_of(cell) for cell in cells):
        chosen = [r for r in headline if regime_of(r.cell) == name]
        core = [r for r in chosen if is_claim_row(r, config)]
        difference, diverged = pooled_difference(arrays, cells, core, delta)
        low, high = interval_of(difference, config)
        predicted_mean, band, outcome = predicted[(*chosen[0].key()[:3], name)]
        out.append(
            Regime(
                model=chosen[0].model,
                optimiser=chosen[0].optimiser,
                length=chosen[0].length,
                regime=name,
                cells=len(core),
                rows=len(chosen),
                diagnoses=diagnosis_counts(chosen),
                difference=difference,
                low=low,
                high=high,
                diverged=diverged,
                measured="diverged" if difference.n == 0 else measured_outcome(low, high),
                predicted_mean=predicted_mean,
                band=band,
                predicted=outcome,
            )
        )
    return out


def diagnosis_counts(rows: list[Row]) -> dict[str, int]:
    """The number of rows of each diagnosis (:data:`.rules.DIAGNOSES`)."""
    return {name: sum(r.diagnosis == name for r in rows) for name in DIAGNOSES}


def diagnosis_summary(rows: list[Row], seeds: int) -> dict[str, Any]:
    """Headline rows by diagnosis; for the better/worse predictions, the median paired seeds their
    test needs at the measured spread (all of them, and the inconclusive ones), and the share
    whose need the run's ``seeds`` meet."""
    counts: dict[str, Any] = dict(diagnosis_counts(rows))
    needs = [r.seeds_needed for r in rows if r.seeds_needed is not None]
    inconclusive = [
        r.seeds_needed for r in rows if r.diagnosis == "inconclusive" and r.seeds_needed is not None
    ]
    counts["rows"] = len(rows)
    counts["seeds"] = seeds
    counts["median_seeds_needed"] = float(np.median(needs)) if needs else None
    counts["median_seeds_needed_inconclusive"] = (
        float(np.median(inconclusive)) if inconclusive else None
    )
    counts["share_powered"] = sum(n <= seeds for n in needs) / len(needs) if needs else None
    return counts


def verdict_of(better: int, total: int) -> str:
    """The claim's verdict from the number of (model, optimiser, regime) settings in which
    CORE-MTL is better, of ``total``."""
    return HOLDS if total and better == total else FAILS if better == 0 else QUALIFIED


def is_control(row: Row) -> bool:
    """S6's control: CKA only against EW in model A at ``Sigma_S = Sigma_s``, no correlation."""
    return (
        row.model == "A"
        and row.variant == "cka only"
        and row.baseline == "ew"
        and row.cell.v == 1.0
        and row.cell.correlation.strength == 0.0
    )


def summarise(config: Config, measurements: dict) -> dict:
    """Score every comparison, then the regimes, the diagnosis, the control, the claim and the
    label-mediated regimes (:mod:`.label_mediated`)."""
    registered_rows = [Row.from_dict(row) for row in measurements["registered"]]
    registered = {row.key(): row for row in registered_rows}
    predicted = predicted_regimes(registered_rows, config)
    rows: list[Row] = []
    oracle: list[Row] = []
    means: list[dict] = []
    regimes: list[Regime] = []
    labelled: list[LabelRegime] = []
    for model, by_optimiser in measurements["models"].items():
        cells = unit_cells(model, config)
        for optimiser, by_length in by_optimiser.items():
            for length, raw in by_length.items():
                arrays, setting = arrays_of(raw), (model, optimiser, length)
                scored = attach(compare(arrays, cells, config, setting), registered, config)
                rows += scored
                oracle += attach(compare(arrays, cells, config, setting, True), registered, config)
                means += method_means(arrays, cells, setting, config.display_delta)
                regimes += regimes_of(arrays, cells, scored, predicted, config)
                if model == "A":
                    signs = measurements.get("s13", [])
                    labelled += label_regimes(arrays, cells, scored, signs, config, setting)
    seeds = {"A": config.seeds, "B": None if config.mlp is None else config.mlp.seeds}
    diagnosis, shares = {}, {}
    for model in measurements["models"]:
        headline = [r for r in rows if r.model == model and r.baseline == "best"]
        diagnosis[model] = diagnosis_summary(headline, seeds[model])
        shares[model] = sum(bool(r.held) for r in headline) / max(1, len(headline))
    control = [r for r in rows if is_control(r)]
    judged = [r for r in regimes if r.length == CLAIM_LENGTH]
    better = [r.label for r in judged if r.measured == "better"]
    predicted_better = [r.label for r in judged if r.predicted == "better"]
    return {
        "seeds": seeds,
        "rows": [r.to_dict() for r in rows],
        "oracle": [r.to_dict() for r in oracle],
        "means": means,
        "regimes": [{**asdict(r), "label": r.label} for r in regimes],
        "label_regimes": [r.to_dict() for r in labelled],
        "held_share": shares,
        "diagnosis": diagnosis,
        "control": [r.to_dict() for r in control],
        "control_held": (
            all(r.held and r.prediction == "no difference" for r in control) if control else None
        ),
        "claim": {
            "settings": len(judged),
            "better": better,
            "predicted_better": predicted_better,
            "verdict": verdict_of(len(better), len(judged)),
            "implied": implied_verdict(predicted),
        },
    }


def regime_from_dict(record: Mapping[str, Any]) -> Regime:
    """A :class:`Regime` read back from the summary."""
    return Regime(
        **{
            **{key: value for key, value in record.items() if key != "label"},
            "difference": estimate_from(record["difference"]),
            "low": number(record["low"], -math.inf),
            "high": number(record["high"], math.inf),
            "predicted_mean": number(record["predicted_mean"], math.nan),
            "band": number(record["band"], math.nan),
        }
    )
