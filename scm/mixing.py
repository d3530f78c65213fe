"""Invertible nonlinear mixing for the small-model experiments.

``g(u) = Q f(u)`` with the elementwise map ``f(u) = u + a tanh(u)`` (``a >= 0``, so
``f'(u) = 1 + a sech^2(u) >= 1`` and ``f`` is a strictly increasing bijection of R) and an
orthogonal ``Q``. The observation of the nonlinear variant is ``x = g(G z)``; its Jacobian is
``dx/dz = Q diag(f'(G z)) G``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scm.validation import InvalidParameterError, check_in_range, check_orthogonal


@dataclass(frozen=True)
class NonlinearMixing:
    """``g(u) = rotation @ (u + strength * tanh(u))``, applied row-wise to ``u`` of shape (n, d)."""

    rotation: np.ndarray
    strength: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation", check_orthogonal(self.rotation, "nonlinear.rotation"))
        check_in_range(self.strength, "nonlinear.strength", 0.0, 100.0)

    @property
    def dim(self) -> int:
        return self.rotation.shape[0]

    def forward(self, u):
        """``g(u)`` for a numpy array or a torch tensor of shape (n, d); differentiable in torch."""
        if isinstance(u, np.ndarray):
            return (u + self.strength * np.tanh(u)) @ self.rotation.T
        import torch

        rotation = torch.as_tensor(self.rotation, dtype=u.dtype, device=u.device)
        return (u + self.strength * torch.tanh(u)) @ rotation.T

    def inverse(self, x: np.ndarray, iterations: int = 60) -> np.ndarray:
        """``g^{-1}(x)``: Newton's method on the monotone ``f(u) = v`` with ``v = Q^T x``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InvalidParameterError(f"x: expected shape (n, {self.dim}), got {x.shape}")
        target = x @ self.rotation
        u = target / (1.0 + self.strength)
        for _ in range(iterations):
            residual = u + self.strength * np.tanh(u) - target
            u = u - residual / (1.0 + self.strength / np.cosh(u) ** 2)
        return u

    def derivative(self, u: np.ndarray) -> np.ndarray:
        """Elementwise ``f'(u) = 1 + a sech^2(u)``."""
        return 1.0 + self.strength / np.cosh(u) ** 2

    def jacobian(self, u: np.ndarray) -> np.ndarray:
        """``dg/du = Q diag(f'(u))`` at each row of ``u``, shape (n, d, d)."""
        return self.rotation[None, :, :] * self.derivative(np.atleast_2d(u))[:, None, :]
