"""The suite's summary: per benchmark and method, the target metric of the shortcut task, paired
differences, the selections of training-domain validation, and the ingredient behind each winner.

Statistics (:mod:`experiments.stats`): a seed fixes the data and the initialisation for every
method, so every comparison is the paired difference over seeds, ``mean +- SE``; "above" means more
than 2 SE above zero. Beside each difference, ``detectable`` is the smallest true difference the
seeds can detect with probability 0.8 at its spread.

Selection (DomainBed's training-domain validation): the *best balancer* is the balancer with the
highest mean source-validation metric of the shortcut task; the *selected CORE-MTL* is, among the
CORE-MTL settings run on the benchmark, the one with the highest mean source-validation metric.
The *target oracle* picks by the target validation split and is labelled as such. The calibration
row (EW on the target law) is a target oracle too: it only gives the scale.

Share of the shortcut removed by a method: ``(m - EW) / (calibration - EW)`` on the target, the
ratio of the paired means (1: as good as training without the shortcut; 0: no better than EW).

The ingredient behind a winner ``W`` (a method above EW by more than 2 SE; the calibration row
excluded; an ablation or a control that wins is reported as what it is, one ingredient of its
method switched off or EW on its layers, and not traced further), with ``g = W - EW`` its gain. For each ablation ``A`` of ``W`` (one ingredient switched
off): the ingredient carries part of the gain if ``W - A`` is above 0 by more than 2 SE; the share
it carries is ``(W - A) / g``. For its capacity control ``C`` (EW on the same extra layers):
capacity carries part of the gain if ``C - EW`` is above 0 by more than 2 SE; its share is
``(C - EW) / g``. The named ingredients are those that carry a part; "not traced" when none does.
A gain that its capacity control carries while ``W - C`` is not above 0 by 2 SE is reported first
as not separated from capacity (the finding), whatever the ablations carry within ``W``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from experiments.stats import Estimate
from experiments.stats import finite_estimate as estimate
from experiments.stats import finite_paired_difference as paired_difference
from experiments.synthetic.shortcuts.methods import (
    BALANCERS,
    CALIBRATION,
    CORE_VARIANTS,
    EW,
    METHODS,
)
from experiments.synthetic.shortcuts.probes import CHANCE

VARIANT_FAMILIES = ("ablation", "control")
"""Families whose members are traced through the method they belong to, not on their own: an
ablation's other ablations each switch off a different ingredient of the base method, so they are
not ablations of it."""
SELECTION = (
    "training-domain validation: the best balancer and the selected CORE-MTL setting have the "
    "highest mean source-validation metric of the shortcut task; target-oracle choices (by the "
    "target validation split) and the calibration row (EW trained on the target law) are labelled"
)


def values(
    records: Sequence[Mapping[str, Any]], benchmark: str, method: str, split: str, metric: str
) -> list[float]:
    """Per-seed values of ``metric`` on ``split`` in seed order (empty when not run; NaN for a
    run that diverged)."""
    chosen = sorted(
        (r for r in records if r["benchmark"] == benchmark and r["method"] == method),
        key=lambda r: r["seed"],
    )
    return [math.nan if r.get("diverged") else float(r["metrics"][split][metric]) for r in chosen]


def _mean(numbers: Sequence[float]) -> float:
    """The mean of the finite ``numbers`` (``-inf`` when none: a method that never trained is
    never selected)."""
    finite = [x for x in numbers if math.isfinite(x)]
    return float(np.mean(finite)) if finite else -math.inf


def _probe_means(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    names = [name for name in runs[0]["probes"] if name != CHANCE]
    return {
        name: {
            target: float(np.mean([r["probes"][name][target] for r in runs]))
            for target in runs[0]["probes"][name]
        }
        for name in names
    }


def _routing_mean(runs: Sequence[Mapping[str, Any]]) -> list[list[float]] | None:
    graphs = [r["routing"] for r in runs if r.get("routing") is not None]
    return np.mean(graphs, axis=0).tolist() if graphs else None


def _minus_of(name: str, target: Callable[[str], list[float]], present: Sequence[str]):
    """The paired difference of an ablation, control or variant from the method it belongs to
    (``METHODS[name].of``), where both ran."""
    of = METHODS[name].of
    return paired_difference(target(name), target(of)).to_dict() if of in present else None


def benchmark_summary(
    records: Sequence[Mapping[str, Any]], benchmark: str, metric: str
) -> dict[str, Any]:
    """Everything the predictions and the finding read for one benchmark (module docstring)."""
    present = list(dict.fromkeys(r["method"] for r in records if r["benchmark"] == benchmark))

    def target(method: str, split: str = "target_test") -> list[float]:
        return values(records, benchmark, method, split, metric)

    def source(method: str) -> float:
        return _mean(values(records, benchmark, method, "source_val", metric))

    balancers = [name for name in BALANCERS if name in present]
    best_balancer = max(balancers, key=source)
    cores = [name for name in CORE_VARIANTS if name in present]
    selected = max(cores, key=source) if cores else None
    oracle = max(cores, key=lambda m: _mean(target(m, "target_val"))) if cores else None
    ew, calibration = target(EW), target(CALIBRATION) if CALIBRATION in present else []
    drop = paired_difference(calibration, ew) if calibration else None
    methods: dict[str, dict[str, Any]] = {}
    for name in present:
        every = [r for r in records if r["benchmark"] == benchmark and r["method"] == name]
        runs = [r for r in every if not r.get("diverged")] or every
        minus_ew = paired_difference(target(name), ew)
        entry = {
            "family": METHODS[name].family,
            "label": runs[0]["label"],
            "diverged": len(every) - len([r for r in every if not r.get("diverged")]),
            "target": estimate(target(name)).to_dict(),
            "permuted": estimate(target(name, "permuted_test")).to_dict(),
            "source": estimate(values(records, benchmark, name, "source_val", metric)).to_dict(),
            "minus_ew": minus_ew.to_dict(),
            "detectable": minus_ew.detectable(),
            "minus_best_balancer": paired_difference(target(name), target(best_balancer)).to_dict(),
            "minus_of": _minus_of(name, target, present),
            "permuted_minus_ew": paired_difference(
                target(name, "permuted_test"), target(EW, "permuted_test")
            ).to_dict(),
            "permuted_minus_random": paired_difference(
                target(name, "permuted_test"), target(name)
            ).to_dict(),
            "share_removed": minus_ew.mean / drop.mean if drop and drop.mean > 0 else None,
            "probes": _probe_means(runs) if runs[0].get("probes") else {},
            "routing": _routing_mean(runs),
            "parameters": runs[0].get("parameters"),
            "train_seconds": float(np.mean([r["train_seconds"] for r in every])),
        }
        intrinsic = [r["intrinsic"] for r in runs if r.get("intrinsic")]
        if intrinsic:
            entry["intrinsic"] = {
                key: float(np.mean([probe[key] for probe in intrinsic])) for key in intrinsic[0]
            }
            entry["albedo"] = {
                "Z_s": entry["intrinsic"]["floor_albedo_r2/semantic"],
                "Z_r": entry["intrinsic"]["floor_albedo_r2/residual"],
            }
        methods[name] = entry
    winners = [
        name
        for name, entry in methods.items()
        if name != CALIBRATION and Estimate.from_dict(entry["minus_ew"]).above()
    ]
    return {
        "metric": metric,
        "methods": methods,
        "shortcut_drop": drop.to_dict() if drop else None,
        "best_balancer": best_balancer,
        "selected_core": selected,
        "oracle_core": oracle,
        "winners": winners,
        "attribution": {
            name: attribute(records, benchmark, metric, name)
            for name in winners
            if METHODS[name].family not in VARIANT_FAMILIES
        },
    }


def attribute(
    records: Sequence[Mapping[str, Any]], benchmark: str, metric: str, winner: str
) -> dict[str, Any]:
    """The ingredients that carry ``winner``'s gain over EW (module docstring)."""
    present = {r["method"] for r in records if r["benchmark"] == benchmark}

    def target(method: str) -> list[float]:
        return values(records, benchmark, method, "target_test", metric)

    base = METHODS[winner].of or winner
    related = [
        name
        for name, method in METHODS.items()
        if name in present and name != winner and method.of == base
        and method.family in ("ablation", "control")
    ]  # fmt: skip
    gain = paired_difference(target(winner), target(EW))
    rows, carried = {}, []
    for name in related:
        method = METHODS[name]
        winner_minus = paired_difference(target(winner), target(name))
        minus_ew = paired_difference(target(name), target(EW))
        carried_part = minus_ew if method.family == "control" else winner_minus
        rows[name] = {
            "ingredient": method.ingredient,
            "family": method.family,
            "winner_minus": winner_minus.to_dict(),
            "minus_ew": minus_ew.to_dict(),
            "share": carried_part.mean / gain.mean if gain.mean else None,
            "carries": bool(carried_part.above()),
        }
        carries = rows[name]["carries"]
        if carries:
            carried.append(method.ingredient)
    return {"gain": gain.to_dict(), "rows": rows, "ingredients": carried}


def sweep(
    records: Sequence[Mapping[str, Any]], benchmark: str, metric: str
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {strength: {"target": estimate, "minus_ew": paired difference}}}`` for the
    methods run at more than one strength."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    strengths = sorted({r["strength"] for r in records if r["benchmark"] == benchmark})
    for strength in strengths:
        at = [r for r in records if r["benchmark"] == benchmark and r["strength"] == strength]
        ew = values(at, benchmark, EW, "target_test", metric)
        for method in dict.fromkeys(r["method"] for r in at):
            target = values(at, benchmark, method, "target_test", metric)
            found.setdefault(method, {})[f"{strength:g}"] = {
                "target": estimate(target).to_dict(),
                "minus_ew": paired_difference(target, ew).to_dict() if ew else None,
            }
    return {method: by for method, by in found.items() if len(by) > 1}


def summarise_records(
    records: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, str],
    strength: float,
) -> dict[str, Any]:
    """The summary of every benchmark at the source ``strength`` (``metrics``: benchmark key ->
    its target metric), the chance level of its nuisance probe (the constant guess,
    :func:`~.probes.chance_accuracy`, averaged over its runs), and the strength sweep where one
    was run."""
    main = [r for r in records if r["strength"] == strength]
    return {
        "selection": SELECTION,
        "strength": strength,
        "benchmarks": {
            key: {
                **benchmark_summary(main, key, metric),
                "nuisance_chance": float(
                    np.mean(
                        [
                            r["probes"][CHANCE]["nuisance"]
                            for r in main
                            if r["benchmark"] == key and not r.get("diverged")
                        ]
                    )
                ),
                "sweep": sweep(records, key, metric),
            }
            for key, metric in metrics.items()
            if any(r["benchmark"] == key for r in main)
        },
    }
