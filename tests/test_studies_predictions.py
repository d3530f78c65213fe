"""Studies 2-6: predictions are registered before anything is measured, each can come out both
ways, and the verdict follows the rule stated in ``conclude``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from experiments.study import FAILS, HOLDS, MEASURED, QUALIFIED, Finding
from experiments.synthetic import study
from proofs.headline import HEADLINE_LIMIT


class Stop(Exception):
    """Raised by the spy in place of measuring."""


@pytest.mark.parametrize("number", [2, 3, 4, 5, 6])
def test_predictions_are_registered_before_measuring(number):
    chosen = study(number)
    seen = {}

    def spy(context):
        seen.update(context.registration)
        raise Stop

    with pytest.raises(Stop):
        replace(chosen, measure=spy).run(chosen.configs["smoke"])
    identifiers = [p.id for p in chosen.predictions(chosen.configs["smoke"])]
    assert [p["id"] for p in seen["predictions"]] == identifiers
    assert seen["registered_at"] <= seen["measurement_started_at"]


def outcomes_of(number: int, summary: dict) -> list:
    chosen = study(number)
    config = chosen.configs["smoke"]
    return [replace(p.score(summary), id=p.id) for p in chosen.predictions(config)]


def conclude(number: int, summary: dict) -> tuple[dict, Finding]:
    chosen = study(number)
    outcomes = outcomes_of(number, summary)
    finding = chosen.conclude(chosen.configs["smoke"], summary, outcomes)
    assert len(finding.headline.text()) <= HEADLINE_LIMIT
    assert not finding.headline.text().endswith("…")
    assert "True" not in finding.result and "False" not in finding.result
    return {o.id: o.held for o in outcomes}, finding


def bound_summary(share: float, ratio: float) -> dict:
    return {
        "rows": [{"holds": True}, {"holds": share == 1.0}],
        "cases": 2,
        "cases_prediction": 3,
        "share_holds": share,
        "share_holds_without_c_cap": share,
        "share_holds_prediction_lipschitz": 1.0,
        "largest_ratio": ratio,
        "largest_ratio_prediction": 0.5,
        "per_method_share": {"ew": share},
        "median_c_cap": 0.01,
        "median_slack": 12.0,
    }


def test_study2_holds_when_the_bound_holds_in_every_case_and_fails_otherwise():
    held, finding = conclude(2, bound_summary(1.0, 0.4))
    assert held == {"P1": True, "P2": True} and finding.verdict == HOLDS
    assert finding.headline.value == 0.4 and "holds in all 2" in finding.result
    held, finding = conclude(2, bound_summary(0.5, 1.3))
    assert held["P1"] is False and finding.verdict == FAILS
    assert "fails in 1 of 2" in finding.result


def alignment_summary(change: float, share: float) -> dict:
    return {
        "points": 10,
        "envelope": {
            "c": 0.1,
            "delta": 0.05,
            "delta_at_c1": 0.0 if share == 1.0 else 0.04,
            "share_below_cka": share,
            "delta_at_c0": 0.1,
        },
        "correlation": 0.3,
        "by_weight": {"0.0": {"cka": 0.8, "cos2": 0.01, "points": 5}},
        "cka_change": {"from": 0.0, "to": 1.0, "mean": change, "se": 0.01, "n": 3, "sd": 0.017},
    }


def test_study3_predictions_come_out_both_ways_and_the_study_stays_a_measurement():
    held, finding = conclude(3, alignment_summary(-0.5, 1.0))
    assert held == {"P1": True, "P2": True} and finding.verdict == MEASURED
    held, finding = conclude(3, alignment_summary(-0.01, 0.8))
    assert held == {"P1": False, "P2": False} and finding.verdict == MEASURED
    assert finding.headline.value == 0.04


def balancer_summary(converged: bool, agree: bool, profile: bool) -> dict:
    band = {"mean": 0.3, "std": 0.1, "n": 3}
    return {
        "runs": 9,
        "heads_converged": 9 if converged else 8,
        "heads_agree": 9 if agree else 7,
        "heads_all_converged": converged,
        "heads_all_agree_with_closed_form": agree,
        "head_quantile": 3.6,
        "largest_excess": 2.0 if agree else 8.0,
        "slowest": {"balancer": "ew", "steps": 20},
        "heads_spread": [0.0, 1e-4],
        "profile_runs": 18,
        "profile_holding": 18 if profile else 17,
        "profile_all_hold": profile,
        "largest_profile_ratio": 0.5 if profile else 1.5,
        "profile_by_v": {
            key: {"largest_drift": 0.1, "largest_ratio": 0.5} for key in ("0.0", "0.3")
        },
        "joint_summary": {"ew|0.0": {"final_psi": band, "gap": band}},
        "final_psi_by_v": {"0.0": band, "0.3": band},
        "gap_by_v": {"0.0": band, "0.3": band},
    }


@pytest.mark.parametrize(
    "converged, agree, profile, failing",
    [
        (True, True, True, None),
        (False, True, True, "P1"),
        (True, False, True, "P2"),
        (True, True, False, "P3"),
    ],
)
def test_study4_holds_only_when_heads_and_profile_drift_are_as_s3_and_s4_say(
    converged, agree, profile, failing
):
    held, finding = conclude(4, balancer_summary(converged, agree, profile))
    assert [key for key, value in held.items() if not value] == ([failing] if failing else [])
    assert finding.verdict == (HOLDS if failing is None else FAILS)
    if failing == "P3":
        assert finding.headline.value == 1.5


def cka_summary(blind: bool, escaped_objective: str | None) -> dict:
    escaped = (
        [{"objective": escaped_objective, "v": 0.05, "psi_start": 1.2, "seed": 0, "final_psi": 1.4}]
        if escaped_objective
        else []
    )
    band = {"mean": 0.1, "std": 0.05, "n": 3}
    return {
        "cka_alone_drift": {"1.0": {"mean": 0.05 if blind else 0.5}, "0.25": {"mean": 0.35}},
        "cka_alone_drift_runs": {"1.0": [0.0, 0.1, 0.05], "0.25": [0.3, 0.35, 0.4]},
        "cka_alone_swapped_end": {"mean": 1.55, "std": 0.02, "n": 3},
        "cka_alone_swapped_runs": [1.53, 1.55, 1.57],
        "task_objectives_final": band,
        "task_runs": 12,
        "task_runs_nearer_zero": 12 - len(escaped),
        "task_runs_at_isotropic": 6,
        "task_runs_at_isotropic_nearer_zero": 6,
        "escaped": escaped,
        "final_by_objective": {"cka": band, "task": band},
    }


def test_study5_is_qualified_by_s6_and_fails_when_its_account_does_not_hold():
    held, finding = conclude(5, cka_summary(True, "cka+task"))
    assert all(held.values()) and finding.verdict == QUALIFIED
    assert finding.headline.value == pytest.approx(1.55)
    held, finding = conclude(5, cka_summary(False, None))
    assert held["P1"] is False and finding.verdict == FAILS
    held, finding = conclude(5, cka_summary(True, "task"))
    assert held["P3"] is False and finding.verdict == FAILS


def substitution_summary(core: float, difference: float) -> dict:
    def group(method: str, mean: float) -> dict:
        ratios = [mean - 0.1, mean, mean + 0.1]
        return {
            "variant": "linear",
            "method": method,
            "ratios": ratios,
            "ratio": {"mean": mean, "std": 0.1, "n": 3},
            "ratio_se": 0.06,
        }

    groups = {
        "linear|core-mtl": group("core-mtl", core),
        "linear|ew": group("ew", core - difference),
        "linear|mgda": group("mgda", 2.0),
    }
    return {
        "groups": groups,
        "paper_ratio": 3.28,
        "core_minus_ew": {"mean": difference, "se": 0.1},
    }


@pytest.mark.parametrize(
    "core, difference, verdict",
    [(4.0, 1.0, HOLDS), (4.0, 0.1, QUALIFIED), (0.8, 0.5, FAILS)],
)
def test_study6_verdict_follows_the_ratio_and_its_separation_from_ew(core, difference, verdict):
    held, finding = conclude(6, substitution_summary(core, difference))
    assert held["P1"] is (core > 1) and held["P2"] is (difference > 0.2)
    assert finding.verdict == verdict
