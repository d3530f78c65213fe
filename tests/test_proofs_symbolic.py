"""Every symbolic certificate derives, and the certificate machinery can fail."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp

from proofs.registry import STATEMENTS
from proofs.s1_exact_risk import SymbolicSetting
from proofs.statement import Evidence, NumericCheck, Verdict
from proofs.symbolic import (
    RandomGroup,
    expectation,
    identity_step,
    sum_of_squares_step,
    symmetric_matrix,
    vector,
)


@pytest.mark.parametrize("statement_id", sorted(STATEMENTS))
def test_every_symbolic_step_of_every_statement_derives(statement_id):
    steps = STATEMENTS[statement_id].derive()
    failed = [step.name for step in steps if not step.passed]
    assert steps
    assert failed == []


def test_a_wrong_risk_formula_is_not_certified():
    setting = SymbolicSetting.build(2)
    mean, cov = vector("mu", 2, real=True), symmetric_matrix("Sigma_S", 2)
    wrong = setting.stated_risk(mean, cov) - setting.noise**2
    assert not identity_step("missing noise", setting.risk(mean, cov), wrong).passed


def test_a_false_inequality_has_no_sum_of_squares_certificate():
    x, y = sp.symbols("x y", real=True)
    assert sum_of_squares_step("x^2 >= y^2", x**2, y**2, [x - y]).passed is False
    assert sum_of_squares_step("x^2 + y^2 >= 2xy", x**2 + y**2, 2 * x * y, [x - y]).passed


def test_expectation_refuses_moments_beyond_the_second():
    u = sp.Symbol("u", real=True)
    group = RandomGroup.from_covariance([u], sp.Matrix([0]), sp.Matrix([[1]]))
    with pytest.raises(ValueError, match="moments beyond the second"):
        expectation(u**3, [group])


def test_expectation_factorises_over_independent_groups():
    u, v = sp.symbols("u v", real=True)
    m, t = sp.symbols("m t", real=True)
    groups = [
        RandomGroup.from_covariance([u], sp.Matrix([m]), sp.Matrix([[t**2]])),
        RandomGroup.from_covariance([v], sp.Matrix([0]), sp.Matrix([[1]])),
    ]
    assert sp.expand(expectation((u + v) ** 2, groups) - (m**2 + t**2 + 1)) == 0


def test_a_statement_with_a_failing_step_gets_the_verdict_fails():
    broken = replace(
        STATEMENTS["S7"],
        derive=lambda: [identity_step("1 = 2", sp.Integer(1), sp.Integer(2))],
        measure=lambda rng: Evidence(),
    )
    certificate = broken.certify(0)
    assert certificate.verdict is Verdict.FAILS
    assert certificate.counterexample["failed_steps"][0]["name"] == "1 = 2"
    assert not certificate.matches


def test_a_passing_statement_with_a_counterexample_holds_only_as_stated():
    qualified = replace(
        STATEMENTS["S7"],
        derive=lambda: [],
        measure=lambda rng: Evidence(
            checks=[NumericCheck("exact", 1.0, 1.0, 0.0, "exact")],
            counterexample={"k": 1},
        ),
    )
    assert qualified.certify(0).verdict is Verdict.HOLDS_AS_STATED


@pytest.mark.parametrize(
    ("relation", "value", "reference", "passed"),
    [
        ("==", 1.0, 1.0 + 1e-12, True),
        ("<=", 1.1, 1.0, False),
        (">=", 1.1, 1.0, True),
        ("==", float("nan"), 0.0, False),
    ],
)
def test_numeric_check_relations(relation, value, reference, passed):
    check = NumericCheck("c", value, reference, 1e-9, "test", relation=relation)
    assert check.passed is passed
    assert np.isfinite(check.error) or not passed
