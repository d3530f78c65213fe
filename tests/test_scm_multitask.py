"""The multi-task SCM of S12: validation, sampling against the laws, closed forms against Monte
Carlo and against numerical optimisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proofs.montecarlo import Z_SCORE, mean_and_standard_error
from proofs.s12_mtcrl_sharing import shared_encoder_by_descent
from scm import multitask as mt
from scm.validation import InvalidParameterError

SEEDS = st.integers(0, 2**31 - 1)


def random_model(seed: int, tasks: int, block: int, confounding: float = 0.0):
    return mt.random_multitask_scm(
        num_tasks=tasks,
        block_size=block,
        correlation=0.6,
        target_correlation=-0.2 / max(1, tasks - 1),
        seed=seed,
        confounding=confounding,
        target_confounding=-confounding / 2,
        mixing="haar",
    )


@pytest.mark.parametrize("confounding", [0.0, 0.6])
def test_closed_form_risks_match_monte_carlo(confounding):
    model = random_model(3, 3, 2, confounding)
    predictors = np.random.default_rng(0).standard_normal((3, model.dim))
    for env in (mt.SOURCE, mt.TARGET):
        draws = mt.sample(model, 200_000, env, seed=1)
        residual = draws.x @ (predictors @ model.mixing.T).T - draws.y
        for task in range(3):
            mean, error = mean_and_standard_error(residual[:, task] ** 2)
            assert abs(mean - mt.risks(model, predictors, env)[task]) <= Z_SCORE * error


def test_samples_have_the_covariances_of_their_environments():
    model = mt.block_correlated_scm(
        np.ones((2, 1)),
        {"source:0": 0.2, "source:1": 0.8, mt.TARGET: -0.5},
        source_environments=("source:0", "source:1"),
    )
    draws = mt.sample(model, 40_001, mt.SOURCE, seed=2)
    assert np.bincount(draws.environment).tolist() == [20_001, 20_000]
    for label, rho in ((0, 0.2), (1, 0.8)):
        z = draws.z[draws.environment == label]
        mean, error = mean_and_standard_error(z[:, 0] * z[:, 1])
        assert abs(mean - rho) <= Z_SCORE * error
    pooled, error = mean_and_standard_error(draws.z[:, 0] * draws.z[:, 1])
    assert model.law(mt.SOURCE).cov[0, 1] == pytest.approx(0.5)
    assert abs(pooled - 0.5) <= Z_SCORE * error


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, tasks=st.integers(2, 4), block=st.integers(1, 2))
def test_single_task_optimum_is_causal_without_confounder(seed, tasks, block):
    model = random_model(seed, tasks, block)
    single = mt.single_task_predictors(model)
    np.testing.assert_allclose(single, model.beta, atol=1e-9)
    np.testing.assert_allclose(mt.ood_gaps(model, single), 0.0, atol=1e-9)
    assert np.max(mt.off_block_weight(model, single)) <= 1e-9


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, tasks=st.integers(2, 4), block=st.integers(1, 2), width=st.integers(1, 3))
def test_reduced_rank_gap_equals_the_trace_formula(seed, tasks, block, width):
    assume(width < tasks)
    model = random_model(seed, tasks, block)
    optimum = mt.multitask_predictors(model, width)
    q_s, q_t = mt.signal_covariance(model, mt.SOURCE), mt.signal_covariance(model, mt.TARGET)
    gap = mt.ood_gaps(model, optimum.predictors).sum()
    assert gap == pytest.approx(np.trace(optimum.projection @ (q_s - q_t)), abs=1e-9)
    excess = (
        mt.risks(model, optimum.predictors, mt.SOURCE).sum() - model.noise_std @ model.noise_std
    )
    assert excess == pytest.approx(optimum.eigenvalues[width:].sum(), abs=1e-9)
    assert np.linalg.matrix_rank(optimum.predictors, tol=1e-9) <= width


@settings(max_examples=8, deadline=None)
@given(seed=SEEDS, tasks=st.integers(2, 4), width=st.integers(1, 3))
def test_reduced_rank_solution_is_the_minimum_found_by_descent(seed, tasks, width):
    assume(width < tasks)
    model = random_model(seed, tasks, 1, confounding=0.5)
    optimum = mt.multitask_predictors(model, width)
    assume(optimum.eigengap > 1e-3)
    found = shared_encoder_by_descent(model, width, seed)
    np.testing.assert_allclose(found, optimum.predictors, atol=1e-6)


def test_weighted_optimum_is_stationary_and_beats_random_rank_m_predictors():
    model = random_model(7, 3, 2, confounding=0.4)
    weights = np.array([3.0, 1.0, 0.5])
    optimum = mt.multitask_predictors(model, 1, task_weights=weights)
    s = model.law(mt.SOURCE).cov
    c = mt.feature_label_covariance(model, mt.SOURCE)
    grad_a = 2 * weights[:, None] * (optimum.predictors @ s - c.T)
    np.testing.assert_allclose(optimum.heads.T @ grad_a, 0.0, atol=1e-9)
    np.testing.assert_allclose(grad_a @ optimum.encoder.T, 0.0, atol=1e-9)
    best = weights @ mt.risks(model, optimum.predictors, mt.SOURCE)
    rng = np.random.default_rng(0)
    for _ in range(200):
        heads = optimum.heads[:, 0] + 0.1 * rng.standard_normal(3)
        encoder = optimum.encoder[0] + 0.1 * rng.standard_normal(model.dim)
        other = np.outer(heads, encoder)
        assert weights @ mt.risks(model, other, mt.SOURCE) >= best - 1e-12
    unweighted = mt.multitask_predictors(model, 1).predictors
    assert np.abs(unweighted - optimum.predictors).max() > 1e-3


def test_full_width_shares_nothing_and_exchangeable_width_two_is_not_unique():
    model = random_model(1, 3, 1)
    full = mt.multitask_predictors(model, 3)
    np.testing.assert_allclose(full.predictors, model.beta, atol=1e-9)
    assert full.unique and math.isinf(full.eigengap)
    exchangeable = mt.block_correlated_scm(np.ones((3, 1)), {mt.SOURCE: 0.5, mt.TARGET: 0.0})
    assert not mt.multitask_predictors(exchangeable, 2).unique
    assert mt.multitask_predictors(exchangeable, 1).unique


def test_cross_task_weights_split_the_predictor_by_blocks():
    model = random_model(4, 3, 2)
    predictors = mt.multitask_predictors(model, 1).predictors
    norms = mt.cross_task_weights(model, predictors)
    np.testing.assert_allclose((norms**2).sum(axis=1), (predictors**2).sum(axis=1))
    off = np.sqrt((norms**2).sum(axis=1) - np.diag(norms) ** 2)
    np.testing.assert_allclose(off, mt.off_block_weight(model, predictors))


def test_uncorrelated_blocks_give_no_weight_on_other_tasks():
    model = mt.block_correlated_scm(
        np.array([[1.0], [0.7], [0.4]]), {mt.SOURCE: 0.0, mt.TARGET: 0.5}
    )
    predictors = mt.multitask_predictors(model, 2).predictors
    assert mt.off_block_weight(model, predictors).max() <= 1e-12
    assert abs(mt.ood_gaps(model, predictors).sum()) <= 1e-12


def law(cov, q: int = 0):
    return mt.LatentLaw(np.asarray(cov, dtype=float), np.zeros((len(cov), q)))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"beta": np.array([[1.0, 1.0], [0.0, 1.0]])}, "beta: task t may only read its own block"),
        ({"environments": {mt.SOURCE: law(np.eye(2))}}, "environments: expected laws for target"),
        (
            {"environments": {mt.SOURCE: law(np.eye(2)), mt.TARGET: law(2 * np.eye(2))}},
            "within-task blocks Cov",
        ),
        ({"noise_std": np.array([0.1, -1.0])}, "noise_std: expected 2 values >= 0"),
        ({"mixing": np.ones((2, 2))}, "mixing: expected an orthogonal matrix"),
        (
            {"environments": {mt.SOURCE: law([[1.0, 2.0], [2.0, 1.0]]), mt.TARGET: law(np.eye(2))}},
            "positive semi-definite",
        ),
        (
            {
                "environments": {
                    mt.SOURCE: law(np.eye(2)),
                    "a": law(np.eye(2)),
                    mt.TARGET: law(np.eye(2)),
                },
                "source_environments": ("a",),
            },
            "'source' names the mixture",
        ),
    ],
)
def test_invalid_models_are_rejected_with_the_parameter_named(kwargs, pattern):
    arguments = {
        "block_sizes": (1, 1),
        "beta": np.eye(2),
        "environments": {mt.SOURCE: law(np.eye(2)), mt.TARGET: law(np.eye(2))},
        "noise_std": np.array([0.1, 0.1]),
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidParameterError, match=pattern):
        mt.MultiTaskSCM(**arguments)


def test_confounding_beyond_the_joint_law_is_rejected():
    with pytest.raises(InvalidParameterError, match="joint law of"):
        mt.block_correlated_scm(
            np.ones((2, 1)),
            {mt.SOURCE: 0.0, mt.TARGET: 0.0},
            confounder_loadings=np.ones((2, 1)),
            confounding={mt.SOURCE: np.array([[0.9], [0.9]])},
        )


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda m: mt.multitask_predictors(m, 0), "width: expected a positive integer"),
        (
            lambda m: mt.multitask_predictors(m, 1, task_weights=[1.0, -1.0]),
            "task_weights: expected 2 positive numbers",
        ),
        (lambda m: mt.risks(m, np.zeros((3, 2)), mt.SOURCE), "predictors: expected shape"),
        (lambda m: m.law("elsewhere"), "env: expected 'source' or one of"),
        (lambda m: mt.sample(m, 0), "n: expected a positive integer"),
    ],
)
def test_invalid_calls_are_rejected_with_the_parameter_named(call, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):
        call(mt.two_task_scm())


def test_generators_reject_bad_correlations_and_mixing():
    with pytest.raises(InvalidParameterError, match="correlations\\['source'\\]"):
        mt.block_correlated_scm(np.ones((3, 1)), {mt.SOURCE: -0.9, mt.TARGET: 0.0})
    with pytest.raises(InvalidParameterError, match="mixing: expected a matrix or 'haar:<seed>'"):
        mt.block_correlated_scm(np.ones((2, 1)), {mt.SOURCE: 0.1, mt.TARGET: 0.0}, mixing="x")
    with pytest.raises(InvalidParameterError, match="correlation: expected a value in"):
        mt.random_multitask_scm(correlation=1.5)


def test_describe_is_json_and_names_every_environment():
    model = random_model(2, 2, 1, confounding=0.3)
    described = json.loads(json.dumps(model.describe()))
    assert set(described["environments"]) == {mt.SOURCE, mt.TARGET}
    assert described["block_sizes"] == [1, 1]
    assert np.asarray(described["confounder_loadings"]).shape == (2, 1)
