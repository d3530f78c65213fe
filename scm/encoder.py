"""The encoder of setting S at mixing angle psi.

``(Zhat_s, Zhat_r) = R(psi) G^T x`` with the block rotation
``R(psi) = [[c I, s I], [-s I, c I]]``, ``c = cos psi``, ``s = sin psi``, so that
``Zhat_s = c Z_s + s Z_r`` and ``Zhat_r = -s Z_s + c Z_r``; ``psi = 0`` is perfect disentanglement.
"""

from __future__ import annotations

import math

import numpy as np

from scm.model import LinearGaussianSCM
from scm.validation import InvalidParameterError, check_angle, check_positive_int


def block_rotation(psi: float, k: int) -> np.ndarray:
    """``R(psi)`` of size 2k x 2k."""
    psi = check_angle(psi)
    k = check_positive_int(k, "k")
    c, s = math.cos(psi), math.sin(psi)
    eye = np.eye(k)
    return np.block([[c * eye, s * eye], [-s * eye, c * eye]])


def encoder_matrix(scm: LinearGaussianSCM, psi: float) -> np.ndarray:
    """The linear map ``E = R(psi) G^T`` from observations to ``[Zhat_s; Zhat_r]``."""
    return block_rotation(psi, scm.k) @ scm.mixing.T


def encode(scm: LinearGaussianSCM, psi: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Zhat_s, Zhat_r)`` for observations ``x`` of shape (n, 2k) of the linear SCM."""
    if scm.nonlinear is not None:
        raise InvalidParameterError(
            "scm: the closed-form encoder R(psi) G^T needs a linear mixing; "
            "use scm.unmix for the nonlinear variant"
        )
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 * scm.k:
        raise InvalidParameterError(f"x: expected shape (n, {2 * scm.k}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("x: expected finite observations, found NaN or infinity")
    streams = x @ encoder_matrix(scm, psi).T
    return streams[:, : scm.k], streams[:, scm.k :]
