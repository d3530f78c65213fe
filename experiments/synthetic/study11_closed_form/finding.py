"""Study 11's reading of the cells: the registered rule applied to every cell, the summary, the
three predictions it makes and the finding.

With ``N`` cells and ``z = Phi^{-1}(1 - 0.025 / N)`` (:func:`~.setting.rule`), a cell keeps S1
when ``|MC - S1| <= z SE + r``, and S2 when ``MC - bound <= z SE + r`` for a random or orthogonal
direction and ``|MC - bound| <= z SE + r`` for the worst one; ``r = 1e-9 (R_S + R_T)`` covers
float64 round-off, which decides only the cells at ``psi = 0``. By the union bound a run whose
closed forms are right has some cell outside with probability at most 0.05.
"""

from __future__ import annotations

import numpy as np

from experiments.study import FAILS, HOLDS, Finding, Outcome, Prediction, Table, held_text
from experiments.synthetic.study11_closed_form.setting import Config, rule
from proofs.headline import Headline


def judge(cells: list[dict], z: float) -> dict:
    """The rule applied to measured cells: per-cell flags and the cells outside, per check."""
    flags, s1_failures, worst_failures, other_failures = [], 0, 0, 0
    for cell in cells:
        tolerance = z * cell["standard_error"] + cell["roundoff"]
        s1 = abs(cell["monte_carlo"] - cell["closed_form"]) <= tolerance
        excess = cell["monte_carlo"] - cell["bound"]
        worst = cell["direction"] == "worst"
        s2 = abs(excess) <= tolerance if worst else excess <= tolerance
        s1_failures += not s1
        worst_failures += worst and not s2
        other_failures += not worst and not s2
        flags.append({"s1_holds": bool(s1), "s2_holds": bool(s2)})
    return {
        "flags": flags,
        "s1_failures": s1_failures,
        "s2_failures": worst_failures + other_failures,
        "s2_worst_failures": worst_failures,
        "s2_other_failures": other_failures,
    }


def _standard_units(difference: float, cell: dict) -> float | None:
    """``difference / SE``, or None for a cell decided by round-off (SE below the round-off)."""
    if cell["standard_error"] <= cell["roundoff"]:
        return None
    return difference / cell["standard_error"]


def summarise(config: Config, measurements: dict) -> dict:
    """The rule's counts, the largest departures in standard errors, and per cell (``judged``, in
    the order of the measured cells) its flags and ``(MC - S1) / SE``, ``(MC - bound) / SE``."""
    z = rule(config)["z"]
    measured = measurements["cells"]
    judged = judge(measured, z)
    verdicts = [
        {
            **flags,
            "z_s1": _standard_units(cell["monte_carlo"] - cell["closed_form"], cell),
            "z_bound": _standard_units(cell["monte_carlo"] - cell["bound"], cell),
        }
        for cell, flags in zip(measured, judged["flags"], strict=True)
    ]
    cells = [{**cell, **extra} for cell, extra in zip(measured, verdicts, strict=True)]
    scored = [c for c in cells if c["z_s1"] is not None]
    others = [c for c in cells if c["direction"] != "worst"]
    worst = [c for c in cells if c["direction"] == "worst"]
    positive = [c for c in others if c["bound"] > 0]
    orthogonal = [c for c in cells if c["direction"] == "orthogonal" and c["z_s1"] is not None]
    ratios = [c["independent_standard_error"] / c["standard_error"] for c in scored]
    worst_scored = [abs(c["z_bound"]) for c in worst if c["z_bound"] is not None]
    return {
        "cells": len(cells),
        "worst_cells": len(worst),
        "other_cells": len(others),
        "z": z,
        **{key: value for key, value in judged.items() if key != "flags"},
        "largest_abs_z_s1": max((abs(c["z_s1"]) for c in scored), default=0.0),
        "roundoff_cells": len(cells) - len(scored),
        "roundoff_psis": sorted({c["psi"] for c in cells if c["z_s1"] is None}),
        "largest_roundoff_difference": max(
            (abs(c["monte_carlo"] - c["closed_form"]) for c in cells if c["z_s1"] is None),
            default=0.0,
        ),
        "largest_excess_over_bound_z": max(
            (c["z_bound"] for c in others if c["z_bound"] is not None), default=None
        ),
        "largest_closed_form_fraction_of_bound": max(
            (c["closed_form"] / c["bound"] for c in positive), default=None
        ),
        "largest_abs_z_worst_vs_bound": max(worst_scored, default=0.0),
        "largest_abs_z_orthogonal": max((abs(c["z_s1"]) for c in orthogonal), default=None),
        "median_independent_over_paired_se": float(np.median(ratios)) if ratios else None,
        "judged": verdicts,
    }


def _number(value: float | None, digits: str = ".2f") -> str:
    return "n/a" if value is None else format(value, digits)


def predictions(config: Config) -> list[Prediction]:
    registered = rule(config)
    cells, z = registered["cells"], registered["z"]
    within = f"z SE + r (z = {z:.2f}, Bonferroni over {cells} cells; r: float64 round-off)"

    def s1(summary: dict) -> Outcome:
        return Outcome(
            summary["s1_failures"] == 0,
            f"largest |MC - S1| = {summary['largest_abs_z_s1']:.2f} SE; outside: "
            f"{summary['s1_failures']} of {summary['cells']}",
        )

    def below_bound(summary: dict) -> Outcome:
        return Outcome(
            summary["s2_other_failures"] == 0,
            f"largest (MC - bound) / SE {_number(summary['largest_excess_over_bound_z'])}, "
            f"closed form at most {_number(summary['largest_closed_form_fraction_of_bound'])} of "
            f"the bound; outside: {summary['s2_other_failures']} of {summary['other_cells']}",
        )

    def attained(summary: dict) -> Outcome:
        return Outcome(
            summary["s2_worst_failures"] == 0,
            f"largest |MC - bound| = {summary['largest_abs_z_worst_vs_bound']:.2f} SE; outside: "
            f"{summary['s2_worst_failures']} of {summary['worst_cells']}",
        )

    return [
        Prediction(
            "P1",
            f"in every cell the Monte Carlo gap is within {within} of S1's closed form",
            "S1: R_T - R_S = s^2 w^T D w + (s w^T mu_T + b)^2 - (s w^T mu_S + b)^2 exactly",
            s1,
        ),
        Prediction(
            "P2",
            "along random and orthogonal directions the Monte Carlo gap exceeds S2's bound "
            f"s^2 ||w||^2 ||D||_F by at most {within}",
            "S2: the bound is the supremum of the gap over ||D||_F <= delta",
            below_bound,
        ),
        Prediction(
            "P3",
            f"along the worst direction the Monte Carlo gap is within {within} of S2's bound",
            "S2: D = delta w w^T / ||w||^2 attains the supremum",
            attained,
        ),
    ]


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """*holds* when every cell keeps S1 and S2 (P1-P3), *fails* otherwise; the headline is the
    largest departure of the check that decided it."""
    held = {outcome.id: outcome.held for outcome in outcomes}
    verdict = HOLDS if all(held.values()) else FAILS
    threshold = f"<= {summary['z']:.2f}, Bonferroni"
    cells = summary["cells"]
    if verdict == HOLDS or not held["P1"]:
        headline = Headline(
            f"largest |MC - S1| / SE over {cells} cells",
            summary["largest_abs_z_s1"],
            None,
            None,
            threshold,
        )
    elif not held["P3"]:
        headline = Headline(
            "largest |MC - S2 bound| / SE, worst direction",
            summary["largest_abs_z_worst_vs_bound"],
            threshold=threshold,
        )
    else:
        headline = Headline(
            "largest (MC - S2 bound) / SE, random and orthogonal directions",
            summary["largest_excess_over_bound_z"],
            threshold=threshold,
        )
    result = (
        f"Monte Carlo keeps S1's gap in {cells - summary['s1_failures']} of {cells} cells "
        f"(n = {config.samples} paired draws each; largest |MC - S1| "
        f"{summary['largest_abs_z_s1']:.2f} SE against z = {summary['z']:.2f}, and the "
        f"{summary['roundoff_cells']} cells whose SE is below round-off agree to "
        f"{summary['largest_roundoff_difference']:.1g}). S2's bound s^2 ||w||^2 ||D||_F holds in "
        f"{cells - summary['s2_failures']} of {cells} cells: the worst direction's gap is within "
        f"{summary['largest_abs_z_worst_vs_bound']:.2f} SE of it, and random and orthogonal "
        f"directions reach at most {_number(summary['largest_closed_form_fraction_of_bound'])} "
        "of it in closed form."
    )
    table = Table(
        ("check", "largest departure (SE)", "cells outside z SE + r"),
        (
            ("S1: |MC - S1|", f"{summary['largest_abs_z_s1']:.2f}", _share(summary, "s1", cells)),
            (
                "S2, worst direction: |MC - bound|",
                f"{summary['largest_abs_z_worst_vs_bound']:.2f}",
                _share(summary, "s2_worst", summary["worst_cells"]),
            ),
            (
                "S2, random and orthogonal: MC - bound",
                _number(summary["largest_excess_over_bound_z"]),
                _share(summary, "s2_other", summary["other_cells"]),
            ),
        ),
    )
    return Finding(
        verdict,
        headline,
        result,
        table,
        details=(
            f"Predictions: {held_text(outcomes)}.",
            "Common random numbers: the paired SE is "
            f"{_number(summary['median_independent_over_paired_se'], '.1f')}x smaller than "
            "independent samples' in the median cell; orthogonal shifts cost 0 in closed form, "
            f"MC within {_number(summary['largest_abs_z_orthogonal'])} SE; round-off decides the "
            f"cells at psi in {[round(psi, 3) for psi in summary['roundoff_psis']]}.",
        ),
        captions={
            "study11_closed_form": "OOD gap against sin^2(psi) per residual variance (dashed: "
            "S2's bound; thin: S1 along random directions; points: Monte Carlo +- 2 SE), and "
            "(MC - S1) / SE per cell against the Bonferroni z (right)."
        },
    )


def _share(summary: dict, check: str, total: int) -> str:
    return f"{summary[f'{check}_failures']} of {total}"
