"""Sampling: determinism per seed, backends, and the nonlinear mixing's inverse and Jacobian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scm import random_scm, sample


@pytest.fixture(params=[None, 1.5], ids=["linear", "nonlinear"])
def scm(request):
    return random_scm(
        k=3, num_tasks=4, seed=11, mixing="haar", rho=0.3, nonlinear_strength=request.param
    )


def test_same_seed_gives_the_same_samples(scm):
    a, b = sample(scm, 100, "source", seed=5), sample(scm, 100, "source", seed=5)
    for name in ("x", "z_s", "z_r", "y"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_give_different_samples(scm):
    a, b = sample(scm, 100, "source", seed=5), sample(scm, 100, "source", seed=6)
    assert not np.allclose(a.x, b.x)


def test_shapes_follow_k_and_the_task_count(scm):
    drawn = sample(scm, 7, "target", seed=0)
    assert drawn.x.shape == (7, 6) and drawn.z_s.shape == (7, 3)
    assert drawn.z_r.shape == (7, 3) and drawn.y.shape == (7, 4)


def test_torch_backend_returns_the_same_draws_as_numpy(scm):
    as_numpy = sample(scm, 50, "source", seed=3)
    as_torch = sample(scm, 50, "source", seed=3, backend="torch", device="cpu")
    assert as_torch["x"].dtype == torch.float32 and as_torch["x"].device.type == "cpu"
    np.testing.assert_allclose(as_torch["x"].numpy(), as_numpy.x, rtol=1e-6, atol=1e-6)


def test_unmix_inverts_the_observation(scm):
    drawn = sample(scm, 200, "target", seed=1)
    latents = np.concatenate([drawn.z_s, drawn.z_r], axis=1)
    np.testing.assert_allclose(scm.unmix(drawn.x), latents, atol=1e-8)


def test_observation_is_differentiable_in_torch_and_matches_numpy(scm):
    latents = np.random.default_rng(0).standard_normal((4, 6))
    as_torch = scm.observe(torch.tensor(latents, requires_grad=True))
    np.testing.assert_allclose(as_torch.detach().numpy(), scm.observe(latents), atol=1e-12)


def test_nonlinear_jacobian_matches_finite_differences():
    scm = random_scm(k=2, num_tasks=1, seed=2, nonlinear_strength=2.0)
    u = np.random.default_rng(1).standard_normal((1, 4))
    step = 1e-6
    numeric = np.stack(
        [
            (scm.nonlinear.forward(u + step * e) - scm.nonlinear.forward(u - step * e))[0]
            / (2 * step)
            for e in np.eye(4)
        ],
        axis=1,
    )
    np.testing.assert_allclose(scm.nonlinear.jacobian(u)[0], numeric, atol=1e-6)


def test_source_only_correlation_is_absent_in_the_target():
    scm = random_scm(k=1, num_tasks=1, seed=0, rho=0.9)
    n = 20_000
    source, target = sample(scm, n, "source", seed=0), sample(scm, n, "target", seed=0)
    # the sample correlation has standard error (1 - r^2) / sqrt(n); allow 5 of them
    source_corr = np.corrcoef(source.z_s[:, 0], source.z_r[:, 0])[0, 1]
    assert source_corr == pytest.approx(0.9, abs=5 * (1 - 0.81) / np.sqrt(n))
    assert abs(np.corrcoef(target.z_s[:, 0], target.z_r[:, 0])[0, 1]) < 5 / np.sqrt(n)
