"""Study 10's summary, registered predictions and finding.

Per method: the mean over seeds of the summed OOD gap with its standard error, and the mean
off-block weight and risks. Differences between methods are paired by seed
(:func:`experiments.stats.paired_difference`). S12's two predictions are read with the k-SE test
(``k = 2``): EW at width ``m < K`` has a larger gap than single-task learning (the claim), and EW
at width ``K`` a smaller one than at width ``m`` (S12's qualifier).
"""

from __future__ import annotations

from experiments.stats import Estimate, estimate, paired_difference
from experiments.study import (
    FAILS,
    HOLDS,
    QUALIFIED,
    Finding,
    Outcome,
    Prediction,
    Table,
    headline_of,
    held_text,
)
from experiments.synthetic.study10_mtcrl.setting import SELECTION, Config

NARROW = "ew - single-task"
WIDE = "ew (width K) - ew"


def summarise(config: Config, measurements: dict) -> dict:
    records = measurements["records"]
    gaps = {m: [r["gap"] for r in records if r["method"] == m] for m in config.methods}
    methods = {}
    for method in config.methods:
        chosen = [r for r in records if r["method"] == method]
        methods[method] = {
            "gap": estimate(gaps[method]).to_dict(),
            **{
                key: estimate([r[key] for r in chosen]).mean
                for key in ("off_block_weight", "source_risk", "target_risk")
            },
        }
    differences = {
        f"{m} - single-task": paired_difference(gaps[m], gaps["single-task"]).to_dict()
        for m in config.methods
        if m != "single-task" and "single-task" in gaps
    }
    differences.update(
        {
            f"{m} - ew": paired_difference(gaps[m], gaps["ew"]).to_dict()
            for m in config.methods
            if m not in ("ew", "single-task") and "ew" in gaps
        }
    )
    return {"methods": methods, "differences": differences}


def _difference(summary: dict, name: str) -> Estimate | None:
    record = summary["differences"].get(name)
    return None if record is None else Estimate.from_dict(record)


def predictions(config: Config) -> list[Prediction]:
    def narrow(summary: dict) -> Outcome:
        found = _difference(summary, NARROW)
        if found is None:
            return Outcome(None, "single-task or EW not run")
        return Outcome(found.above(), f"EW - single-task {found.text(4)} (paired, mean +- SE)")

    def wide(summary: dict) -> Outcome:
        found = _difference(summary, WIDE)
        if found is None:
            return Outcome(None, "EW at width K not run")
        return Outcome(found.below(), f"EW (width K) - EW {found.text(4)} (paired, mean +- SE)")

    return [
        Prediction(
            "P1",
            f"EW at width m = {config.width} < K has a larger summed OOD gap than single-task "
            "learning, by more than 2 paired SE",
            "S12: the width-m source optimum reads other tasks' factors, gap "
            "G = tr(P_m (Q_S - Q_T)) > 0; single-task models have gap 0",
            narrow,
        ),
        Prediction(
            "P2",
            "EW at width K has a smaller summed OOD gap than EW at width m, by more than 2 paired "
            "SE",
            "S12's qualifier: a shared width m >= K keeps every task's optimum, gap 0",
            wide,
        ),
    ]


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """*fails* unless P1 holds; with P1, *holds only as stated here* when P2 shows the gap
    vanishing at width K (the claim needs a shared width below K), *holds* otherwise."""
    held = {outcome.id: outcome.held for outcome in outcomes}
    if not held["P1"]:
        verdict = FAILS
    else:
        verdict = QUALIFIED if held["P2"] else HOLDS
    narrow = _difference(summary, NARROW)
    headline = (
        headline_of(
            f"summed OOD gap, EW (width {config.width}) - single-task", narrow, "> 0 by 2 SE"
        )
        if narrow is not None
        else headline_of(
            "summed OOD gap of EW", Estimate.from_dict(summary["methods"]["ew"]["gap"])
        )
    )
    methods = summary["methods"]
    width_k = methods.get("ew (width K)")
    others = [name for name in summary["differences"] if name.endswith(" - ew") and name != WIDE]
    result = (
        f"Shared at width m = {config.width} < K = {len(config.betas)}, EW's summed OOD gap minus "
        f"single-task's is {narrow.text(3) if narrow else 'not measured'} over "
        f"{config.seeds} paired seeds"
        + (
            f"; at width K EW's gap is {Estimate.from_dict(width_k['gap']).text(3, signed=False)}."
            if width_k
            else "."
        )
        + (
            " Gap minus EW's at width m: "
            + ", ".join(
                f"{name.removesuffix(' - ew')} {_difference(summary, name).text(3)}"
                for name in others
            )
            + " (paired, mean +- SE)."
            if others
            else ""
        )
    )
    table = Table(
        ("method", "summed OOD gap (mean +- SE)", "source risk", "off-block weight"),
        tuple(
            (
                method,
                Estimate.from_dict(entry["gap"]).text(4, signed=False),
                f"{entry['source_risk']:.3f}",
                f"{entry['off_block_weight']:.3f}",
            )
            for method, entry in methods.items()
        ),
    )
    return Finding(
        verdict,
        headline,
        result,
        table,
        details=(
            f"Predictions: {held_text(outcomes)}.",
            f"Selection: {SELECTION}.",
        ),
        captions={
            "study10_mtcrl": "Summed OOD gap per method (left, mean +- SE over seeds) and weight "
            "on other tasks' causal factors (right); dashed: S12's closed form for EW's source "
            "optimum at width m."
        },
    )
