"""Study 2: the leakage bound of S5 (claim C2, Theorem 2.4) on trained models.

Loss: absolute error ``l(y, yhat) = |y - yhat|``, 1-Lipschitz in ``yhat`` (``L = 1``). For a
dual-stream model with linear heads ``yhat_t = w_t^T Zhat_s + b_t`` the prediction is
``alpha_t lambda_leak``-Lipschitz in ``z_r`` with ``alpha_t = L ||w_t||_op`` and ``lambda_leak``
from the probe (:func:`coremtl.probes.leakage_coefficient`, largest Jacobian norm over sample
points). S5 then gives, per task and target shift,

    E_T[l] - E_S[l] <= C_cap + alpha_t lambda_leak W_1(P_S(Z_r), P_T(Z_r)),

with ``W_1`` from POT's exact EMD on samples. ``C_cap = 0`` in the population; here it is the
estimation error of the measured gap, taken as twice its standard error (independent source and
target samples). A tighter variant replaces ``alpha_t lambda_leak`` by the measured Lipschitz
constant of ``yhat_t`` in ``z_r`` (the only one available for MT-CRL, which has no streams).
Both Lipschitz constants are maxima over finite sample points, so they can under-estimate the
supremum.

The models are the shared zoo of :mod:`experiments.synthetic.models` (``measure`` keeps its
records); ``summarise`` forms one row per (model, shift > 0, task); the registered predictions
are that the bound holds in every row, in either form. The headline is the largest
``gap / (C_cap + bound)``, at most 1 where the bound holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.study import (
    FAILS,
    HOLDS,
    MEASURED,
    Context,
    Finding,
    Outcome,
    Prediction,
    Study,
    Table,
    held_text,
)
from experiments.synthetic.models import ZOO_CONFIGS, ZooConfig, trained_zoo
from proofs.headline import Headline, number_text

FORMS = {
    "bound": "||w_t|| lambda_leak (probe, dual-stream models)",
    "prediction_bound": "Lip_zr(yhat_t) (measured, every model)",
}
"""The two Lipschitz factors of the bound: the row key of each and its description."""


@dataclass(frozen=True)
class Config:
    zoo: ZooConfig = field(default_factory=ZooConfig)
    lipschitz: float = 1.0


CONFIGS = {mode: Config(zoo=zoo) for mode, zoo in ZOO_CONFIGS.items()}


def bound_rows(records, config: Config) -> list[dict]:
    """One row per (trained model, target shift > 0, task): the measured absolute-error gap,
    ``C_cap = 2 SE`` and the bound with each Lipschitz factor (the probe's only for dual-stream
    models)."""
    rows = []
    for record in records:
        for numbers in record["shifts"].values():
            if numbers["shift"] == 0:
                continue
            absolute = numbers["absolute"]
            for task in range(len(absolute["per_task"])):
                gap = float(absolute["per_task"][task])
                c_cap = 2.0 * float(absolute["per_task_standard_error"][task])
                prediction_bound = (
                    config.lipschitz
                    * float(record["prediction_lipschitz_zr"][task])
                    * numbers["w1"]
                )
                row = {
                    "method": record["method"],
                    "variant": record["variant"],
                    "seed": record["seed"],
                    "shift": numbers["shift"],
                    "task": task,
                    "gap": gap,
                    "c_cap": c_cap,
                    "w1": numbers["w1"],
                    "prediction_bound": prediction_bound,
                    "holds_prediction": gap <= c_cap + prediction_bound,
                }
                if "lambda_leak" in record:
                    alpha = config.lipschitz * float(record["head_norms"][task])
                    row["alpha"] = alpha
                    row["lambda_leak"] = record["lambda_leak"]
                    row["bound"] = alpha * record["lambda_leak"] * numbers["w1"]
                    row["holds"] = gap <= c_cap + row["bound"]
                    row["holds_without_c_cap"] = gap <= row["bound"]
                rows.append(row)
    return rows


def measure(context: Context) -> dict:
    """Train and measure the model zoo (cached per process, shared with study 6)."""
    config = context.config
    return {
        "records": list(trained_zoo(config.zoo, context.seed, context.device, context.progress))
    }


def _ratio(row: dict, key: str) -> float:
    """``gap / (C_cap + bound)``: at most 1 exactly when the bound holds."""
    allowed = row["c_cap"] + row[key]
    if allowed > 0:
        return row["gap"] / allowed
    return 0.0 if row["gap"] <= 0 else float("inf")


def _share(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def summarise(config: Config, measurements: dict) -> dict:
    rows = bound_rows(measurements["records"], config)
    streams = [r for r in rows if "bound" in r]
    slack = [r["bound"] / max(r["gap"], 1e-12) for r in streams if r["gap"] > r["c_cap"]]
    per_method = {}
    for method in config.zoo.methods:
        chosen = [r["holds"] for r in streams if r["method"] == method]
        if chosen:
            per_method[method] = float(np.mean(chosen))
    return {
        "rows": rows,
        "cases": len(streams),
        "cases_prediction": len(rows),
        "share_holds": _share([r["holds"] for r in streams]),
        "share_holds_without_c_cap": _share([r["holds_without_c_cap"] for r in streams]),
        "share_holds_prediction_lipschitz": _share([r["holds_prediction"] for r in rows]),
        "largest_ratio": max((_ratio(r, "bound") for r in streams), default=None),
        "largest_ratio_prediction": max(
            (_ratio(r, "prediction_bound") for r in rows), default=None
        ),
        "per_method_share": per_method,
        "median_c_cap": float(np.median([r["c_cap"] for r in rows])),
        "median_slack": float(np.median(slack)) if slack else None,
    }


def _percent(share: float | None) -> str:
    return "not measured" if share is None else f"{share:.1%}"


def predictions(config: Config) -> list[Prediction]:
    def every_case(share_key: str, ratio_key: str, cases_key: str):
        def score(summary: dict) -> Outcome:
            share, ratio = summary[share_key], summary[ratio_key]
            if share is None:
                return Outcome(None, "no case measured")
            return Outcome(
                share == 1.0,
                f"within the bound in {_percent(share)} of {summary[cases_key]} cases; largest "
                f"gap / (C_cap + bound) {number_text(ratio)}",
            )

        return score

    return [
        Prediction(
            "P1",
            "for every trained dual-stream model, target shift and task, the absolute-error gap "
            "is at most C_cap + ||w_t|| lambda_leak W_1(P_S(Z_r), P_T(Z_r))",
            "S5 (Theorem 2.4, C2): couple the environments through Z_r and apply "
            "Kantorovich-Rubinstein duality; C_cap = 2 SE of the measured gap",
            every_case("share_holds", "largest_ratio", "cases"),
        ),
        Prediction(
            "P2",
            "with the measured Lipschitz constant of each prediction in z_r in place of "
            "||w_t|| lambda_leak, the bound holds for every model, MT-CRL included",
            "S5: the prediction's Lipschitz constant in z_r is at most ||w_t|| lambda_leak",
            every_case(
                "share_holds_prediction_lipschitz", "largest_ratio_prediction", "cases_prediction"
            ),
        ),
    ]


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """The claim holds if the bound holds in every case in both forms (P1 and P2 held); it fails
    if either prediction did not hold; with no case measured it is only measured."""
    held = [outcome.held for outcome in outcomes]
    verdict = FAILS if False in held else HOLDS if all(held) else MEASURED
    ratio = summary["largest_ratio"]
    headline = Headline(
        f"largest gap / (C_cap + ||w|| lambda_leak W_1), {summary['cases']} cases",
        float("nan") if ratio is None else ratio,
        threshold="<= 1: the bound holds",
    )
    cases, outside = summary["cases"], sum(not r["holds"] for r in summary["rows"] if "holds" in r)
    if not cases:
        first = "No dual-stream model was trained, so the probe's form was not measured"
    elif outside:
        first = (
            f"The S5 bound fails in {outside} of {cases} (dual-stream model, shift, task) cases "
            f"(largest gap / (C_cap + bound) {number_text(ratio)})"
        )
    else:
        first = f"The S5 bound holds in all {cases} (dual-stream model, shift, task) cases"
        if summary["median_slack"] is not None:
            first += (
                f", with a median bound / gap of {summary['median_slack']:.2g} where the gap "
                "exceeds C_cap"
            )
    share = summary["share_holds_prediction_lipschitz"]
    second = (
        f"with the measured Lipschitz constant of each prediction in z_r it holds in "
        f"{_percent(share)} of {summary['cases_prediction']} cases, MT-CRL included."
    )
    table = Table(
        ("Lipschitz factor", "cases", "within C_cap + bound", "largest gap / (C_cap + bound)"),
        (
            (
                FORMS["bound"],
                str(summary["cases"]),
                _percent(summary["share_holds"]),
                number_text(ratio),
            ),
            (
                FORMS["prediction_bound"],
                str(summary["cases_prediction"]),
                _percent(share),
                number_text(summary["largest_ratio_prediction"]),
            ),
        ),
    )
    details = (
        f"Predictions: {held_text(outcomes)}.",
        f"Without C_cap the probe's bound holds in {_percent(summary['share_holds_without_c_cap'])}"
        f" of the cases; C_cap = 2 SE of the measured gap, median {summary['median_c_cap']:.2g}.",
        "Share of cases within the bound per method: "
        + ", ".join(f"{m}: {s:.1%}" for m, s in summary["per_method_share"].items())
        + ".",
        "Both Lipschitz constants are maxima over finite sample points and can under-estimate "
        "the supremum.",
    )
    return Finding(
        verdict,
        headline,
        f"{first}; {second}",
        table,
        details,
        captions={
            "study2_leakage_bound": "Measured absolute-error OOD gap against C_cap + the S5 bound, "
            "one point per (model, shift, task): left with ||w_t|| lambda_leak from the probe, "
            "right with the measured Lipschitz constant of the prediction in z_r; points below "
            "the dashed line obey the bound."
        },
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    methods = list(result["config"]["zoo"]["methods"])
    rows_all = result["summary"]["rows"]
    palette = dict(zip(methods, colours(len(methods)), strict=True))
    figure, axes = new_figure(2, 1)
    for axis, key, label in (
        (axes[0, 0], "bound", "C_cap + ||w_t|| lambda_leak W_1"),
        (axes[0, 1], "prediction_bound", "C_cap + Lip_zr(yhat_t) W_1"),
    ):
        values = []
        for method in methods:
            rows = [r for r in rows_all if r["method"] == method and key in r]
            if not rows:
                continue
            bounds = [r["c_cap"] + r[key] for r in rows]
            gaps = [r["gap"] for r in rows]
            values += bounds + [abs(g) for g in gaps]
            axis.scatter(bounds, gaps, s=10, color=palette[method], label=method, alpha=0.7)
        positive = [v for v in values if v > 0]
        if positive:
            line = np.array([min(positive), max(positive)])
            axis.plot(line, line, "k--", lw=0.8, label="gap = bound")
            axis.set_xscale("log")
            axis.set_yscale("symlog", linthresh=min(positive))
        axis.set_title(
            f"S5/C2: measured gap vs bound ({'probe' if key == 'bound' else 'prediction'} Lipschitz)"
        )
        axis.set_xlabel(f"{label} (absolute error)")
        axis.set_ylabel("E_T|y - yhat| - E_S|y - yhat|")
        axis.legend(fontsize=6, ncol=2)
    return save_figure(figure, directory, "study2_leakage_bound")


STUDY = Study(
    number=2,
    name="Leakage bound (S5)",
    statements=("S5", "C2"),
    claim="the OOD gap of a trained dual-stream model is at most C_cap + alpha lambda_leak "
    "W_1(P_S(Z_r), P_T(Z_r)), so a semantic stream that does not leak the residual is "
    "insensitive to the size of the residual shift",
    expected=HOLDS,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
)
