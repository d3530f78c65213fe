"""Vectorised Monte Carlo sampling from either environment of an SCM."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scm.model import Environment, LinearGaussianSCM
from scm.validation import InvalidParameterError, check_positive_int, psd_sqrt


@dataclass(frozen=True)
class Sample:
    """``n`` draws: observations ``x`` (n, 2k), latents ``z_s``, ``z_r`` (n, k), targets ``y`` (n, K)."""

    x: np.ndarray
    z_s: np.ndarray
    z_r: np.ndarray
    y: np.ndarray

    def to_torch(self, device=None, dtype=None) -> dict:
        """The arrays as torch tensors on ``device`` (default float32)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype
        return {
            name: torch.as_tensor(getattr(self, name), dtype=dtype, device=device)
            for name in ("x", "z_s", "z_r", "y")
        }


def sample(
    scm: LinearGaussianSCM,
    n: int,
    env: Environment = "source",
    seed: int | np.random.Generator | None = 0,
    backend: str = "numpy",
    device=None,
):
    """Draw ``n`` samples of ``(x, z_s, z_r, y)`` from ``env``.

    One block of ``n x (2k + K)`` standard normals ``[u, xi, e]`` is drawn, then
    ``Z_s = u L_s``, ``Z_r = mu + (rho u + sqrt(1 - rho^2) xi) L_e`` (``rho`` only in the source),
    ``Y = Z_s beta^T + e diag(sigma)`` and ``x = observe([Z_s, Z_r])``.
    The same seed gives the same draws whatever the backend. ``backend='torch'`` returns a dict of
    float32 tensors on ``device``.
    """
    n = check_positive_int(n, "n")
    if backend not in ("numpy", "torch"):
        raise InvalidParameterError(f"backend: expected 'numpy' or 'torch', got {backend!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    k, num_tasks = scm.k, scm.num_tasks
    law = scm.law(env)
    noise = rng.standard_normal((n, 2 * k + num_tasks))
    u, xi, e = noise[:, :k], noise[:, k : 2 * k], noise[:, 2 * k :]
    z_s = u @ psd_sqrt(scm.sigma_s)
    rho = scm.rho if env == "source" else 0.0
    residual_noise = xi if rho == 0.0 else rho * u + np.sqrt(1.0 - rho * rho) * xi
    z_r = residual_noise @ psd_sqrt(law.cov) + law.mean
    y = z_s @ scm.beta.T + e * scm.noise_std
    x = scm.observe(z_s, z_r)
    drawn = Sample(x=x, z_s=z_s, z_r=z_r, y=y)
    return drawn.to_torch(device) if backend == "torch" else drawn
