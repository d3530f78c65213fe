"""Closed forms of setting S against Monte Carlo and against each other.

Monte Carlo tolerance: a mean of ``n`` i.i.d. terms has standard error ``SE = std / sqrt(n)``; each
check allows ``Z * SE`` with ``Z = 5`` (a false alarm probability of about 6e-7 per comparison under
the normal approximation), plus 1e-9 for round-off. No tolerance is tuned by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis_profiles import cases
from scm_strategies import angles, scms

from scm import (
    encode,
    encoder_matrix,
    gaussian_w2,
    leakage_coefficient,
    linear_encoder_leakage,
    ood_gap,
    ood_gap_formula,
    optimal_heads,
    population_cka,
    random_scm,
    risks,
    sample,
    scalar_scm,
    shifted_covariance,
    worst_case_gap,
    worst_case_target_covariance,
)

Z = 5.0
N_MC = 20_000


def mc_within(values: np.ndarray, expected: float) -> bool:
    standard_error = values.std(ddof=1) / math.sqrt(values.shape[0])
    return abs(values.mean() - expected) <= Z * standard_error + 1e-9


@cases(30)
@given(scm=scms(allow_rho=True), psi=angles, seed=st.integers(0, 10_000))
def test_risk_closed_form_matches_monte_carlo(scm, psi, seed):
    weights, bias = optimal_heads(scm, psi)
    weights = weights + 0.3 * np.random.default_rng(seed).standard_normal(weights.shape)
    for env in ("source", "target"):
        drawn = sample(scm, N_MC, env, seed=seed)
        zhat_s, _ = encode(scm, psi, drawn.x)
        squared_errors = (drawn.y - zhat_s @ weights.T - bias) ** 2
        expected = risks(scm, psi, weights, bias, env)
        for task in range(scm.num_tasks):
            assert mc_within(squared_errors[:, task], expected[task]), (env, task)


@cases(40)
@given(scm=scms(), psi=angles)
def test_gap_equals_the_formula_of_s1(scm, psi):
    weights, bias = optimal_heads(scm, psi)
    np.testing.assert_allclose(
        ood_gap(scm, psi, weights, bias), ood_gap_formula(scm, psi, weights, bias), atol=1e-9
    )


@cases(40)
@given(scm=scms(allow_rho=True), psi=angles, seed=st.integers(0, 10_000))
def test_optimal_heads_minimise_the_source_risk(scm, psi, seed):
    weights, bias = optimal_heads(scm, psi)
    best = risks(scm, psi, weights, bias)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        perturbed = risks(
            scm,
            psi,
            weights + 0.1 * rng.standard_normal(weights.shape),
            bias + 0.1 * rng.standard_normal(bias.shape),
        )
        assert np.all(perturbed >= best - 1e-9)


@cases(40)
@given(scm=scms(), psi=st.floats(0.0, 1.5))
def test_optimal_heads_equal_the_s3_formula_without_correlation(scm, psi):
    c, s = math.cos(psi), math.sin(psi)
    weights, bias = optimal_heads(scm, psi)
    matrix = c * c * scm.sigma_s + s * s * scm.source.cov
    expected = c * np.linalg.solve(matrix, scm.sigma_s @ scm.beta.T).T
    np.testing.assert_allclose(weights, expected, atol=1e-8)
    np.testing.assert_allclose(bias, -s * expected @ scm.source.mean, atol=1e-8)


@cases(40)
@given(scm=scms(), psi=angles, delta=st.floats(0.0, 5.0))
def test_worst_case_shift_attains_s2_bound(scm, psi, delta):
    weights, _ = optimal_heads(scm, psi)
    head = weights[0]
    assume(np.any(head))
    target_cov = worst_case_target_covariance(scm.source.cov, head, delta)
    assert np.linalg.norm(target_cov - scm.source.cov) == pytest.approx(delta, abs=1e-9)
    shifted = scm.with_target(mean=scm.source.mean, cov=target_cov)
    gap = ood_gap(shifted, psi, weights, np.zeros(scm.num_tasks))[0]
    assert gap == pytest.approx(worst_case_gap(psi, head, delta), rel=1e-9, abs=1e-12)


@cases(40)
@given(scm=scms(), psi=angles, seed=st.integers(0, 10_000))
def test_no_random_shift_of_equal_size_exceeds_the_worst_case(scm, psi, seed):
    weights, _ = optimal_heads(scm, psi)
    delta = 1.0
    rng = np.random.default_rng(seed)
    target_cov = shifted_covariance(scm.source.cov, delta, "random", rng)
    shifted = scm.with_target(mean=scm.source.mean, cov=target_cov)
    gaps = ood_gap(shifted, psi, weights, np.zeros(scm.num_tasks))
    for task, head in enumerate(weights):
        assert gaps[task] <= worst_case_gap(psi, head, delta) + 1e-9


def test_orthogonal_shift_leaves_the_gap_of_that_head_at_zero():
    scm = random_scm(k=3, num_tasks=1, seed=3, shift_size=2.0)
    psi = 0.7
    weights, _ = optimal_heads(scm, psi)
    target_cov = shifted_covariance(
        scm.source.cov, 2.0, "orthogonal", np.random.default_rng(0), head=weights[0]
    )
    shifted = scm.with_target(mean=scm.source.mean, cov=target_cov)
    assert ood_gap(shifted, psi, weights, np.zeros(1))[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("v", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("psi", [0.0, 0.3, 0.9, math.pi / 2])
def test_population_cka_matches_the_scalar_formula_of_s6(v, psi):
    c, s = math.cos(psi), math.sin(psi)
    expected = c * c * s * s * (v - 1) ** 2 / ((c * c + s * s * v) * (s * s + c * c * v))
    assert population_cka(scalar_scm(v), psi) == pytest.approx(expected, abs=1e-12)


@cases(20)
@given(scm=scms(max_k=4, allow_rho=True), psi=angles, seed=st.integers(0, 10_000))
def test_sample_covariance_of_the_streams_matches_the_population(scm, psi, seed):
    drawn = sample(scm, N_MC, "source", seed=seed)
    zhat_s, zhat_r = encode(scm, psi, drawn.x)
    streams = np.concatenate([zhat_s, zhat_r], axis=1)
    from scm import stream_covariance

    population = stream_covariance(scm, psi, "source")
    centred = streams - streams.mean(axis=0)
    for i in range(2 * scm.k):
        for j in range(i, 2 * scm.k):
            assert mc_within(centred[:, i] * centred[:, j], population[i, j])


@pytest.mark.parametrize("m_a,m_b,v_a,v_b", [(0.0, 1.0, 1.0, 4.0), (2.0, -1.0, 0.5, 0.5)])
def test_gaussian_w2_matches_the_one_dimensional_formula(m_a, m_b, v_a, v_b):
    from scm import ResidualLaw

    law_a = ResidualLaw(np.array([m_a]), np.array([[v_a]]))
    law_b = ResidualLaw(np.array([m_b]), np.array([[v_b]]))
    expected = math.sqrt((m_a - m_b) ** 2 + (math.sqrt(v_a) - math.sqrt(v_b)) ** 2)
    assert gaussian_w2(law_a, law_b) == pytest.approx(expected, rel=1e-10)


@cases(30)
@given(scm=scms())
def test_gaussian_w2_is_symmetric_and_zero_on_equal_laws(scm):
    assert gaussian_w2(scm.source, scm.target) == pytest.approx(
        gaussian_w2(scm.target, scm.source), rel=1e-6, abs=1e-6
    )
    assert gaussian_w2(scm.source, scm.source) == pytest.approx(0.0, abs=1e-6)


@cases(30)
@given(scm=scms(), psi=angles)
def test_leakage_of_the_linear_encoder_is_sin_psi(scm, psi):
    assert linear_encoder_leakage(scm, encoder_matrix(scm, psi)) == pytest.approx(
        leakage_coefficient(psi), abs=1e-9
    )
