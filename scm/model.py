"""The linear-Gaussian structural causal model of setting S (docs/THEORY.md).

- Semantic factors ``Z_s ~ N(0, Sigma_s)`` in R^k, the same in every environment.
- Residual factors ``Z_r ~ N(mu_e, Sigma_e)`` in R^k for ``e in {source, target}``.
- Optional source-only correlation ``rho``: with symmetric square roots ``L_s = Sigma_s^{1/2}``,
  ``L_S = Sigma_S^{1/2}`` and ``u, xi ~ N(0, I)`` independent,
  ``Z_s = L_s u`` and ``Z_r = mu_S + L_S (rho u + sqrt(1 - rho^2) xi)``, so that
  ``Cov(Z_r) = Sigma_S`` and ``Cov(Z_r, Z_s) = rho L_S L_s`` (PSD joint law for ``|rho| <= 1``).
- Observation ``x = G [Z_s; Z_r]`` with ``G`` orthogonal, or ``x = g(G [Z_s; Z_r])`` with an
  invertible nonlinear ``g`` (``scm.mixing``).
- Tasks ``Y_t = beta_t^T Z_s + eps_t``, ``eps_t ~ N(0, sigma_t^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from scm.mixing import NonlinearMixing
from scm.validation import (
    InvalidParameterError,
    as_finite_array,
    check_covariance,
    check_in_range,
    check_orthogonal,
    check_shape,
    psd_sqrt,
)

Environment = Literal["source", "target"]
ENVIRONMENTS: tuple[str, str] = ("source", "target")


@dataclass(frozen=True)
class ResidualLaw:
    """The Gaussian law ``N(mean, cov)`` of the residual factors in one environment."""

    mean: np.ndarray
    cov: np.ndarray

    def __post_init__(self) -> None:
        mean = as_finite_array(self.mean, "residual mean", ndim=1)
        cov = check_covariance(self.cov, "residual covariance", dim=mean.shape[0])
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)


@dataclass(frozen=True)
class LinearGaussianSCM:
    """Setting S. Arrays are validated and stored as float64; the object is immutable."""

    sigma_s: np.ndarray
    source: ResidualLaw
    target: ResidualLaw
    beta: np.ndarray
    noise_std: np.ndarray
    mixing: np.ndarray | None = None
    rho: float = 0.0
    nonlinear: NonlinearMixing | None = field(default=None)

    def __post_init__(self) -> None:
        sigma_s = check_covariance(self.sigma_s, "sigma_s")
        k = sigma_s.shape[0]
        if k < 1:
            raise InvalidParameterError("sigma_s: expected at least one semantic factor (k >= 1)")
        for name, law in (("source", self.source), ("target", self.target)):
            if not isinstance(law, ResidualLaw):
                raise InvalidParameterError(f"{name}: expected a ResidualLaw")
            if law.mean.shape != (k,):
                raise InvalidParameterError(
                    f"{name}.mean: expected shape ({k},) to match sigma_s, got {law.mean.shape}"
                )
        beta = as_finite_array(self.beta, "beta", ndim=2)
        if beta.shape[1] != k or beta.shape[0] < 1:
            raise InvalidParameterError(
                f"beta: expected shape (K, {k}) with K >= 1, got {beta.shape}"
            )
        noise_std = as_finite_array(self.noise_std, "noise_std", ndim=1)
        check_shape(noise_std, (beta.shape[0],), "noise_std")
        if np.any(noise_std < 0):
            raise InvalidParameterError("noise_std: expected non-negative standard deviations")
        mixing = np.eye(2 * k) if self.mixing is None else self.mixing
        mixing = check_orthogonal(mixing, "mixing", dim=2 * k)
        rho = check_in_range(self.rho, "rho", -1.0, 1.0)
        if self.nonlinear is not None and self.nonlinear.dim != 2 * k:
            raise InvalidParameterError(
                f"nonlinear: expected a mixing of dimension {2 * k}, got {self.nonlinear.dim}"
            )
        object.__setattr__(self, "sigma_s", sigma_s)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "noise_std", noise_std)
        object.__setattr__(self, "mixing", mixing)
        object.__setattr__(self, "rho", rho)

    @property
    def k(self) -> int:
        """Number of semantic (and of residual) factors."""
        return self.sigma_s.shape[0]

    @property
    def num_tasks(self) -> int:
        """Number of tasks K."""
        return self.beta.shape[0]

    def law(self, env: Environment) -> ResidualLaw:
        """The residual law of ``env``."""
        if env == "source":
            return self.source
        if env == "target":
            return self.target
        raise InvalidParameterError(f"env: expected 'source' or 'target', got {env!r}")

    def cross_covariance(self, env: Environment) -> np.ndarray:
        """``Cov(Z_r, Z_s)``: ``rho Sigma_S^{1/2} Sigma_s^{1/2}`` in the source, zero in the target."""
        law = self.law(env)
        if env == "target" or self.rho == 0.0:
            return np.zeros((self.k, self.k))
        return self.rho * psd_sqrt(law.cov) @ psd_sqrt(self.sigma_s)

    def joint_covariance(self, env: Environment) -> np.ndarray:
        """Covariance of ``[Z_s; Z_r]`` in ``env`` (2k x 2k)."""
        cross = self.cross_covariance(env)
        return np.block([[self.sigma_s, cross.T], [cross, self.law(env).cov]])

    def joint_mean(self, env: Environment) -> np.ndarray:
        """Mean of ``[Z_s; Z_r]`` in ``env``."""
        return np.concatenate([np.zeros(self.k), self.law(env).mean])

    def residual_shift_frobenius(self) -> float:
        """``||Sigma_T - Sigma_S||_F``."""
        return float(np.linalg.norm(self.target.cov - self.source.cov, "fro"))

    def observe(self, z):
        """``x = G z`` (or ``g(G z)``) for latents ``z = [z_s, z_r]`` of shape (n, 2k)."""
        if isinstance(z, np.ndarray):
            mixed = z @ self.mixing.T
        else:
            import torch

            mixed = z @ torch.as_tensor(self.mixing.T, dtype=z.dtype, device=z.device)
        return mixed if self.nonlinear is None else self.nonlinear.forward(mixed)

    def unmix(self, x: np.ndarray) -> np.ndarray:
        """The latents ``z = G^T g^{-1}(x)`` of observations ``x`` (n, 2k)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 2 * self.k:
            raise InvalidParameterError(f"x: expected shape (n, {2 * self.k}), got {x.shape}")
        if self.nonlinear is not None:
            x = self.nonlinear.inverse(x)
        return x @ self.mixing

    def with_target(self, mean: np.ndarray | None = None, cov: np.ndarray | None = None):
        """A copy with the target residual law replaced (unspecified parts kept)."""
        target = ResidualLaw(
            self.target.mean if mean is None else mean, self.target.cov if cov is None else cov
        )
        return replace(self, target=target)

    def describe(self) -> dict:
        """A JSON-serialisable description of every parameter."""
        return {
            "k": self.k,
            "num_tasks": self.num_tasks,
            "sigma_s": self.sigma_s.tolist(),
            "source": {"mean": self.source.mean.tolist(), "cov": self.source.cov.tolist()},
            "target": {"mean": self.target.mean.tolist(), "cov": self.target.cov.tolist()},
            "beta": self.beta.tolist(),
            "noise_std": self.noise_std.tolist(),
            "mixing": self.mixing.tolist(),
            "rho": self.rho,
            "nonlinear": None
            if self.nonlinear is None
            else {
                "strength": self.nonlinear.strength,
                "rotation": self.nonlinear.rotation.tolist(),
            },
        }
