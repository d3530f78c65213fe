"""Order-2 SH lighting, shading and the sRGB curve of ``coremtl.lighting``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sh_reference import reference_sh_basis

from coremtl.lighting import (
    SH_CONSTANTS,
    directional_light_coefficients,
    linear_to_srgb,
    sh_basis,
    shade,
    srgb_to_linear,
)
from scm.validation import InvalidParameterError

CONSTANT_ROUNDING = 5e-7 / min(SH_CONSTANTS)
"""Relative error of the 6-digit SH constants; products of two carry at most twice this."""


def sphere_quadrature(z_low: float, z_high: float, nodes: int = 24) -> tuple[torch.Tensor, ...]:
    """Gauss-Legendre in ``z`` on ``[z_low, z_high]`` times the uniform rule in azimuth: exact for
    polynomials in ``(x, y, z)`` of degree below ``nodes`` (SH products have degree <= 4)."""
    z_nodes, z_weights = np.polynomial.legendre.leggauss(nodes)
    z = 0.5 * (z_high - z_low) * z_nodes + 0.5 * (z_high + z_low)
    z_weights = 0.5 * (z_high - z_low) * z_weights
    phi = 2.0 * math.pi * np.arange(2 * nodes) / (2 * nodes)
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    radius = np.sqrt(1.0 - zz**2)
    normals = np.stack([radius * np.cos(pp), radius * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    weights = (z_weights[:, None] * np.full(phi.shape, 2.0 * math.pi / phi.size)).reshape(-1)
    return torch.from_numpy(normals), torch.from_numpy(weights)


def random_unit_vectors(n: int, seed: int) -> torch.Tensor:
    vectors = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return vectors / vectors.norm(dim=-1, keepdim=True)


def test_sh_basis_is_orthonormal_on_the_sphere():
    normals, weights = sphere_quadrature(-1.0, 1.0)
    basis = sh_basis(normals)
    gram = basis.T @ (basis * weights[:, None])
    assert torch.allclose(gram, torch.eye(9, dtype=gram.dtype), atol=4 * CONSTANT_ROUNDING)


def test_sh_basis_matches_the_ramamoorthi_hanrahan_polynomials():
    normals = random_unit_vectors(50, seed=0)
    x, y, z = normals.unbind(-1)
    expected = reference_sh_basis(x, y, z)
    assert torch.allclose(sh_basis(normals), expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("channel_dim", [-1, 1])
def test_shade_equals_the_clamped_sh_formula_per_channel(channel_dim):
    normals = random_unit_vectors(2 * 5 * 7, seed=1).reshape(2, 5, 7, 3)
    coefficients = torch.randn(
        2, 3, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    expected = torch.empty(2, 5, 7, 3, dtype=torch.float64)
    basis = sh_basis(normals)
    for b in range(2):
        for c in range(3):
            expected[b, ..., c] = torch.clamp((basis[b] * coefficients[b, c]).sum(-1), min=0.0)
    arranged = normals.movedim(-1, channel_dim)
    shading = shade(arranged, coefficients, channel_dim=channel_dim)
    assert torch.allclose(shading.movedim(channel_dim, -1), expected, atol=1e-12)
    assert (expected == 0).any() and (expected > 0).any()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_directional_light_coefficients_are_the_sh_projection_of_the_clamped_cosine(sign):
    direction = torch.tensor([[0.0, 0.0, sign]], dtype=torch.float64)
    colour = torch.tensor([[1.0, 0.5, 0.25]], dtype=torch.float64)
    coefficients = directional_light_coefficients(direction, colour, ambient=0.0)[0]
    upper, upper_weights = sphere_quadrature(0.0, 1.0)
    lower, lower_weights = sphere_quadrature(-1.0, 0.0)
    normals = torch.cat([upper, lower])
    weights = torch.cat([upper_weights, lower_weights])
    cosine = torch.clamp(normals @ direction[0], min=0.0)
    projection = (sh_basis(normals) * (cosine * weights)[:, None]).sum(0)
    expected = colour[0, :, None] * projection
    assert torch.allclose(coefficients, expected, atol=4 * CONSTANT_ROUNDING)


def test_ambient_term_adds_a_constant_shading():
    normals = random_unit_vectors(30, seed=3).reshape(1, 30, 3)
    direction = torch.tensor([[0.3, -0.8, -0.5]], dtype=torch.float64)
    colour = torch.tensor([[0.9, 0.8, 0.7]], dtype=torch.float64)
    ambient = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    plain = directional_light_coefficients(direction, colour)
    lifted = directional_light_coefficients(direction, colour, ambient)
    difference = sh_basis(normals)[0] @ (lifted - plain)[0].T
    assert torch.allclose(difference, ambient.expand(30, 3), atol=1e-12)


def test_srgb_curve_round_trips_and_matches_reference_values():
    encoded = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(encoded)), encoded, atol=1e-12)
    reference = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(
        srgb_to_linear(reference),
        torch.tensor([0.0, 0.214041, 1.0], dtype=torch.float64),
        atol=1e-6,
    )


def test_srgb_curve_has_finite_gradients_at_zero_and_at_the_threshold():
    values = torch.tensor([0.0, 0.0031308, 0.04045, 1.0], dtype=torch.float64, requires_grad=True)
    (linear_to_srgb(values).sum() + srgb_to_linear(values).sum()).backward()
    assert torch.isfinite(values.grad).all()


def test_bad_shapes_name_the_parameter():
    with pytest.raises(InvalidParameterError, match="normals: expected a last dimension of size 3"):
        sh_basis(torch.zeros(4, 2))
    with pytest.raises(InvalidParameterError, match=r"coefficients: expected shape \(B, C, 9\)"):
        shade(torch.zeros(1, 4, 3), torch.zeros(1, 3, 4))
    with pytest.raises(InvalidParameterError, match="batch sizes differ"):
        shade(torch.zeros(2, 4, 3), torch.zeros(1, 3, 9))


def test_shade_with_gradients_matches_the_fixed_order_sum_and_passes_gradcheck():
    normals = random_unit_vectors(2 * 6, seed=4).reshape(2, 6, 3).requires_grad_()
    coefficients = torch.randn(
        2, 3, 9, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    coefficients[..., 0] += 10.0
    coefficients.requires_grad_()
    with torch.no_grad():
        plain = shade(normals, coefficients)
    tracked = shade(normals, coefficients)
    assert torch.allclose(tracked, plain, atol=1e-12)
    assert torch.autograd.gradcheck(shade, (normals, coefficients))
