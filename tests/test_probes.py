"""Probes: leakage through the known generator, gradient alignment, substitution stability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import scm
from coremtl.forward import Forward
from coremtl.probes import (
    alignment_probe,
    gradient_alignment,
    leakage_coefficient,
    leakage_jacobian_norms,
    substitution_stability,
)
from coremtl.representation import DualStreamModel, StreamSplit
from scm.validation import InvalidParameterError


def linear_model(encoder: np.ndarray, k: int) -> DualStreamModel:
    """``(Z_s, Z_r) = E x`` as a dual-stream model (identity encoder, linear split)."""
    split = StreamSplit(2 * k, k, k).double()
    with torch.no_grad():
        split.projection.weight.copy_(torch.as_tensor(encoder))
        split.projection.bias.zero_()
    return DualStreamModel(nn.Identity(), split, {"t": nn.Linear(k, 1).double()})


def latents(model_scm, n: int, seed: int) -> torch.Tensor:
    drawn = scm.sample(model_scm, n, seed=seed)
    return torch.as_tensor(np.concatenate([drawn.z_s, drawn.z_r], axis=1))


@pytest.mark.parametrize("psi", [0.0, 0.3, 1.0, math.pi / 2])
def test_leakage_of_the_setting_s_encoder_is_sin_psi(psi):
    model_scm = scm.random_scm(k=3, num_tasks=1, seed=4)
    model = linear_model(scm.encoder_matrix(model_scm, psi), 3)
    value = leakage_coefficient(model, model_scm, latents(model_scm, 5, 0))
    assert value == pytest.approx(scm.leakage_coefficient(psi), abs=1e-12)


def test_leakage_of_any_linear_encoder_matches_the_closed_form():
    model_scm = scm.random_scm(k=2, num_tasks=1, seed=1)
    encoder = np.random.default_rng(0).standard_normal((4, 4))
    value = leakage_coefficient(linear_model(encoder, 2), model_scm, latents(model_scm, 4, 1))
    assert value == pytest.approx(scm.linear_encoder_leakage(model_scm, encoder), rel=1e-12)


def test_leakage_through_a_nonlinear_mixing_is_the_largest_jacobian_norm():
    """Per point: ||E_s Q diag(f'(G z)) G_r||_op with f'(u) = 1 + a sech^2(u)."""
    model_scm = scm.random_scm(k=2, num_tasks=1, seed=2, nonlinear_strength=0.8)
    encoder = np.random.default_rng(1).standard_normal((4, 4))
    z = latents(model_scm, 6, 2)
    norms = leakage_jacobian_norms(linear_model(encoder, 2), model_scm, z).numpy()
    mixed = z.numpy() @ model_scm.mixing.T
    jacobians = model_scm.nonlinear.jacobian(mixed) @ model_scm.mixing[:, 2:]
    expected = np.linalg.norm(encoder[:2] @ jacobians, ord=2, axis=(1, 2))
    np.testing.assert_allclose(norms, expected, rtol=1e-10)


def split_forward(semantic_rows: torch.Tensor, residual_rows: torch.Tensor, batch: int = 5):
    features = torch.randn(batch, semantic_rows.shape[1], dtype=torch.float64, requires_grad=True)
    return Forward(
        predictions={},
        shared=features,
        z_s=features @ semantic_rows.T,
        z_r=features @ residual_rows.T,
    )


def test_gradient_alignment_matches_the_s7_formula_for_linear_streams():
    """g_task = delta_s P_s and g_res = 1 P_r per row: cos^2 from the flattened gradients."""
    generator = torch.Generator().manual_seed(0)
    p_s = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    p_r = torch.randn(2, 6, generator=generator, dtype=torch.float64)
    forward = split_forward(p_s, p_r)
    delta = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    value = gradient_alignment(forward, (delta * forward.z_s).sum())
    g_task, g_res = (delta @ p_s).flatten(), (torch.ones(5, 2, dtype=torch.float64) @ p_r).flatten()
    expected = (g_task @ g_res) ** 2 / (g_task @ g_task * (g_res @ g_res))
    assert value == pytest.approx(float(expected), rel=1e-12)


def test_gradient_alignment_is_zero_for_orthogonal_and_one_for_identical_streams():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    orthogonal = split_forward(q[:3], q[3:5])
    delta = torch.randn(5, 3, dtype=torch.float64)
    assert gradient_alignment(orthogonal, (delta * orthogonal.z_s).sum()) == pytest.approx(
        0.0, abs=1e-24
    )
    identical = split_forward(q[:2], q[:2])
    assert gradient_alignment(identical, identical.z_s.sum()) == pytest.approx(1.0, rel=1e-12)


def test_alignment_probe_reports_cos2_and_both_cka_estimators():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    forward = split_forward(q[:2], q[:2], batch=8)
    forward.predictions["t"] = forward.z_s[:, :1]
    probe = alignment_probe(lambda predictions, batch: {"t": predictions["t"].sum()})
    values = probe(None, {}, forward, 0)
    assert set(values) == {"cos2", "cka_debiased", "cka_biased"}
    assert values["cka_biased"] == pytest.approx(1.0)


def test_substitution_stability_is_infinite_without_leakage_and_finite_with_it():
    model_scm = scm.random_scm(k=2, num_tasks=1, seed=3)
    drawn = scm.sample(model_scm, 64, seed=3)
    swapped = model_scm.observe(np.concatenate([drawn.z_s, np.roll(drawn.z_r, 1, axis=0)], axis=1))
    x, x_swapped = torch.as_tensor(drawn.x), torch.as_tensor(swapped)
    clean = substitution_stability(
        linear_model(scm.encoder_matrix(model_scm, 0.0), 2), x, x_swapped
    )
    assert clean["dZ_s"] == pytest.approx(0.0, abs=1e-12) and clean["dZ_r"] > 0
    assert clean["ratio"] == math.inf
    leaky = substitution_stability(
        linear_model(scm.encoder_matrix(model_scm, 0.4), 2), x, x_swapped
    )
    assert 0 < leaky["dZ_s"] < leaky["dZ_r"]
    assert leaky["ratio"] == pytest.approx(leaky["dZ_r"] / leaky["dZ_s"])


def test_bad_inputs_name_the_parameter():
    model_scm = scm.random_scm(k=2, num_tasks=1, seed=0)
    model = linear_model(np.eye(4), 2)
    with pytest.raises(InvalidParameterError, match=r"z: expected shape \(n, 4\)"):
        leakage_coefficient(model, model_scm, torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="x_substituted: expected the shape of x"):
        substitution_stability(model, torch.zeros(3, 4), torch.zeros(2, 4))
