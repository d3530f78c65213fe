"""S13 (label-conditional penalty): the certificate, its counterexamples, the deliberately wrong
wording, properties of :mod:`scm.label_correlation` over random parameters, Monte Carlo with
standard-error tolerances, torch-friendliness, and bad input.

Closed forms compared with closed forms use ``FLOAT64_ROUNDOFF``; finite differences the
tolerance of :mod:`proofs.s13_label_conditional`.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coremtl_cli.main import main
from proofs import registry
from proofs import s13_label_conditional as s13
from proofs import s13_predictions as predictions
from proofs.montecarlo import FLOAT64_ROUNDOFF, Z_SCORE, mean_and_standard_error
from proofs.statement import Verdict
from scm import InvalidParameterError
from scm import correlation as s11_forms
from scm import label_correlation as lc

PROPERTY = settings(max_examples=30, deadline=None)
variances = st.floats(0.05, 5.0)
loadings = st.floats(-2.0, 2.0)
betas = st.floats(0.3, 2.0) | st.floats(-2.0, -0.3)
noises = st.floats(0.2, 1.5)
correlations = st.floats(-0.8, 0.8)
angles = st.floats(-math.pi / 2, math.pi / 2)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s13")
    status = main(["prove", "--only", "S13", "--output", str(folder)])
    payload = json.loads((folder / "verdicts.json").read_text())
    return status, next(c for c in payload["certificates"] if c["statement"] == "S13")


# --------------------------------------------------------------------------- certificate


def test_prove_lists_s13_with_its_expected_verdict(certificate):
    status, found = certificate
    assert status == 0
    assert found["verdict"] == Verdict.HOLDS_AS_STATED.value == found["expected"]
    assert all(step["passed"] for step in found["derivation"])
    assert all(check["passed"] for check in found["checks"])
    assert list(registry.STATEMENTS)[-1] == "S13"


def test_s13_counterexample_holds_each_qualifier(certificate):
    counterexample = certificate[1]["counterexample"]
    correlated = counterexample["correlation_not_mediated"]
    assert correlated["conditional_cka_at_0"] > 0.05
    assert correlated["conditional_zero"] < -0.1 and correlated["conditional_endpoint_lambda1"] < 0
    assert correlated["target_risk_there"] > correlated["target_risk_at_0"]
    assert counterexample["blind_v_equals_tau"]["max_conditional_cka"] <= FLOAT64_ROUNDOFF
    explained = counterexample["label_explains_semantic_stream"]
    assert (
        explained["conditional_cka_off_zeros"] == [1.0] and explained["conditional_cka_at_0"] == 0
    )
    swap = counterexample["swap_preferred_by_task_loss"]
    assert swap["risk_at_swap"] < swap["risk_at_0"] and swap["conditional_cka_at_swap"] <= 1e-12


def test_monte_carlo_checks_state_their_standard_error_tolerance(certificate):
    monte_carlo = [c for c in certificate[1]["checks"] if "Monte Carlo" in c["name"]]
    assert len(monte_carlo) == 7
    assert all("standard errors" in c["basis"] and c["tolerance"] > 0 for c in monte_carlo)


def test_the_wrong_wording_fails_with_the_moved_zeros():
    """'The conditional penalty is zero only at psi = 0 for every source correlation': with a
    correlation not carried by the label each zero is away from 0, so the verdict is fails."""
    wrong = s13.UNQUALIFIED_S13.certify(0)
    assert wrong.verdict is Verdict.FAILS and wrong.matches
    failed = wrong.counterexample["failed_checks"]
    assert len(failed) == 3 and all(abs(check["value"]) > 0.05 for check in failed)


def test_a_wrong_conditional_covariance_is_not_certified():
    """With the label's copy left in (the unconditional cross term a beta), the S13 step fails."""
    import sympy as sp

    from proofs.symbolic import matrix_identity_step

    a, beta, q = sp.symbols("a beta q", real=True)
    tau = sp.Symbol("tau", positive=True)
    v = sp.Symbol("v", positive=True)
    stated = sp.Matrix([[tau, q * tau], [q * tau, v]])
    wrong = sp.Matrix([[tau, a * beta + q * tau], [a * beta + q * tau, v]])
    assert not matrix_identity_step("wrong", wrong, stated).passed


# --------------------------------------------------------------------------- worked example


def test_worked_example_numbers():
    """v = 1, a = 1, beta = 1, sigma = 0.5: tau = 0.2, CKA(0) = 1 / 2.25, psi* = atan(0.25), the
    conditional zero at 0 and the unconditional one at atan(2 / (1 - 2.25)) / 2."""
    model = predictions.example()
    assert model.tau == pytest.approx(0.2)
    assert float(model.cka(0.0)) == pytest.approx(1 / 2.25)
    assert float(model.cka(0.0, conditional=True)) == 0.0
    assert model.shortcut_angle() == pytest.approx(math.atan(0.25))
    assert model.cka_zero_angle() == pytest.approx(0.5 * math.atan(2 / (1 - 2.25)))
    outcome = lc.predicted_outcome(model, 0.3, 1.0, 1.0)
    assert outcome["none"]["psi"] == pytest.approx(math.atan(0.25), abs=1e-9)
    assert 0 < outcome["conditional"]["psi"] < outcome["none"]["psi"]
    risks = {name: row["target_risk"] for name, row in outcome.items()}
    assert risks["conditional"] < risks["unconditional"] < risks["none"]


def test_without_loading_the_conditional_blind_point_moves_from_one_to_tau():
    """a = 0 is setting S: the unconditional CKA is S6's (blind at v = 1); the conditional one is
    blind at v = tau instead."""
    for v in (0.1, 1.0, 3.0):
        model = predictions.example(v=v, loading=0.0)
        psi = np.linspace(-1.5, 1.5, 31)
        np.testing.assert_allclose(model.cka(psi), s11_forms.scalar_cka(psi, v), atol=1e-12)
    assert not predictions.example(v=1.0, loading=0.0).conditional_blind()
    assert predictions.example(v=0.2, loading=0.0).conditional_blind()


# -------------------------------------------------------------------------------- properties


@PROPERTY
@given(v=variances, a=loadings, beta=betas, sigma=noises, rho=correlations, psi=angles)
def test_scalar_forms_equal_the_schur_complement(v, a, beta, sigma, rho, psi):
    model = lc.ScalarLabelSCM(v, a, beta, sigma, rho)
    joint, conditional = s13._general_of(model)
    np.testing.assert_allclose(joint, model.source_covariance(), atol=1e-12)
    assert float(model.cka(psi)) == pytest.approx(lc.rotation_cka(joint[:2, :2], psi), abs=1e-12)
    assert float(model.cka(psi, True)) == pytest.approx(
        lc.rotation_cka(conditional, psi), abs=1e-10
    )


@PROPERTY
@given(v=variances, a=loadings, beta=betas, sigma=noises, rho=correlations)
def test_conditional_covariance_is_free_of_the_loading(v, a, beta, sigma, rho):
    loaded = lc.ScalarLabelSCM(v, a, beta, sigma, rho).pair(conditional=True)
    unloaded = lc.ScalarLabelSCM(v, 0.0, beta, sigma, rho).pair(conditional=True)
    np.testing.assert_allclose(loaded, unloaded, atol=1e-12)


@PROPERTY
@given(v=variances, a=loadings, beta=betas, sigma=noises, label=st.sampled_from(lc.LABEL_KINDS))
def test_unconditional_cka_at_zero_is_positive_and_conditional_is_zero(v, a, beta, sigma, label):
    assume(abs(a) > 0.05)
    model = lc.ScalarLabelSCM(v, a, beta, sigma, label=label)
    covariance, variance = model.label_covariance, model.label_variance
    stated = (a * covariance) ** 2 / (a * a * variance + v)
    assert float(model.cka(0.0)) == pytest.approx(stated, rel=1e-12) and stated > 0
    assert float(model.cka(0.0, conditional=True)) == 0.0
    assert model.cka_zero_angle(conditional=True) == 0.0


@PROPERTY
@given(v=variances, a=loadings, beta=betas, sigma=noises, psi=st.floats(0.01, math.pi / 2 - 0.01))
def test_conditional_cka_identifies_psi_unless_v_equals_tau(v, a, beta, sigma, psi):
    model = lc.ScalarLabelSCM(v, a, beta, sigma)
    value = float(model.cka(psi, conditional=True))
    if abs(v - model.tau) > 1e-3:
        assert value > 0.0
    blind = lc.ScalarLabelSCM(model.tau, a, beta, sigma)
    assert float(blind.cka(psi, conditional=True)) <= FLOAT64_ROUNDOFF


@PROPERTY
@given(v=variances, a=loadings, beta=betas, sigma=noises, rho=correlations, psi=angles)
def test_slopes_match_central_differences(v, a, beta, sigma, rho, psi):
    model = lc.ScalarLabelSCM(v, a, beta, sigma, rho)
    h = s13.FINITE_DIFFERENCE_STEP
    for closed, function in (
        (model.profile_slope, model.profile_risk),
        (lambda x: model.cka_slope(x, True), lambda x: model.cka(x, True)),
        (model.cka_slope, model.cka),
    ):
        numeric = (function(psi + h) - function(psi - h)) / (2 * h)
        assert float(closed(psi)) == pytest.approx(
            float(numeric), abs=s13.FINITE_DIFFERENCE_TOLERANCE
        )


@PROPERTY
@given(v=variances, a=loadings, beta=betas, sigma=noises, rho=correlations)
def test_task_loss_slope_at_zero_is_minus_two_a_beta_sigma_squared(v, a, beta, sigma, rho):
    model = lc.ScalarLabelSCM(v, a, beta, sigma, rho)
    assert float(model.profile_slope(0.0)) == pytest.approx(-2 * a * beta * sigma**2, abs=1e-12)


@PROPERTY
@given(v=variances, a=loadings, beta=betas, sigma=noises, lam=st.floats(0.05, 20.0))
def test_conditional_minimiser_lies_between_zero_and_the_shortcut_angle(v, a, beta, sigma, lam):
    model = lc.ScalarLabelSCM(v, a, beta, sigma)
    shortcut = model.shortcut_angle()
    assume(abs(v - model.tau) > 0.05 and 0.02 < abs(shortcut) < math.pi / 4)
    found = lc.penalised_endpoint(model, 0.0, lam, "conditional")
    assert min(0.0, shortcut) < found < max(0.0, shortcut)
    assert abs(float(model.objective_slope(found, lam, "conditional"))) <= 1e-6 * (1 + lam)
    assert lc.penalised_endpoint(model, 0.0, 0.0, "none") == pytest.approx(shortcut, abs=1e-9)


@PROPERTY
@given(v=variances, beta=betas, sigma=noises, rho=st.floats(0.1, 0.8) | st.floats(-0.8, -0.1))
def test_a_correlation_not_carried_by_the_label_moves_the_conditional_zero(v, beta, sigma, rho):
    model = lc.ScalarLabelSCM(v, 1.0, beta, sigma, rho)
    tau, q = model.tau, model.q
    assert float(model.cka(0.0, True)) == pytest.approx(q * q * tau / (v - q * q * (1 - tau)))
    assert abs(model.cka_zero_angle(conditional=True)) > 0.0


# ------------------------------------------------------------------------------ Monte Carlo


@pytest.mark.parametrize("label", lc.LABEL_KINDS)
def test_sampled_label_moments_match_the_closed_forms(label):
    model = predictions.example(label=label, v=0.5)
    draws = s13.sample_label_scm(model, 100_000, np.random.default_rng(3))
    for key, stated in (("z_s", model.label_covariance), ("z_r", model.source_covariance()[1, 2])):
        products = (draws[key] - draws[key].mean()) * (draws["y"] - draws["y"].mean())
        mean, error = mean_and_standard_error(products)
        assert abs(mean - stated) <= Z_SCORE * error + 2.0 / 100_000
    mean, error = mean_and_standard_error((draws["y"] - draws["y"].mean()) ** 2)
    assert abs(mean - model.label_variance) <= Z_SCORE * error + 2.0 / 100_000


# ------------------------------------------------------------------------------ torch, signs


def test_closed_forms_take_a_torch_angle_and_give_its_gradient():
    model = predictions.example()
    psi = torch.tensor([0.1, 0.4], dtype=torch.float64, requires_grad=True)
    model.cka(psi, conditional=True).sum().backward()
    expected = model.cka_slope(np.array([0.1, 0.4]), conditional=True)
    np.testing.assert_allclose(psi.grad.numpy(), expected, rtol=1e-10)
    for method in (model.profile_risk, model.head, model.cka):
        assert torch.is_tensor(method(psi.detach()))
    assert torch.is_tensor(model.ood_gap(psi.detach(), 1.0))


def test_predicted_signs_of_the_worked_example():
    """From psi_0 = 0.3 at lambda = 1, shift 1: the conditional penalty ends with the smaller
    target risk than both EW and the unconditional penalty; with no loading there is nothing
    to tell apart."""
    model = predictions.example()
    for other in ("none", "unconditional"):
        sign = lc.predicted_gap_difference_sign(
            model, 0.3, 1.0, 1.0, "conditional", other, quantity="target_risk"
        )
        assert sign == -1
    assert lc.predicted_gap_difference_sign(model, 0.3, 1.0, 1.0, "conditional", "none") == -1
    unloaded = predictions.example(loading=0.0)
    assert lc.predicted_gap_difference_sign(unloaded, 0.3, 1.0, 1.0, "conditional", "none") == 0


# -------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lc.ScalarLabelSCM(-1.0, 1.0), "v: expected a finite non-negative"),
        (lambda: lc.ScalarLabelSCM(1.0, 1.0, rho=1.0), "rho: expected |rho| < 1"),
        (lambda: lc.ScalarLabelSCM(1.0, 1.0, label="ordinal"), "label: expected one of"),
        (lambda: lc.ScalarLabelSCM(1.0, 1.0, beta=0.0, noise_std=0.0), "beta, noise_std"),
        (lambda: lc.ScalarLabelSCM(0.0, 0.0), "v: expected v > 0 or a non-zero loading"),
        (lambda: predictions.example().cka(float("nan")), "psi: expected finite values"),
        (
            lambda: predictions.example(label="binary").profile_risk(0.3),
            "label: the risks and gaps",
        ),
        (lambda: predictions.example().ood_gap(0.3, -2.0), "shift: expected a finite number in"),
        (
            lambda: lc.penalised_endpoint(predictions.example(), 0.0, -1.0, "conditional"),
            "lam: expected",
        ),
        (
            lambda: lc.penalised_endpoint(predictions.example(), 0.0, 1.0, "partial"),
            "penalty: expected",
        ),
        (
            lambda: lc.predicted_gap_difference_sign(
                predictions.example(), 0.3, 1.0, 1.0, quantity="x"
            ),
            "quantity: expected",
        ),
        (
            lambda: lc.label_joint_covariance(
                np.eye(2), np.eye(2), np.ones((2, 3)), np.ones((2, 2)), [1, 1]
            ),
            "loading: expected shape (2, 2)",
        ),
        (
            lambda: lc.label_joint_covariance(
                np.eye(2), np.eye(2), np.ones((2, 1)), np.ones((1, 3)), [1]
            ),
            "beta: expected shape (K, 2)",
        ),
        (
            lambda: lc.label_joint_covariance(np.eye(1), np.eye(1), [[1.0]], [[1.0]], [-1.0]),
            "noise_std: expected 1 non-negative",
        ),
        (lambda: lc.conditional_covariance(np.eye(2), 1), "joint: expected more than 2 rows"),
    ],
)
def test_bad_input_names_the_parameter(call, message):
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        call()
