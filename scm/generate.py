"""Seeded construction of SCMs for setting S, with explicit control of the residual shift."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.stats import ortho_group

from scm.mixing import NonlinearMixing
from scm.model import LinearGaussianSCM, ResidualLaw
from scm.validation import (
    InvalidParameterError,
    as_finite_array,
    check_covariance,
    check_in_range,
    check_positive_int,
    check_seed,
)

ShiftDirection = Literal["random", "worst", "orthogonal", "shrink"]
SHIFT_DIRECTIONS: tuple[str, ...] = ("random", "worst", "orthogonal", "shrink")


def random_psd(k: int, rng: np.random.Generator, min_eigenvalue: float = 0.1) -> np.ndarray:
    """A random positive-definite matrix ``A A^T / k + min_eigenvalue I`` with Gaussian ``A``."""
    k = check_positive_int(k, "k")
    a = rng.standard_normal((k, k))
    return a @ a.T / k + min_eigenvalue * np.eye(k)


def haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal n x n matrix (scipy's ``ortho_group``)."""
    n = check_positive_int(n, "n")
    if n == 1:
        return np.array([[1.0 if rng.random() < 0.5 else -1.0]])
    return ortho_group.rvs(n, random_state=rng)


def shifted_covariance(
    source_cov,
    size: float,
    direction: ShiftDirection = "random",
    rng: np.random.Generator | None = None,
    head=None,
) -> np.ndarray:
    """A target covariance ``Sigma_T`` with ``||Sigma_T - Sigma_S||_F = size``.

    - ``random``: ``Sigma_S + size * M / ||M||_F`` with ``M = B B^T`` for Gaussian ``B`` (PSD increase).
    - ``worst``: ``Sigma_S + size * w w^T / ||w||^2`` for the given ``head`` (S2's maximiser).
    - ``orthogonal``: ``Sigma_S + size * u u^T`` with a unit ``u`` orthogonal to ``head``; the gap of
      that head is unchanged (S2's counterexample; needs k >= 2).
    - ``shrink``: ``(1 - size / ||Sigma_S||_F) Sigma_S``, shrinking residual variance
      (needs ``size <= ||Sigma_S||_F``).
    """
    source_cov = check_covariance(source_cov, "source_cov")
    size = check_in_range(size, "shift_size", 0.0, np.inf)
    k = source_cov.shape[0]
    rng = np.random.default_rng() if rng is None else rng
    if direction == "random":
        b = rng.standard_normal((k, k))
        m = b @ b.T
        return source_cov + size * m / np.linalg.norm(m, "fro")
    if direction in ("worst", "orthogonal"):
        if head is None:
            raise InvalidParameterError(f"head: shift direction {direction!r} needs a head w")
        head = as_finite_array(head, "head", ndim=1)
        if head.shape != (k,) or not np.any(head):
            raise InvalidParameterError(f"head: expected a non-zero vector of shape ({k},)")
        unit = head / np.linalg.norm(head)
        if direction == "worst":
            return source_cov + size * np.outer(unit, unit)
        if k < 2:
            raise InvalidParameterError("k: an orthogonal shift needs k >= 2 residual factors")
        candidate = rng.standard_normal(k)
        candidate -= (candidate @ unit) * unit
        candidate /= np.linalg.norm(candidate)
        return source_cov + size * np.outer(candidate, candidate)
    if direction == "shrink":
        norm = float(np.linalg.norm(source_cov, "fro"))
        if size > norm:
            raise InvalidParameterError(
                f"shift_size: a shrinking shift needs size <= ||Sigma_S||_F = {norm:.4g}, got {size}"
            )
        return (1.0 - size / norm) * source_cov
    raise InvalidParameterError(
        f"shift_direction: expected one of {SHIFT_DIRECTIONS}, got {direction!r}"
    )


def random_scm(
    k: int = 2,
    num_tasks: int = 2,
    seed: int = 0,
    shift_size: float = 1.0,
    shift_direction: ShiftDirection = "random",
    mean_shift: float = 0.0,
    mixing: Literal["identity", "haar"] = "identity",
    rho: float = 0.0,
    noise_std: float = 0.1,
    nonlinear_strength: float | None = None,
    shift_head=None,
) -> LinearGaussianSCM:
    """A seeded random SCM of setting S.

    ``Sigma_s`` and ``Sigma_S`` are random positive-definite matrices, ``mu_S = 0``,
    ``beta_t ~ N(0, I_k)``, ``Sigma_T`` from :func:`shifted_covariance` and
    ``mu_T = mean_shift * u`` with a uniformly random unit ``u``. ``shift_head`` is the head used
    by the ``worst``/``orthogonal`` directions (default: the first task's ``beta``).
    """
    k = check_positive_int(k, "k")
    num_tasks = check_positive_int(num_tasks, "num_tasks")
    check_in_range(noise_std, "noise_std", 0.0, np.inf)
    mean_shift = check_in_range(mean_shift, "mean_shift", 0.0, np.inf)
    seed = check_seed(seed, "seed")
    rng = np.random.default_rng(seed)
    sigma_s = random_psd(k, rng)
    source_cov = random_psd(k, rng)
    beta = rng.standard_normal((num_tasks, k))
    head = beta[0] if shift_head is None else shift_head
    target_cov = shifted_covariance(source_cov, shift_size, shift_direction, rng, head)
    direction = rng.standard_normal(k)
    target_mean = mean_shift * direction / np.linalg.norm(direction)
    if mixing == "identity":
        mixing_matrix = np.eye(2 * k)
    elif mixing == "haar":
        mixing_matrix = haar_orthogonal(2 * k, rng)
    else:
        raise InvalidParameterError(f"mixing: expected 'identity' or 'haar', got {mixing!r}")
    nonlinear = None
    if nonlinear_strength is not None:
        nonlinear = NonlinearMixing(haar_orthogonal(2 * k, rng), nonlinear_strength)
    return LinearGaussianSCM(
        sigma_s=sigma_s,
        source=ResidualLaw(np.zeros(k), source_cov),
        target=ResidualLaw(target_mean, target_cov),
        beta=beta,
        noise_std=np.full(num_tasks, noise_std),
        mixing=mixing_matrix,
        rho=rho,
        nonlinear=nonlinear,
    )


def scalar_scm(
    source_variance: float,
    target_variance: float | None = None,
    beta: float = 1.0,
    noise_std: float = 0.1,
    num_tasks: int = 1,
) -> LinearGaussianSCM:
    """The scalar SCM of S4 and S6: ``k = 1``, ``Sigma_s = 1``, ``Sigma_S = v``, zero means."""
    target_variance = source_variance if target_variance is None else target_variance
    return LinearGaussianSCM(
        sigma_s=np.eye(1),
        source=ResidualLaw(np.zeros(1), np.array([[source_variance]])),
        target=ResidualLaw(np.zeros(1), np.array([[target_variance]])),
        beta=np.full((num_tasks, 1), beta),
        noise_std=np.full(num_tasks, noise_std),
    )
