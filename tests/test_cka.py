"""Linear CKA: invariances, the two formulations, the estimators' behaviour on independent data."""

from __future__ import annotations

import math

import pytest
import torch

from coremtl.cka import (
    biased_cka_approximation_error,
    expected_biased_cka_independent,
    linear_cka,
)
from scm.validation import InvalidParameterError


def correlated_pair(n: int, p: int, q: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    common = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    x = common @ torch.randn(3, p, generator=generator, dtype=torch.float64)
    x = x + 0.5 * torch.randn(n, p, generator=generator, dtype=torch.float64)
    y = common @ torch.randn(3, q, generator=generator, dtype=torch.float64)
    y = y + 0.5 * torch.randn(n, q, generator=generator, dtype=torch.float64)
    return x, y


def orthogonal(d: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return q


SHAPES = [(32, 5, 7), (12, 40, 30), (64, 16, 16)]
ESTIMATORS = [True, False]


@pytest.mark.parametrize("debiased", ESTIMATORS)
@pytest.mark.parametrize(("n", "p", "q"), SHAPES)
def test_feature_and_gram_formulations_agree(n, p, q, debiased):
    x, y = correlated_pair(n, p, q, seed=n + p)
    features = linear_cka(x, y, debiased=debiased, method="features")
    gram = linear_cka(x, y, debiased=debiased, method="gram")
    torch.testing.assert_close(features, gram, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("debiased", ESTIMATORS)
@pytest.mark.parametrize(("n", "p", "q"), SHAPES)
def test_invariant_to_orthogonal_maps_scaling_and_shifts(n, p, q, debiased):
    x, y = correlated_pair(n, p, q, seed=3 * n + q)
    reference = linear_cka(x, y, debiased=debiased)
    transformed = linear_cka(
        2.5 * x @ orthogonal(p, 1) + 4.0, 0.1 * y @ orthogonal(q, 2) - 1.0, debiased=debiased
    )
    torch.testing.assert_close(transformed, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_cka_of_features_with_themselves_is_one(debiased):
    x, _ = correlated_pair(24, 10, 3, seed=5)
    torch.testing.assert_close(linear_cka(x, x, debiased=debiased), torch.tensor(1.0).double())


def test_biased_unbiased_hsic_matches_the_gram_definition_of_song_et_al():
    x, y = correlated_pair(10, 4, 3, seed=9)
    n = x.shape[0]
    k, l_ = x @ x.T, y @ y.T
    k.fill_diagonal_(0)
    l_.fill_diagonal_(0)
    one = torch.ones(n, dtype=torch.float64)

    def hsic(a, b):
        return (
            torch.trace(a @ b)
            + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ a @ b @ one
        ) / (n * (n - 3))

    expected = hsic(k, l_) / torch.sqrt(hsic(k, k) * hsic(l_, l_))
    torch.testing.assert_close(linear_cka(x, y, debiased=True), expected)


@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_constant_features_give_zero_and_finite_gradients(debiased):
    x = torch.full((16, 4), 3.0, requires_grad=True)
    y = torch.randn(16, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    value = linear_cka(x, y, debiased=debiased)
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


@pytest.mark.parametrize("method", ["features", "gram"])
@pytest.mark.parametrize("debiased", ESTIMATORS)
@pytest.mark.parametrize(("n", "p", "q"), [(9, 4, 6), (6, 7, 5)])
def test_closed_form_gradient_matches_finite_differences(n, p, q, debiased, method):
    x, y = correlated_pair(n, p, q, seed=7 * n + p)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: linear_cka(a, b, debiased=debiased, method=method), (x, y)
    )


@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_gradient_through_pooled_maps_matches_finite_differences(debiased):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, 2, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.randn(8, 2, 2, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: linear_cka(a, b, debiased=debiased), (x, y))


@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_constant_features_give_an_exactly_zero_gradient(debiased):
    x = torch.full((16, 4), 3.0, dtype=torch.float64, requires_grad=True)
    y = torch.randn(16, 5, dtype=torch.float64, requires_grad=True)
    linear_cka(x, y, debiased=debiased).backward()
    assert torch.equal(x.grad, torch.zeros_like(x)) and torch.equal(y.grad, torch.zeros_like(y))


def test_autocast_does_not_lower_the_precision():
    x, y = correlated_pair(32, 6, 5, seed=4)
    x, y = x.float(), y.float()
    reference = linear_cka(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = linear_cka(x, y)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference)


def test_maps_are_pooled_by_default_and_flattened_on_request():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, 4, 4, generator=generator, dtype=torch.float64)
    y = torch.randn(8, 2, 4, 4, generator=generator, dtype=torch.float64)
    pooled = linear_cka(x, y, debiased=False)
    torch.testing.assert_close(pooled, linear_cka(x.mean((2, 3)), y.mean((2, 3)), debiased=False))
    flat = linear_cka(x, y, debiased=False, maps="flatten")
    torch.testing.assert_close(flat, linear_cka(x.flatten(1), y.flatten(1), debiased=False))


def test_debiased_estimator_is_centred_at_zero_for_independent_features():
    """Mean over R independent batches within 4 standard errors of the mean of zero."""
    generator = torch.Generator().manual_seed(11)
    repeats, n, p, q = 300, 16, 64, 32
    values = torch.stack(
        [
            linear_cka(
                torch.randn(n, p, generator=generator, dtype=torch.float64),
                torch.randn(n, q, generator=generator, dtype=torch.float64),
                debiased=True,
            )
            for _ in range(repeats)
        ]
    )
    standard_error = values.std() / math.sqrt(repeats)
    assert abs(values.mean()) <= 4 * standard_error


def test_biased_estimator_reads_about_095_at_batch_16_with_512_and_256_dims():
    """docs/THEORY.md S8: the biased estimator is far from zero for independent wide features."""
    generator = torch.Generator().manual_seed(12)
    repeats = 40
    values = torch.stack(
        [
            linear_cka(
                torch.randn(16, 512, generator=generator, dtype=torch.float64),
                torch.randn(16, 256, generator=generator, dtype=torch.float64),
                debiased=False,
            )
            for _ in range(repeats)
        ]
    )
    assert values.min() > 0.9
    assert round(expected_biased_cka_independent(16, 512, 256), 2) == 0.96


@pytest.mark.parametrize(("n", "p", "q"), [(16, 512, 256), (32, 8, 16), (64, 64, 64), (8, 4, 4)])
def test_expected_biased_value_matches_monte_carlo(n, p, q):
    """|MC mean - formula| <= 4 standard errors + formula x its delta-method remainder."""
    generator = torch.Generator().manual_seed(n * p + q)
    repeats = 200
    values = torch.stack(
        [
            linear_cka(
                torch.randn(n, p, generator=generator, dtype=torch.float64),
                torch.randn(n, q, generator=generator, dtype=torch.float64),
                debiased=False,
            )
            for _ in range(repeats)
        ]
    )
    expected = expected_biased_cka_independent(n, p, q)
    tolerance = 4 * float(values.std()) / math.sqrt(repeats)
    tolerance += expected * biased_cka_approximation_error(n, p, q)
    assert abs(float(values.mean()) - expected) <= tolerance


def test_bad_inputs_name_the_parameter():
    x = torch.randn(3, 2)
    with pytest.raises(InvalidParameterError, match="batch of at least 4"):
        linear_cka(x, x, debiased=True)
    with pytest.raises(InvalidParameterError, match="same batch size"):
        linear_cka(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(InvalidParameterError, match="maps: expected one of"):
        linear_cka(torch.randn(5, 2), torch.randn(5, 2), maps="crop")
    with pytest.raises(InvalidParameterError, match=r"x: expected vectors \(B, d\) or maps"):
        linear_cka(torch.randn(5, 2, 3), torch.randn(5, 2))
    with pytest.raises(InvalidParameterError, match="method: expected"):
        linear_cka(torch.randn(5, 2), torch.randn(5, 2), method="fast")
    with pytest.raises(InvalidParameterError, match="batch_size: expected at least 2"):
        expected_biased_cka_independent(1, 3, 3)
    with pytest.raises(InvalidParameterError, match="dim_x: expected a positive integer"):
        expected_biased_cka_independent(4, 0, 3)


@pytest.mark.parametrize("scale", [1e-20, 1e-12, 1e9, 1e12, 1e20])
@pytest.mark.parametrize("debiased", [True, False])
def test_float32_cka_is_scale_free_far_from_unit_scale(scale, debiased):
    """CKA(sX, X) = 1 and CKA(sX, Y) = CKA(X, Y) in float32 at scales whose fourth powers
    overflow or underflow, and the gradient scales as 1/s."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=generator), torch.randn(32, 3, generator=generator)
    assert float(linear_cka(x * scale, x, debiased)) == pytest.approx(1.0, abs=1e-6)
    reference = x.clone().requires_grad_()
    expected = linear_cka(reference, y, debiased)
    expected.backward()
    scaled = (x * scale).requires_grad_()
    value = linear_cka(scaled, y, debiased)
    value.backward()
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-5, abs=1e-6)
    assert torch.allclose(scaled.grad * scale, reference.grad, rtol=1e-4, atol=1e-6)
