"""S10 (flexible encoders) and S11 (source-only correlation): certificates, properties over random
SCMs, the counterexamples, and bad input to :mod:`scm.correlation`.

Closed forms compared with closed forms use ``FLOAT64_ROUNDOFF``; finite differences use the
tolerance stated in :mod:`proofs.s11_source_correlation`.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.linalg import expm
from scm_strategies import scms

from proofs import s10_flexible_encoders as s10
from proofs import s11_source_correlation as s11
from proofs.montecarlo import FLOAT64_ROUNDOFF
from proofs.symbolic import identity_step
from scm import (
    InvalidParameterError,
    haar_orthogonal,
    ood_gap,
    optimal_heads,
    population_cka,
    random_scm,
    risks,
)
from scm import correlation as corr
from scm.validation import psd_sqrt

PROPERTY = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2**31 - 1)


def _sigma(scm) -> np.ndarray:
    return scm.joint_covariance("source")


# --------------------------------------------------------------------------- certificates


def test_quotient_rule_step_rejects_a_wrong_derivative():
    """The S11 step substitutes D' = 2K, E' = -2K into sympy's derivative; with E' = +2K the
    stated dCKA/dpsi must not certify."""
    psi, k_p = sp.Symbol("psi", real=True), sp.Symbol("Kp", real=True)
    d, e, k = (sp.Function(name)(psi) for name in ("D", "E", "K"))
    wrong = sp.diff(k**2 / (d * e), psi).subs(
        {sp.Derivative(d, psi): 2 * k, sp.Derivative(e, psi): 2 * k}
    )
    wrong = wrong.subs(sp.Derivative(k, psi), k_p)
    stated = 2 * k * (k_p * d * e - k**2 * (e - d)) / (d * e) ** 2
    assert not identity_step("wrong", wrong, stated).passed


# ---------------------------------------------------------------- S10: the counterexample


def test_s10_issue_counterexample_whitening_then_rotation():
    """The issue's numbers 1.76, 3.37, 5.02 at rotation 0.3, 0.6, 1.0 are the raw leakage
    sin(theta) / sqrt(v) of R(theta) Sigma^-1/2 for a residual variance v = (sin 1 / 5.02)^2,
    at population CKA exactly 0."""
    v = (math.sin(1.0) / 5.02) ** 2
    sigma = np.diag([1.0, v])
    leaks = []
    for theta, reported in ((0.3, 1.76), (0.6, 3.37), (1.0, 5.02)):
        latent_map = corr.whitening_rotation(sigma, theta)
        assert corr.latent_map_cka(sigma, latent_map) <= FLOAT64_ROUNDOFF
        assert round(corr.raw_leakage(latent_map), 2) == reported
        assert corr.relative_leakage(latent_map) == pytest.approx(
            math.tan(theta) / math.sqrt(v), rel=FLOAT64_ROUNDOFF
        )
        leaks.append(corr.relative_leakage(latent_map))
    assert leaks == sorted(leaks) and leaks[-1] > 9


def test_s10_free_encoder_reaches_any_leakage_at_zero_cka():
    scm = random_scm(k=3, num_tasks=1, seed=5)
    rng = np.random.default_rng(5)
    gain = np.eye(3) + 0.3 * rng.standard_normal((3, 3))
    for target in (0.1, 1.0, 100.0):
        leak = rng.standard_normal((3, 3))
        leak *= target / np.linalg.norm(np.linalg.solve(gain, leak), 2)
        latent_map = corr.decorrelating_encoder(scm.sigma_s, scm.source.cov, gain, leak)
        assert corr.latent_map_cka(_sigma(scm), latent_map) <= FLOAT64_ROUNDOFF
        assert corr.relative_leakage(latent_map) == pytest.approx(target, rel=1e-9)
        assert abs(np.linalg.det(latent_map)) > 1e-9


def test_s10_shared_eigenvalue_family_is_invisible_and_leaks():
    joint = np.diag([1.0, 2.0, 2.0, 3.0])
    for theta in (0.2, 0.7, 1.2):
        c, s = math.cos(theta), math.sin(theta)
        latent_map = np.eye(4)
        latent_map[np.ix_([1, 2], [1, 2])] = [[c, s], [-s, c]]
        assert corr.latent_map_cka(joint, latent_map) <= FLOAT64_ROUNDOFF
        assert corr.relative_leakage(latent_map) == pytest.approx(math.tan(theta))
    assert corr.orthogonal_leakage_bound(np.diag([1.0, 2.0]), np.diag([2.0, 3.0]), 0.0) == (
        math.inf,
        0.0,
    )


def test_s10_swaps_are_the_other_zero_cka_maps_and_cost_task_risk():
    """k = 1: the rotation by pi/2 (in the identity's connected component) has CKA 0 and raw
    leakage 1; the source risk of its optimal head is beta^2 Var(z_s) + sigma^2."""
    scm = random_scm(k=1, num_tasks=1, seed=2, noise_std=0.3)
    latent_map = s10.swap_map(scm.sigma_s, scm.source.cov, 1)
    assert corr.latent_map_cka(_sigma(scm), latent_map) <= FLOAT64_ROUNDOFF
    assert corr.raw_leakage(latent_map) == pytest.approx(1.0)
    assert corr.relative_leakage(latent_map) == math.inf
    weights, bias = optimal_heads(scm, math.pi / 2)
    expected = scm.beta[0, 0] ** 2 * scm.sigma_s[0, 0] + 0.09
    assert risks(scm, math.pi / 2, weights, bias)[0] == pytest.approx(expected)


# ------------------------------------------------------------------ S10: properties


@PROPERTY
@given(scm=scms(max_k=4, max_tasks=1), theta=st.floats(-1.4, 1.4))
def test_s10_whitening_rotation_keeps_cka_zero_with_tan_leakage(scm, theta):
    sigma = _sigma(scm)
    assume(np.linalg.eigvalsh(sigma)[0] > 1e-3)
    latent_map = corr.whitening_rotation(sigma, theta)
    scale = np.linalg.norm(psd_sqrt(scm.sigma_s) @ np.linalg.inv(psd_sqrt(scm.source.cov)), 2)
    assert corr.latent_map_cka(sigma, latent_map) <= 1e-9
    assert corr.relative_leakage(latent_map) == pytest.approx(
        abs(math.tan(theta)) * scale, rel=1e-8, abs=1e-10
    )


@PROPERTY
@given(scm=scms(max_k=4, max_tasks=1), seed=seeds)
def test_s10_sylvester_bound_holds_for_every_orthogonal_encoder(scm, seed):
    sigma = _sigma(scm)
    latent_map = haar_orthogonal(2 * scm.k, np.random.default_rng(seed))
    c_ss, c_sr, _ = corr.stream_blocks(sigma, latent_map)
    separation = corr.spectral_separation(c_ss, scm.source.cov)
    assume(separation > 1e-6)
    leak = latent_map[: scm.k, scm.k :]
    assert np.linalg.norm(leak) <= np.linalg.norm(c_sr) / separation + 1e-9


@PROPERTY
@given(scm=scms(max_k=3, max_tasks=1), seed=seeds, size=st.floats(0.0, 0.3))
def test_s10_small_cka_means_small_leakage_near_the_identity(scm, seed, size):
    rng = np.random.default_rng(seed)
    n = 2 * scm.k
    generator = rng.standard_normal((n, n))
    latent_map = expm(size * (generator - generator.T) / math.sqrt(2 * n))
    sigma = _sigma(scm)
    delta = corr.spectral_separation(scm.sigma_s, scm.source.cov)
    epsilon = corr.raw_leakage(latent_map)
    bound, radius = corr.orthogonal_leakage_bound(
        scm.sigma_s, scm.source.cov, corr.latent_map_cka(sigma, latent_map)
    )
    assume(delta > 1e-3 and epsilon <= radius)
    assert epsilon <= bound + 1e-12
    assert corr.relative_leakage(latent_map) <= epsilon / math.sqrt(1 - epsilon**2) + 1e-12


@PROPERTY
@given(scm=scms(max_k=4, max_tasks=1), swapped=st.integers(0, 4))
def test_s10_swap_maps_have_zero_cka_and_unit_leakage(scm, swapped):
    assume(swapped <= scm.k)
    latent_map = s10.swap_map(scm.sigma_s, scm.source.cov, swapped)
    assert corr.latent_map_cka(_sigma(scm), latent_map) <= 1e-12
    assert corr.raw_leakage(latent_map) == pytest.approx(1.0 if swapped else 0.0, abs=1e-12)
    rank = np.linalg.matrix_rank(latent_map[: scm.k, : scm.k], tol=1e-9)
    assert rank == scm.k - swapped


@PROPERTY
@given(scm=scms(max_k=3, max_tasks=1), seed=seeds, swapped=st.integers(0, 3))
def test_s10_per_stream_maps_keep_the_zero_cka_set(scm, seed, swapped):
    """M = diag(S_s, S_r) diag(Q_s, Q_r) P_swap (S invertible, Q orthogonal): C_sr stays 0, the
    number of swapped directions (k - rank A) is unchanged, lambda_rel = 0 without a swap."""
    assume(swapped <= scm.k)
    rng = np.random.default_rng(seed)
    k, zero = scm.k, np.zeros((scm.k, scm.k))
    rescale = [np.eye(k) + 0.5 * rng.standard_normal((k, k)) for _ in range(2)]
    assume(all(abs(np.linalg.det(block)) > 1e-3 for block in rescale))
    per_stream = np.block(
        [
            [rescale[0] @ haar_orthogonal(k, rng), zero],
            [zero, rescale[1] @ haar_orthogonal(k, rng)],
        ]
    )
    latent_map = per_stream @ s10.swap_map(scm.sigma_s, scm.source.cov, swapped)
    sigma = _sigma(scm)
    _, c_sr, _ = corr.stream_blocks(sigma, latent_map)
    assert np.max(np.abs(c_sr)) <= 1e-9 * max(1.0, float(np.max(np.abs(sigma))))
    assert np.linalg.matrix_rank(latent_map[:k, :k], tol=1e-9) == k - swapped
    if swapped == 0:
        assert corr.relative_leakage(latent_map) <= 1e-9
    else:
        assert corr.raw_leakage(latent_map) > 0.0


# -------------------------------------------------------------- S11: the counterexample


def test_s11_counterexample_penalised_optimum_leaves_zero():
    """v = 0.1, rho = 0.9: CKA(0) = rho^2 = 0.81, zero at psi_c = atan(2 rho sqrt(v)/(1 - v)) / 2,
    and the lambda = 1 optimum lies strictly between 0 and psi_c with a positive OOD gap."""
    v, rho = 0.1, 0.9
    psi_c = corr.cka_zero_angle(v, rho)
    assert corr.scalar_cka(0.0, v, rho) == pytest.approx(0.81)
    assert math.tan(2 * psi_c) == pytest.approx(2 * rho * math.sqrt(v) / (1 - v))
    assert corr.scalar_cka(psi_c, v, rho) <= FLOAT64_ROUNDOFF
    optimum = corr.penalised_endpoint(0.0, v, rho, 1.0)
    assert 0.0 < optimum < psi_c
    assert corr.scalar_ood_gap(optimum, v, rho, 1.0) > 0.05
    assert corr.predicted_gap_difference_sign(0.3, v, rho, 1.0, 1.0, psi_ew=0.0) == 1


def test_s11_cross_covariance_formula_from_the_brief():
    """``Cov(Zhat_s, Zhat_r) = s c (v - 1) + (c^2 - s^2) rho sqrt(v)`` against the scm's joint law."""
    from scm import stream_covariance
    from scm.generate import scalar_scm

    for v, rho, psi in ((0.1, 0.9, 0.4), (3.0, -0.5, 1.2), (1.0, 0.3, 0.7)):
        base = scalar_scm(v)
        scm = type(base)(
            sigma_s=base.sigma_s,
            source=base.source,
            target=base.target,
            beta=base.beta,
            noise_std=base.noise_std,
            rho=rho,
        )
        c, s = math.cos(psi), math.sin(psi)
        stated = s * c * (v - 1) + (c * c - s * s) * rho * math.sqrt(v)
        assert stream_covariance(scm, psi, "source")[0, 1] == pytest.approx(stated, abs=1e-12)


def test_s11_blind_control_and_uncorrelated_source_give_the_expected_signs():
    for psi_0 in (0.3, 0.6, 1.0):
        assert corr.predicted_gap_difference_sign(psi_0, 1.0, 0.0, 1.0, 1.0) == 0
        assert corr.predicted_gap_difference_sign(psi_0, 0.1, 0.0, 1.0, 1.0) == -1
        assert corr.predicted_gap_difference_sign(psi_0, 0.1, 0.5, 0.0, 1.0) == 0


def test_s11_boundary_sits_at_the_penalised_optimum_for_small_v():
    optimum = corr.penalised_endpoint(0.0, 0.1, 0.9, 1.0)
    (boundary,) = corr.gap_difference_boundaries(0.1, 0.9, 1.0, 1.0, points=61)
    assert boundary["psi_0"] == pytest.approx(optimum, abs=1e-6)
    assert (boundary["below"], boundary["above"]) == (1, -1)


def test_s11_any_k_prediction_reduces_to_the_scalar_one():
    scm = s11._scalar_scm(0.1, 0.9, 1.0, 0.0)
    for psi_0 in (0.1, 0.6):
        assert corr.general_penalised_endpoint(scm, psi_0, 1.0) == pytest.approx(
            corr.penalised_endpoint(psi_0, 0.1, 0.9, 1.0), abs=1e-7
        )
        assert corr.general_predicted_gap_difference_sign(
            scm, psi_0, 1.0
        ) == corr.predicted_gap_difference_sign(psi_0, 0.1, 0.9, 1.0, 1.0)
    assert corr.general_predicted_gap_difference_sign(scm, 0.3, 0.0) == 0


# ------------------------------------------------------------------ S11: properties


@PROPERTY
@given(
    v=st.floats(0.01, 5.0),
    rho=st.floats(-0.95, 0.95),
    psi=st.floats(0.0, math.pi / 2),
    shift=st.floats(0.0, 3.0),
    mean_shift=st.floats(0.0, 1.0),
)
def test_s11_scalar_closed_forms_equal_the_scm(v, rho, psi, shift, mean_shift):
    scm = s11._scalar_scm(v, rho, shift, mean_shift)
    weights, bias = optimal_heads(scm, psi)
    assert corr.scalar_cka(psi, v, rho) == pytest.approx(population_cka(scm, psi), abs=1e-12)
    assert corr.scalar_heads(psi, v, rho) == pytest.approx(weights[0, 0], rel=1e-9, abs=1e-12)
    assert corr.scalar_profile_risk(psi, v, rho, 1.0, 0.1) == pytest.approx(
        risks(scm, psi, weights, bias)[0], rel=1e-9
    )
    assert corr.scalar_ood_gap(psi, v, rho, shift, 1.0, mean_shift) == pytest.approx(
        ood_gap(scm, psi, weights, bias)[0], rel=1e-9, abs=1e-12
    )


@PROPERTY
@given(
    v=st.floats(0.01, 5.0),
    rho=st.floats(-0.95, 0.95),
    lam=st.floats(0.05, 20.0),
    beta=st.floats(0.3, 3.0),
)
def test_s11_penalised_optimum_lies_strictly_between_zero_and_psi_c(v, rho, lam, beta):
    assume(abs(v - 1.0) > 0.02 and abs(rho) > 0.05)
    psi_c = corr.cka_zero_angle(v, rho)
    optimum = corr.penalised_endpoint(0.0, v, rho, lam, beta)
    assert min(0.0, psi_c) < optimum < max(0.0, psi_c)
    risk_slope, cka_slope = corr.scalar_profile_derivatives(optimum, v, rho, beta)
    assert abs(risk_slope + lam * cka_slope) <= 1e-6 * (1 + lam)
    squared = corr.penalised_endpoint(0.0, v, rho, lam, beta, penalty="square")
    assert min(0.0, psi_c) < squared < max(0.0, psi_c)


@PROPERTY
@given(scm=scms(max_k=4, max_tasks=1, allow_rho=True))
def test_s11_cka_slope_at_zero_matches_finite_differences(scm):
    joint, k = _sigma(scm), scm.k

    def cka(psi):
        c, s, eye = math.cos(psi), math.sin(psi), np.eye(k)
        rotation = np.block([[c * eye, s * eye], [-s * eye, c * eye]])
        return corr.latent_map_cka(joint, rotation)

    h = s11.FINITE_DIFFERENCE_STEP
    slope = corr.cka_slope_at_zero(scm.sigma_s, scm.source.cov, scm.rho)
    assert slope == pytest.approx((cka(h) - cka(-h)) / (2 * h), abs=s11.FINITE_DIFFERENCE_TOLERANCE)


@PROPERTY
@given(v=st.floats(0.01, 5.0), rho=st.floats(-0.95, 0.95), psi=st.floats(-3.0, 3.0))
def test_s11_derivatives_match_sympy(v, rho, psi):
    stated = corr.scalar_profile_derivatives(psi, v, rho, 1.3)
    reference = s11.sympy_slopes()(psi, v, rho, 1.3)
    for value, expected in zip(stated, reference, strict=True):
        assert float(value) == pytest.approx(
            float(expected), rel=FLOAT64_ROUNDOFF, abs=FLOAT64_ROUNDOFF
        )


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: corr.scalar_cka(0.3, 0.0, 0.5), "v: expected a positive residual variance"),
        (lambda: corr.scalar_cka(0.3, 1.0, 1.5), "rho: expected a finite number in"),
        (lambda: corr.scalar_cka(0.3, 1.0, -1.0), "rho: expected |rho| < 1"),
        (lambda: corr.scalar_cka(float("nan"), 1.0, 0.5), "psi: expected finite values"),
        (lambda: corr.scalar_ood_gap(0.3, 0.5, 0.5, -1.0), "shift: expected a finite number in"),
        (lambda: corr.penalised_endpoint(0.3, 0.5, 0.5, -1.0), "lam: expected a finite number in"),
        (
            lambda: corr.predicted_gap_difference_sign(0.3, 0.5, 0.5, 1.0, 1.0, resolution=-1),
            "resolution: expected a finite number in",
        ),
        (lambda: corr.latent_map_cka(np.eye(4), np.eye(3)), "latent_map: expected shape (4, 4)"),
        (lambda: corr.whitening_rotation(np.diag([1.0, 0.0]), 0.3), "sigma: expected a positive"),
        (lambda: corr.whitening_rotation(np.eye(2), 7.0), "theta: expected a finite number in"),
        (
            lambda: corr.decorrelating_encoder(np.eye(1), np.eye(1), [[0.0]], [[1.0]]),
            "gain: expected an invertible",
        ),
        (
            lambda: corr.decorrelating_encoder(np.eye(2), np.eye(2), np.eye(1), np.eye(1)),
            "gain, leak: expected shape (2, 2)",
        ),
        (lambda: corr.cka_slope_at_zero(np.eye(2), np.eye(3), 0.5), "sigma_r: expected shape"),
        (lambda: corr.orthogonal_leakage_bound(np.eye(1), np.eye(1), 2.0), "cka: expected"),
        (lambda: corr.penalised_endpoint(0.0, 0.5, 0.5, 1.0, penalty="abs"), "penalty: expected"),
        (lambda: corr.raw_leakage(np.eye(3)), "latent_map: expected a square 2k x 2k"),
        (lambda: corr.relative_leakage(np.ones((2, 4))), "latent_map: expected a square 2k x 2k"),
        (
            lambda: corr.decorrelating_encoder(np.zeros((1, 1)), np.eye(1), [[1.0]], [[1.0]]),
            "sigma_s: expected a positive-definite",
        ),
    ],
)
def test_bad_input_names_the_parameter(call, message):
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        call()
