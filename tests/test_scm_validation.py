"""Every bad input of the SCM generator gets an error naming the parameter and what was expected."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scm import (
    InvalidParameterError,
    LinearGaussianSCM,
    NonlinearMixing,
    ResidualLaw,
    encode,
    optimal_heads,
    random_scm,
    risks,
    sample,
    shifted_covariance,
)

GOOD = {
    "sigma_s": np.eye(2),
    "source": ResidualLaw(np.zeros(2), np.eye(2)),
    "target": ResidualLaw(np.zeros(2), 2 * np.eye(2)),
    "beta": np.ones((1, 2)),
    "noise_std": np.array([0.1]),
}


def build(**changes):
    return LinearGaussianSCM(**{**GOOD, **changes})


def test_non_symmetric_covariance_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"sigma_s: expected a symmetric matrix"):
        build(sigma_s=np.array([[1.0, 0.5], [0.0, 1.0]]))


def test_non_psd_covariance_reports_its_smallest_eigenvalue():
    message = r"positive semi-definite.*smallest eigenvalue is -1"
    with pytest.raises(InvalidParameterError, match=message):
        ResidualLaw(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))


@pytest.mark.parametrize("psi", [-0.1, math.pi / 2 + 0.01, float("nan")])
def test_angle_outside_the_quarter_turn_is_rejected(psi):
    with pytest.raises(InvalidParameterError, match=r"psi: expected an angle in \[0, pi/2\]"):
        risks(build(), psi, np.ones((1, 2)))


def test_beta_with_the_wrong_dimension_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"beta: expected shape \(K, 2\)"):
        build(beta=np.ones((1, 3)))


def test_noise_std_with_the_wrong_length_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"noise_std: expected shape \(1,\)"):
        build(noise_std=np.array([0.1, 0.2]))


def test_residual_mean_of_the_wrong_dimension_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"source.mean: expected shape \(2,\)"):
        build(source=ResidualLaw(np.zeros(3), np.eye(3)))


def test_head_shape_mismatch_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"weights: expected shape \(1, 2\)"):
        risks(build(), 0.3, np.ones((2, 2)))


def test_observation_shape_mismatch_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"x: expected shape \(n, 4\)"):
        encode(build(), 0.3, np.ones((5, 3)))


def test_non_orthogonal_mixing_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"mixing: expected an orthogonal matrix"):
        build(mixing=2 * np.eye(4))


def test_non_orthogonal_nonlinear_rotation_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"nonlinear.rotation: expected an orthogonal"):
        NonlinearMixing(np.ones((4, 4)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_rejected(bad):
    with pytest.raises(InvalidParameterError, match=r"beta: expected finite values"):
        build(beta=np.array([[1.0, bad]]))


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_sample_size_must_be_a_positive_integer(n):
    with pytest.raises(InvalidParameterError, match=r"n: expected a positive integer"):
        sample(build(), n)


def test_unknown_environment_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"env: expected 'source' or 'target'"):
        optimal_heads(build(), 0.2, env="test")


def test_correlation_outside_minus_one_one_is_rejected():
    with pytest.raises(
        InvalidParameterError, match=r"rho: expected a finite number in \[-1.0, 1.0\]"
    ):
        build(rho=1.5)


def test_shrinking_shift_larger_than_the_covariance_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"shift_size: a shrinking shift needs size"):
        shifted_covariance(np.eye(2), 5.0, "shrink")


def test_unknown_shift_direction_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"shift_direction: expected one of"):
        random_scm(shift_direction="sideways")


def test_orthogonal_shift_needs_two_dimensions():
    with pytest.raises(InvalidParameterError, match=r"k: an orthogonal shift needs k >= 2"):
        random_scm(k=1, shift_direction="orthogonal")


@pytest.mark.parametrize("delta", [-0.5, float("nan"), float("inf")])
def test_worst_case_shift_size_must_be_finite_and_non_negative(delta):
    from scm import worst_case_gap, worst_case_target_covariance

    message = r"delta: expected a finite non-negative number"
    with pytest.raises(InvalidParameterError, match=message):
        worst_case_gap(0.3, np.ones(2), delta)
    with pytest.raises(InvalidParameterError, match=message):
        worst_case_target_covariance(np.eye(2), np.ones(2), delta)


def test_encoding_non_finite_observations_is_rejected():
    x = np.ones((5, 4))
    x[2, 1] = np.nan
    with pytest.raises(InvalidParameterError, match=r"x: expected finite observations"):
        encode(build(), 0.3, x)


@pytest.mark.parametrize("k", [0, -2, 1.5])
def test_block_rotation_size_must_be_a_positive_integer(k):
    from scm.encoder import block_rotation

    with pytest.raises(InvalidParameterError, match=r"k: expected a positive integer"):
        block_rotation(0.3, k)


@pytest.mark.parametrize("seed", ["abc", -1, 1.5, None])
def test_random_scm_seed_must_be_a_non_negative_integer(seed):
    with pytest.raises(InvalidParameterError, match=r"seed: expected a non-negative integer"):
        random_scm(seed=seed)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_linear_cka_of_non_finite_features_is_rejected(bad):
    import torch

    from coremtl.cka import linear_cka

    x, y = torch.randn(8, 3), torch.randn(8, 2)
    y[3, 0] = bad
    with pytest.raises(InvalidParameterError, match=r"y: expected finite features"):
        linear_cka(x, y)
    with pytest.raises(InvalidParameterError, match=r"x: expected finite features"):
        linear_cka(y, x, debiased=False)


def test_an_infinite_value_is_not_shown_inside_the_range_it_is_refused_from():
    from scm.validation import check_in_range

    with pytest.raises(InvalidParameterError) as error:
        check_in_range(math.inf, "lam", 0.0, math.inf)
    assert str(error.value) == "lam: expected a finite number in [0.0, inf), got inf"
