"""The registered predictions of the regime map (study 1) and its finding: the verdict on the claim
"CORE-MTL has a smaller OOD gap than the best gradient balancer", per regime
(:mod:`.summary`), with one headline number, two sentences and one table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from experiments.study import HOLDS, Finding, Outcome, Prediction, Table, headline_of, held_text
from experiments.synthetic.regime_map import label_mediated
from experiments.synthetic.regime_map.comparisons import Row
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.summary import CLAIM_LENGTH, Regime, regime_from_dict

NAMED = 4
"""The regimes named in the result sentence (the details list every one)."""


def _share_score(model: str, config: Config):
    def score(summary: Mapping[str, Any]) -> Outcome:
        if model not in summary["held_share"]:
            return Outcome(None, f"model {model} not run in this setting")
        share, counts = summary["held_share"][model], summary["diagnosis"][model]
        return Outcome(
            share >= config.agree_share,
            f"held in {share:.0%} of {counts['rows']} rows; not held: {counts['contradicted']} "
            f"contradicted, {counts['off in size']} off in size, {counts['inconclusive']} "
            f"inconclusive, {counts['diverged']} diverged",
            {"share": share, **counts},
        )

    return score


def _control(summary: Mapping[str, Any]) -> Outcome:
    rows = [Row.from_dict(r) for r in summary["control"]]
    if not rows:
        return Outcome(None, "no cell with v = 1 and rho = 0 in this setting")
    worst = max(rows, key=lambda r: abs(r.difference.mean))
    agreeing = sum(bool(r.held) and r.prediction == "no difference" for r in rows)
    return Outcome(
        bool(summary["control_held"]),
        f"largest |CKA only - EW| {abs(worst.difference.mean):.2g} (SE {worst.difference.se:.2g}); "
        f"{agreeing} of {len(rows)} rows 'no difference' as predicted",
    )


def _regimes(summary: Mapping[str, Any]) -> Outcome:
    claim = summary["claim"]
    measured, predicted = set(claim["better"]), set(claim["predicted_better"])
    return Outcome(
        measured == predicted,
        f"reliably better in {len(measured)} of {claim['settings']} settings, predicted in "
        f"{len(predicted)}; {len(measured & predicted)} in both",
        {
            "only measured": sorted(measured - predicted),
            "only predicted": sorted(predicted - measured),
        },
    )


def predictions(config: Config) -> list[Prediction]:
    """The registered predictions; the per-comparison outcomes they read are computed by
    :func:`.registration.register` before any training on samples."""
    share = f"{config.agree_share:.0%}"
    return [
        Prediction(
            "P1",
            f"in at least {share} of model A's comparisons with the best balancer, the measured "
            f"{config.confidence:.0%} interval shows the registered outcome (better, worse or no "
            "difference)",
            "S3, S4, S6, S11 through the exact population dynamics of model A",
            _share_score("A", config),
        ),
        Prediction(
            "P2",
            "CKA only does not differ from EW at Sigma_S = Sigma_s without correlation, in every "
            "optimiser, run length and shift",
            "S6: CKA is blind to psi when Sigma_S = Sigma_s",
            _control,
        ),
        Prediction(
            "P3",
            f"in at least {share} of model B's comparisons, the registered outcome (model A's at "
            "psi_0 = pi/4) is measured",
            "an extrapolation from setting S to a free encoder, which S10 says need not hold",
            _share_score("B", config),
        ),
        Prediction(
            "P4",
            "CORE-MTL is reliably better than the best balancer in exactly the regimes where the "
            "population dynamics predict it (long runs, worst-case shift)",
            "S3, S4, S6, S11 (model A) and their extrapolation (model B)",
            _regimes,
        ),
        Prediction(
            "P5",
            "in every label-mediated regime of model A (long runs, worst-case shift), the "
            "label-conditional CKA's OOD gap minus the unconditional CKA's has the sign S13 "
            "registers per cell (smaller where the labels carry the correlation)",
            "S13: the CKA given the labels is zero at the true streams, the unconditional one is "
            "not",
            label_mediated.score,
        ),
    ]


WORDS = {
    "better": "better",
    "worse": "worse",
    "no difference": "not separated",
    "diverged": "diverged",
}
"""How a regime's measured outcome reads in the table."""


def _regime_text(regime: Regime) -> str:
    difference = regime.difference
    return f"{difference.mean:+.2g} +- {difference.se:.2g}, {WORDS[regime.measured]}"


def claim_regimes(summary: Mapping[str, Any]) -> list[Regime]:
    """The regimes the claim is judged on (long runs)."""
    return [
        regime
        for regime in map(regime_from_dict, summary["regimes"])
        if regime.length == CLAIM_LENGTH
    ]


def deciding(regimes: Sequence[Regime], verdict: str) -> Regime:
    """The regime whose number carries the verdict: the weakest of the regimes where CORE-MTL is
    better when the claim holds, otherwise the one closest to showing it better (the lowest
    upper end of the interval) among those where it is better, if any."""
    better = [r for r in regimes if r.measured == "better"]
    if verdict == HOLDS:
        return max(better, key=lambda r: r.high)
    finite = [r for r in (better or regimes) if r.difference.n > 1] or list(regimes)
    return min(finite, key=lambda r: r.high)


def _names(labels: Sequence[str]) -> str:
    named = "; ".join(labels[:NAMED])
    return named + (f"; and {len(labels) - NAMED} more" if len(labels) > NAMED else "")


def result_text(summary: Mapping[str, Any]) -> str:
    claim = summary["claim"]
    better, total = claim["better"], claim["settings"]
    if not better:
        first = (
            f"CORE-MTL's OOD gap is not reliably smaller than the best balancer's in any of the "
            f"{total} (model, optimiser, regime) settings."
        )
    elif len(better) == total:
        first = f"CORE-MTL's OOD gap is reliably smaller than the best balancer's in all {total} settings."
    else:
        first = (
            f"CORE-MTL's OOD gap is reliably smaller than the best balancer's in {len(better)} of "
            f"{total} (model, optimiser, regime) settings ({_names(better)}), and not elsewhere."
        )
    shares = summary["held_share"]
    second = "The registered per-comparison predictions held in " + " and ".join(
        f"{share:.0%} of model {model}'s rows ({summary['seeds'][model]} paired seeds)"
        for model, share in shares.items()
    )
    return f"{first} {second}."


def regime_table(regimes: Sequence[Regime]) -> Table:
    """Per regime, CORE-MTL minus the best balancer for every model and optimiser (mean +- SE,
    measured outcome, registered outcome)."""
    settings = list(dict.fromkeys((r.model, r.optimiser) for r in regimes))
    names = list(dict.fromkeys(r.regime for r in regimes))
    found = {(r.model, r.optimiser, r.regime): r for r in regimes}
    rows = []
    for name in names:
        cells = []
        for model, optimiser in settings:
            regime = found.get((model, optimiser, name))
            cells.append(
                "" if regime is None else f"{_regime_text(regime)}; predicted {regime.predicted}"
            )
        rows.append((name, *cells))
    columns = ("regime", *(f"{model} {optimiser}" for model, optimiser in settings))
    return Table(columns, tuple(rows))


def details(summary: Mapping[str, Any], outcomes: Sequence[Outcome]) -> tuple[str, ...]:
    claim = summary["claim"]
    lines = [
        f"- Claim, per model, optimiser and regime (long runs, worst-case shift): reliably better "
        f"in {len(claim['better'])} of {claim['settings']} settings: "
        f"{'; '.join(claim['better']) or 'none'}.",
        f"- The registered predictions imply *{claim['implied']}*: better predicted in "
        f"{'; '.join(claim['predicted_better']) or 'none'}.",
    ]
    for model, counts in summary["diagnosis"].items():
        needed, inconclusive = (
            counts["median_seeds_needed"],
            counts["median_seeds_needed_inconclusive"],
        )
        lines.append(
            f"- Model {model}, {counts['seeds']} paired seeds per cell: {counts['held']} of "
            f"{counts['rows']} held, {counts['contradicted']} contradicted (interval outside the "
            f"predicted region), {counts['off in size']} off in size (predicted mean outside the "
            f"interval), {counts['inconclusive']} inconclusive, {counts['diverged']} with a "
            "diverged run"
            + (
                f"; a better/worse test needs a median of {needed:.0f} seeds at the measured "
                f"spread ({inconclusive:.0f} for the inconclusive ones), and "
                f"{counts['share_powered']:.0%} of them need at most {counts['seeds']}"
                if needed is not None and inconclusive is not None
                else ""
            )
            + "."
        )
    lines += label_mediated.details(summary)
    lines.append(f"- Predictions: {held_text(outcomes)}.")
    return tuple(lines)


def conclude(config: Config, summary: Mapping[str, Any], outcomes: list[Outcome]) -> Finding:
    """The verdict on the claim (:func:`.summary.verdict_of`), the regime that carries it as the
    headline, and the table of regimes."""
    verdict = summary["claim"]["verdict"]
    regimes = claim_regimes(summary)
    chosen = deciding(regimes, verdict)
    headline = headline_of(
        f"gap(CORE-MTL) - gap(best), {chosen.model} {chosen.optimiser}, {chosen.regime}",
        chosen.difference,
        f"< 0 in {len(summary['claim']['better'])} of {len(regimes)} regimes",
        config.confidence,
    )
    return Finding(
        verdict,
        headline,
        result_text(summary),
        regime_table(regimes),
        details(summary, outcomes),
        captions={
            "study1_regime_map": "CORE-MTL minus the best balancer (validation-selected) per "
            "cell, worst-case shift; mark: held / x contradicted / ~ off in size / ? inconclusive "
            "/ ! diverged, then the predicted sign (- better, + worse, 0 none)."
        },
    )
