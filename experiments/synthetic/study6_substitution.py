"""Study 6: feature substitution (claim C5).

For every trained dual-stream model of :mod:`experiments.synthetic.models`, inputs ``x`` and
``x' = g(G [z_s; z_r(pi)])`` share their semantic factors and differ in their residual factors
(``pi`` a cyclic shift of the sample). :func:`coremtl.probes.substitution_stability` gives
``dZ = mean ||Z(x') - Z(x)|| / spread(Z)`` per stream and the ratio ``dZ_r / dZ_s``; the paper
reports 3.28 on cross-domain images. A ratio above 1 means the residual stream absorbs the swap.

The registered predictions are the paper's: CORE-MTL's mean ratio on the linear SCM is above 1
(P1), and above Equal Weighting's by more than 2 standard errors of the difference (P2: the
ratio comes from CORE-MTL's terms, not from the dual-stream architecture). The difference's
standard error is that of two independent means (:func:`experiments.stats.independent_se`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.stats import K_SE, critical_z, estimate, independent_se, mean_std
from experiments.study import (
    FAILS,
    HOLDS,
    QUALIFIED,
    Context,
    Finding,
    Outcome,
    Prediction,
    Study,
    Table,
    headline_of,
    held_text,
)
from experiments.synthetic.models import ZOO_CONFIGS, ZooConfig, trained_zoo
from proofs.headline import Headline, number_text

PAPER_RATIO = 3.28
CORE, REFERENCE = "core-mtl", "ew"


@dataclass(frozen=True)
class Config:
    zoo: ZooConfig = field(default_factory=ZooConfig)


CONFIGS = {mode: Config(zoo=zoo) for mode, zoo in ZOO_CONFIGS.items()}


def measure(context: Context) -> dict:
    """``dZ_s``, ``dZ_r`` and their ratio for every trained dual-stream model of the zoo (cached
    per process, shared with study 2)."""
    config = context.config
    records = trained_zoo(config.zoo, context.seed, context.device, context.progress)
    return {
        "models": [
            {
                "variant": record["variant"],
                "method": record["method"],
                "seed": record["seed"],
                **{key: record["substitution"][key] for key in ("ratio", "dZ_s", "dZ_r")},
            }
            for record in records
            if "substitution" in record
        ]
    }


def summarise(config: Config, measurements: dict) -> dict:
    """Per (variant, method): the ratios over seeds with mean and sd (the figure's bars) and SE;
    on the linear SCM, CORE-MTL minus EW."""
    groups: dict[str, dict] = {}
    for model in measurements["models"]:
        entry = groups.setdefault(
            f"{model['variant']}|{model['method']}",
            {
                "variant": model["variant"],
                "method": model["method"],
                "ratios": [],
                "dZ_s": [],
                "dZ_r": [],
            },
        )
        for key, name in (("ratios", "ratio"), ("dZ_s", "dZ_s"), ("dZ_r", "dZ_r")):
            entry[key].append(model[name])
    for entry in groups.values():
        entry["ratio"] = mean_std(entry["ratios"])
        entry["ratio_se"] = estimate(entry["ratios"]).se
        entry["dZ_s_summary"] = mean_std(entry["dZ_s"])
        entry["dZ_r_summary"] = mean_std(entry["dZ_r"])
    core, reference = groups.get(f"linear|{CORE}"), groups.get(f"linear|{REFERENCE}")
    difference = None
    if core and reference:
        difference = {
            "mean": core["ratio"]["mean"] - reference["ratio"]["mean"],
            "se": independent_se(core["ratios"], reference["ratios"]),
        }
    return {"groups": groups, "paper_ratio": PAPER_RATIO, "core_minus_ew": difference}


def _core(summary: dict) -> dict | None:
    return summary["groups"].get(f"linear|{CORE}")


def predictions(config: Config) -> list[Prediction]:
    def above_one(summary: dict) -> Outcome:
        core = _core(summary)
        if core is None:
            return Outcome(None, "CORE-MTL not trained in this setting")
        ratio = core["ratio"]
        return Outcome(
            ratio["mean"] > 1,
            f"CORE-MTL {ratio['mean']:.3g} (sd {ratio['std']:.3g}, n {ratio['n']})",
        )

    def above_ew(summary: dict) -> Outcome:
        difference = summary["core_minus_ew"]
        if difference is None:
            return Outcome(None, "CORE-MTL or EW not trained in this setting")
        se = difference["se"]
        held = se is not None and difference["mean"] > K_SE * se
        return Outcome(held, f"CORE-MTL - EW {difference['mean']:+.3g} +- {number_text(se)} (SE)")

    return [
        Prediction(
            "P1",
            "CORE-MTL's mean dZ_r / dZ_s on the linear SCM is above 1",
            f"C5: the paper reports {PAPER_RATIO} on cross-domain images",
            above_one,
        ),
        Prediction(
            "P2",
            f"CORE-MTL's mean ratio is above Equal Weighting's by more than {K_SE:g} standard "
            "errors of the difference",
            "C5 as evidence of CORE-MTL's separation: its terms, not the dual-stream "
            "architecture, make the residual stream absorb the substitution",
            above_ew,
        ),
    ]


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """The claim holds if P1 and P2 held; it holds only as stated here if CORE-MTL's ratio is
    above 1 (P1) but not above EW's by 2 SE (P2 not held: the ratio is not CORE-MTL's doing);
    it fails if CORE-MTL's ratio is not above 1 (or was not measured)."""
    held = {outcome.id: outcome.held for outcome in outcomes}
    verdict = (HOLDS if held["P2"] else QUALIFIED) if held["P1"] else FAILS
    core, difference = _core(summary), summary["core_minus_ew"]
    if verdict == FAILS or difference is None:
        headline = (
            headline_of("CORE-MTL's dZ_r / dZ_s (linear SCM)", estimate(core["ratios"]), "> 1")
            if core
            else Headline("CORE-MTL's dZ_r / dZ_s (not measured)", float("nan"))
        )
    else:
        mean, se = difference["mean"], difference["se"]
        half = None if se is None else critical_z() * se
        headline = Headline(
            "dZ_r / dZ_s, CORE-MTL minus EW (linear SCM)",
            mean,
            None if half is None else mean - half,
            None if half is None else mean + half,
            f"> {K_SE:g} SE for CORE-MTL's terms to matter",
        )
    linear = [e for e in summary["groups"].values() if e["variant"] == "linear"]
    if core is None:
        result = "CORE-MTL was not trained in this setting."
    else:
        ratio = core["ratio"]["mean"]
        side = "above" if ratio > 1 else "not above"
        lowest = min(linear, key=lambda e: e["ratio"]["mean"])
        result = (
            f"CORE-MTL's residual stream moves {ratio:.3g} times as much as its semantic stream "
            f"under residual substitution ({side} 1; paper: {PAPER_RATIO} on images)"
        )
        if difference is not None:
            result += (
                f", and EW's ratio is {summary['groups'][f'linear|{REFERENCE}']['ratio']['mean']:.3g}"
                f" (CORE-MTL - EW {difference['mean']:+.3g} +- {number_text(difference['se'])} SE, "
                + ("more" if held["P2"] else "not more")
                + f" than {K_SE:g} SE)"
            )
        result += (
            f". Every dual-stream method's ratio is at least {lowest['ratio']['mean']:.3g} "
            f"({lowest['method']}), so the residual stream absorbs the swap whatever the training."
            if lowest["ratio"]["mean"] > 1
            else f". The lowest ratio is {lowest['ratio']['mean']:.3g} ({lowest['method']})."
        )
    rows = [
        (e["method"], f"{e['ratio']['mean']:.3g} +- {e['ratio']['std']:.3g}", str(e["ratio"]["n"]))
        for e in linear
        if e["method"] in (CORE, REFERENCE)
    ]
    rows.append(("other methods: range of means", _range(linear), ""))
    table = Table(("method (linear SCM)", "dZ_r / dZ_s, mean +- sd", "seeds"), tuple(rows))
    details = (
        f"Predictions: {held_text(outcomes)}.",
        "dZ_r / dZ_s per method (mean +- sd over seeds): "
        + "; ".join(
            f"{e['variant']} {e['method']}: {e['ratio']['mean']:.3g} +- {e['ratio']['std']:.3g}"
            for e in summary["groups"].values()
        )
        + ".",
    )
    return Finding(
        verdict,
        headline,
        result,
        table,
        details,
        captions={
            "study6_substitution": "dZ_r / dZ_s under residual substitution per method and "
            "mixing (mean +- sd over seeds); dashed: the paper's 3.28 on images, dotted: 1."
        },
    )


def _range(entries: list[dict]) -> str:
    others = [e["ratio"]["mean"] for e in entries if e["method"] not in (CORE, REFERENCE)]
    return f"{min(others):.3g} to {max(others):.3g}" if others else "none"


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    entries = list(result["summary"]["groups"].values())
    variants = sorted({e["variant"] for e in entries})
    figure, axes = new_figure(1, 1, width=6.5)
    axis = axes[0, 0]
    palette = dict(zip(variants, colours(len(variants)), strict=True))
    methods = list(dict.fromkeys(e["method"] for e in entries))
    width = 0.8 / max(1, len(variants))
    for offset, variant in enumerate(variants):
        chosen = {e["method"]: e for e in entries if e["variant"] == variant}
        positions = [i + offset * width for i, m in enumerate(methods) if m in chosen]
        axis.bar(
            positions,
            [chosen[m]["ratio"]["mean"] for m in methods if m in chosen],
            width=width,
            yerr=[chosen[m]["ratio"]["std"] for m in methods if m in chosen],
            color=palette[variant],
            label=f"{variant} mixing",
            capsize=2,
        )
    axis.axhline(
        result["summary"]["paper_ratio"], color="k", ls="--", lw=0.8, label="paper (images): 3.28"
    )
    axis.axhline(1.0, color="grey", ls=":", lw=0.8)
    axis.set_xticks(
        np.arange(len(methods)) + width * (len(variants) - 1) / 2, methods, rotation=30, ha="right"
    )
    axis.set_ylabel("dZ_r / dZ_s (relative stream change, ratio)")
    axis.set_title("C5: stream change under residual substitution (mean +- std over seeds)")
    axis.legend()
    return save_figure(figure, directory, "study6_substitution")


STUDY = Study(
    number=6,
    name="Feature substitution dZ_r / dZ_s",
    statements=("C5",),
    claim="substituting an input's residual moves CORE-MTL's residual stream far more than its "
    "semantic stream (dZ_r / dZ_s above 1; 3.28 in the paper), and more than Equal Weighting's",
    expected=HOLDS,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
)
