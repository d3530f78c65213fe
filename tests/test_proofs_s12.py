"""S12 (MT-CRL's claim): the certificate through ``coremtl prove``, property tests of its precise
statement over random SCMs, and checks that a wrong formula or a wrong symbolic claim fails."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coremtl_cli.main import main
from proofs import registry
from proofs import s12_mtcrl_sharing as s12
from proofs.statement import Verdict
from scm import multitask as mt


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s12")
    status = main(["prove", "--only", "S12", "--output", str(folder)])
    payload = json.loads((folder / "verdicts.json").read_text())
    return status, next(c for c in payload["certificates"] if c["statement"] == "S12")


def test_prove_lists_s12_with_its_expected_verdict(certificate):
    status, found = certificate
    assert status == 0
    assert found["verdict"] == Verdict.HOLDS_AS_STATED.value == found["expected"]
    assert all(step["passed"] for step in found["derivation"])
    assert all(check["passed"] for check in found["checks"])
    assert "S12" in registry.STATEMENTS


def test_the_counterexample_holds_the_three_failures_of_the_unqualified_claim(certificate):
    counterexample = certificate[1]["counterexample"]
    wide = counterexample["width_at_least_tasks"]
    assert wide["width"] >= wide["tasks"] and abs(wide["gap"]) <= 1e-9
    strengthening = counterexample["strengthening_correlation"]
    assert strengthening["rho_target"] > strengthening["rho_source"] > 0
    assert strengthening["multi_task_gap"] < strengthening["single_task_gap"] == 0
    confounded = counterexample["confounder_sharing_helps"]
    assert confounded["multi_task_gap"] < confounded["single_task_gap"]
    assert confounded["multi_task_off_block_weight"] < confounded["single_task_off_block_weight"]


def test_monte_carlo_checks_state_their_standard_error_tolerance(certificate):
    monte_carlo = [c for c in certificate[1]["checks"] if c["name"].startswith("Monte Carlo")]
    assert len(monte_carlo) == 2
    assert all("standard errors" in c["basis"] and c["tolerance"] > 0 for c in monte_carlo)


SEEDS = st.integers(0, 2**31 - 1)


@settings(max_examples=20, deadline=None)
@given(
    seed=SEEDS,
    tasks=st.integers(2, 5),
    block=st.integers(1, 2),
    width=st.integers(1, 4),
    correlation=st.just(0.0) | st.floats(0.05, 0.95) | st.floats(-0.2, -0.05),
    target=st.floats(-0.2, 0.95),
)
def test_cross_weight_iff_tau_positive_and_gap_is_one_minus_t_times_tau(
    seed, tasks, block, width, correlation, target
):
    assume(width < tasks)
    assume(min(correlation, target) >= -0.9 / (tasks - 1))
    model = mt.random_multitask_scm(tasks, block, correlation, target, seed=seed)
    numbers = s12.sharing_quantities(model, width)
    assume(numbers["optimum"].unique)
    assert numbers["tau"] >= -1e-9
    assert numbers["target_excess"] >= -1e-9
    assert (numbers["cross_weight"] > 1e-6) == (numbers["tau"] > 1e-9)
    assert (numbers["cross_weight"] > 1e-6) != numbers["coordinate"]
    if correlation != 0:
        ratio = target / correlation
        assert numbers["gap"] == pytest.approx((1 - ratio) * numbers["tau"], abs=1e-8)


@settings(max_examples=20, deadline=None)
@given(
    beta1=st.floats(0.2, 2.0),
    beta2=st.floats(-2.0, -0.2) | st.floats(0.2, 2.0),
    rho_s=st.floats(-0.95, 0.95),
    rho_t=st.floats(-0.95, 0.95),
)
def test_two_task_formulas_match_the_reduced_rank_solution(beta1, beta2, rho_s, rho_t):
    assume(abs(rho_s) > 1e-3)
    model = mt.two_task_scm((beta1, beta2), rho_s, rho_t)
    optimum = mt.multitask_predictors(model, 1)
    assume(optimum.unique)
    formulas = s12.two_task_formulas(beta1, beta2, rho_s, rho_t)
    assert optimum.predictors[0, 1] == pytest.approx(formulas["cross_weight"], abs=1e-9)
    assert mt.ood_gaps(model, optimum.predictors).sum() == pytest.approx(formulas["gap"], abs=1e-9)
    assert np.sign(formulas["gap"]) == np.sign((rho_s - rho_t) * rho_s) or formulas["gap"] == 0


def test_a_wrong_two_task_formula_makes_the_checks_fail(monkeypatch):
    original = s12.two_task_formulas

    def wrong(*arguments):
        right = original(*arguments)
        return {**right, "gap": -right["gap"]}

    monkeypatch.setattr(s12, "two_task_formulas", wrong)
    evidence = s12.measure(np.random.default_rng(0))
    failed = [check.name for check in evidence.checks if not check.passed]
    assert len(failed) == 4 and all("G = (d)'s formula" in name for name in failed)


def test_the_symbolic_reduction_rejects_a_wrong_gap():
    b1, b2, rho, root = sp.symbols("beta_1 beta_2 rho D", positive=True)
    square = (b1**2 - b2**2) ** 2 + 4 * rho**2 * b1**2 * b2**2
    tau = (root - (b1**2 - b2**2)) / (2 * rho * b1 * b2)
    assert s12._reduces_to_zero(tau / (1 + tau**2) - rho * b1 * b2 / root, root, square)
    assert not s12._reduces_to_zero(tau / (1 + tau**2) - rho * b1 / root, root, square)
