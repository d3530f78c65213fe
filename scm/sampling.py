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

    One block of ``n x (2k + K)`` standard normals ``[u, xi, e]`` is drawn, and every output is
    linear in it: ``Z_s = u L_s``, ``Z_r = mu + (rho u + sqrt(1 - rho^2) xi) L_e`` (``rho`` only
    in the source), ``Y = Z_s beta^T + e diag(sigma)`` and ``G [Z_s; Z_r]``, so all four come from
    one matrix product ``[u, xi, e] M`` (:func:`sampling_matrix`) plus the mean offsets; the
    nonlinear mixing, when present, is applied to ``G [Z_s; Z_r]`` afterwards.
    The same seed gives the same draws whatever the backend. ``backend='torch'`` returns a dict of
    float32 tensors on ``device``.
    """
    n = check_positive_int(n, "n")
    if backend not in ("numpy", "torch"):
        raise InvalidParameterError(f"backend: expected 'numpy' or 'torch', got {backend!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    k, num_tasks = scm.k, scm.num_tasks
    noise = rng.standard_normal((n, 2 * k + num_tasks))
    outputs = noise @ sampling_matrix(scm, env)
    outputs += sampling_offset(scm, env)
    z_s, z_r = outputs[:, :k], outputs[:, k : 2 * k]
    y, x = outputs[:, 2 * k : 2 * k + num_tasks], outputs[:, 2 * k + num_tasks :]
    if scm.nonlinear is not None:
        x = scm.nonlinear.forward(x)
    drawn = Sample(x=x, z_s=z_s, z_r=z_r, y=y)
    return drawn.to_torch(device) if backend == "torch" else drawn


def sampling_matrix(scm: LinearGaussianSCM, env: Environment) -> np.ndarray:
    """``M`` of shape ``(2k + K, 4k + K)`` mapping ``[u, xi, e]`` to ``[Z_s, Z_r, Y, G Z]`` minus means.

    Row blocks ``u, xi, e``; column blocks ``Z_s, Z_r, Y, x``; with ``G = [G_s, G_r]``:
    ``u -> (L_s, rho L_e, L_s beta^T, L_s G_s^T + rho L_e G_r^T)``,
    ``xi -> (0, r L_e, 0, r L_e G_r^T)`` with ``r = sqrt(1 - rho^2)``, ``e -> (0, 0, diag(sigma), 0)``.
    """
    k, num_tasks = scm.k, scm.num_tasks
    root_s, root_e = psd_sqrt(scm.sigma_s), psd_sqrt(scm.law(env).cov)
    rho = scm.rho if env == "source" else 0.0
    residual_from_u, residual_from_xi = rho * root_e, np.sqrt(1.0 - rho * rho) * root_e
    g_s, g_r = scm.mixing[:, :k].T, scm.mixing[:, k:].T
    matrix = np.zeros((2 * k + num_tasks, 4 * k + num_tasks))
    u_rows, xi_rows, e_rows = slice(0, k), slice(k, 2 * k), slice(2 * k, 2 * k + num_tasks)
    z_s_cols, z_r_cols = slice(0, k), slice(k, 2 * k)
    y_cols, x_cols = slice(2 * k, 2 * k + num_tasks), slice(2 * k + num_tasks, None)
    matrix[u_rows, z_s_cols] = root_s
    matrix[u_rows, z_r_cols] = residual_from_u
    matrix[u_rows, y_cols] = root_s @ scm.beta.T
    matrix[u_rows, x_cols] = root_s @ g_s + residual_from_u @ g_r
    matrix[xi_rows, z_r_cols] = residual_from_xi
    matrix[xi_rows, x_cols] = residual_from_xi @ g_r
    matrix[e_rows, y_cols] = np.diag(scm.noise_std)
    return matrix


def sampling_offset(scm: LinearGaussianSCM, env: Environment) -> np.ndarray:
    """The means of ``[Z_s, Z_r, Y, G Z]``: ``(0, mu_e, 0, mu_e G_r^T)``."""
    k, num_tasks = scm.k, scm.num_tasks
    mean = scm.law(env).mean
    return np.concatenate([np.zeros(k), mean, np.zeros(num_tasks), mean @ scm.mixing[:, k:].T])
