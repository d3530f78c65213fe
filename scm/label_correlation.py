"""A source correlation mediated by the labels (S13 of docs/THEORY.md): closed forms and numerics.

Setting S with a residual that follows the task labels in the source only. Semantic factors
``Z_s ~ N(0, Sigma_s)``, labels ``Y = B Z_s + eps`` (row ``t`` of ``B`` is ``beta_t^T``,
``eps ~ N(0, diag sigma_t^2)``), residual noise ``E ~ N(0, Sigma_S)`` with ``Cov(Z_s, E) = X``
(``X = 0`` unless a correlation not mediated by the labels, S11's rho, is added), and

    source: Z_r = A Y + E    (A, k x K: the label loading),        target: Z_r ~ N(mu_T, Sigma_T),

the target residual independent of ``(Z_s, Y)``. With ``L = [[I, 0, 0], [A B, I, A], [B, 0, I]]``
acting on ``[Z_s; E; eps]``, the source joint covariance of ``[Z_s; Z_r; Y]`` is
``L diag-block(Sigma_z, Sigma_eps) L^T`` (:func:`label_joint_covariance`), and the covariance of
``(Z_s, Z_r)`` given ``Y`` is its Schur complement (:func:`conditional_covariance`):

    Cov(Z_s | Y) = T = Sigma_s - Sigma_s B^T Sigma_Y^{-1} B Sigma_s,
    Cov(Z_s, Z_r | Y) = T Sigma_s^{-1} X,      Cov(Z_r | Y) = Sigma_S - X^T B^T Sigma_Y^{-1} B X,

free of the loading ``A``: what the labels carry into ``Z_r`` is gone once the labels are
partialled out, and with ``X = 0`` the two factors are conditionally uncorrelated. For the
rotation encoder at angle psi the conditional cross-covariance of the streams is
``c s (Sigma_S - T)`` when ``X = 0``.

Scalar case (:class:`ScalarLabelSCM`: ``Sigma_s = 1``, ``Sigma_S = v``, loading ``a``, one label,
``q = rho sqrt(v)``). A regression label ``Y = beta Z_s + eps`` has ``Var Y = m = beta^2 + sigma^2``
and ``Cov(Z_s, Y) = beta``; a binary label ``Y = 1{beta Z_s + eps > 0}`` has ``Var Y = 1/4`` and
``Cov(Z_s, Y) = beta / sqrt(2 pi m)`` (the truncated-normal mean). With ``tau = Var(Z_s | Y) =
1 - Cov(Z_s, Y)^2 / Var Y`` (``sigma^2 / m`` for regression, ``1 - 2 beta^2 / (pi m)`` binary; a
binary label's conditional mean is affine in it, so "partialled out linearly" is exact), the
covariances of ``(Z_s, Z_r)`` are ``[[p11, p12], [p12, p22]]`` with

    unconditional: p11 = 1,    p12 = a Cov(Z_s, Y) + q,    p22 = a^2 Var Y + v + 2 a q Cov(Z_s, Y),
    conditional:   p11 = tau,  p12 = q tau,                p22 = v - q^2 (1 - tau),

and the rotated streams have ``D = c^2 p11 + 2 c s p12 + s^2 p22``, ``E = s^2 p11 - 2 c s p12 +
c^2 p22``, ``K = c s (p22 - p11) + (c^2 - s^2) p12``; ``CKA = K^2 / (D E)``, zero at
``tan 2 psi = 2 p12 / (p11 - p22)``. So the unconditional ``CKA(0) = p12^2 / p22 > 0`` when
``a Cov(Z_s, Y) != 0``, while the conditional one is ``c^2 s^2 (v - tau)^2 / ((c^2 tau + s^2 v)
(s^2 tau + c^2 v))`` at ``q = 0``: zero at psi = 0 (and at the swap pi/2), blind when
``v = tau``, identically 1 off its zeros when ``tau = 0`` or ``v = 0`` (the label explains a
whole stream). A ``q != 0`` moves the conditional zero off 0, as S11's rho moves the unconditional
one.

Training (regression label, heads at their source optimum, ``mu_S = 0``): with
``N = Cov(Zhat_s, Y) = c beta + s g``, ``g = Cov(Z_r, Y) = a m + q beta``, the profile risk is
``R*_S = m - N^2 / D`` with slope ``-2 N (N' D - N K) / D^2`` (``D' = 2 K``), which is
``-2 a beta sigma^2`` at psi = 0: the labels' copy in ``Z_r`` carries their noise, so the source
prefers the shortcut angle ``tan psi* = a sigma^2 / (v beta)`` (at ``q = 0``) and no penalty-free
method stays at 0. The OOD gap at the head ``w* = N / D`` is ``R_T - R_S`` with
``R_T = (beta - w c)^2 + sigma^2 + w^2 s^2 (v + shift + mu_T^2)``, ``R_S = m - 2 w N + w^2 D``.
:func:`penalised_endpoint` follows the gradient flow of ``R*_S + lam P`` (``P`` the
unconditional or conditional CKA, or nothing: every balancer, S3) and
:func:`predicted_gap_difference_sign` compares two of them.

The scalar closed forms take ``psi`` as a float, a numpy array or a torch tensor (they use its
own ``cos``/``sin`` and arithmetic only), so a torch model can train on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scm.validation import (
    InvalidParameterError,
    as_finite_array,
    check_covariance,
    check_in_range,
    check_non_negative,
)

LABEL_KINDS = ("regression", "binary")
PENALTIES = ("none", "unconditional", "conditional")
"""What is added to the task losses: nothing (Equal Weighting or any balancer, S3), the
unconditional CKA of the streams (CORE-MTL's penalty), or their label-conditional CKA."""


def _cos_sin(psi):
    """``(cos psi, sin psi)`` of a torch tensor (its own methods, so gradients flow) or of
    anything numpy takes (checked finite)."""
    if hasattr(psi, "cos") and not isinstance(psi, np.ndarray | np.generic):
        return psi.cos(), psi.sin()
    angle = as_finite_array(psi, "psi")
    return np.cos(angle), np.sin(angle)


def _ratio(numerator, denominator):
    """``numerator / denominator``, and 0 where the denominator is 0 (an undefined CKA is 0, as
    for the estimator on a constant stream); works on floats, arrays and tensors alike."""
    zero = denominator == 0
    return numerator * ~zero / (denominator + zero)


def rotated_moments(c, s, p11: float, p12: float, p22: float):
    """``(D, K, E)``: variances and covariance of ``c u + s w`` and ``-s u + c w`` for
    ``Cov(u, w) = [[p11, p12], [p12, p22]]``."""
    return (
        c * c * p11 + 2 * c * s * p12 + s * s * p22,
        c * s * (p22 - p11) + (c * c - s * s) * p12,
        s * s * p11 - 2 * c * s * p12 + c * c * p22,
    )


def rotated_cka(c, s, p11: float, p12: float, p22: float):
    """Population linear CKA ``K^2 / (D E)`` of the rotated pair."""
    d, k, e = rotated_moments(c, s, p11, p12, p22)
    return _ratio(k * k, d * e)


def rotated_cka_slope(c, s, p11: float, p12: float, p22: float):
    """``dCKA/dpsi = 2 K (K' D E - K^2 (E - D)) / (D E)^2`` with ``D' = 2 K``, ``E' = -2 K``,
    ``K' = (c^2 - s^2)(p22 - p11) - 4 c s p12`` (S11's form for any ``p11``)."""
    d, k, e = rotated_moments(c, s, p11, p12, p22)
    k_prime = (c * c - s * s) * (p22 - p11) - 4 * c * s * p12
    return _ratio(2 * k * (k_prime * d * e - k * k * (e - d)), (d * e) ** 2)


def zero_angle(p11: float, p12: float, p22: float) -> float:
    """The zero of the rotated pair's CKA nearest psi = 0, in ``(-pi/4, pi/4]``:
    ``atan(2 p12 / (p11 - p22)) / 2``; ``sign(p12) pi/4`` when ``p11 = p22``; 0 when the pair is
    blind (``p12 = 0``, ``p11 = p22``: CKA is 0 at every angle)."""
    if p11 == p22:
        return math.copysign(math.pi / 4, p12) if p12 else 0.0
    return 0.5 * math.atan(2 * p12 / (p11 - p22)) + 0.0


@dataclass(frozen=True)
class ScalarLabelSCM:
    """The scalar model of S13: ``Sigma_s = 1``, residual noise variance ``v`` (``Sigma_S``),
    label loading ``loading`` (``a``), label ``Y = beta Z_s + eps`` (``label='regression'``) or
    ``1{beta Z_s + eps > 0}`` (``'binary'``) with ``sd(eps) = noise_std``, and an optional
    correlation ``rho = corr(Z_s, E)`` not mediated by the label (S11's)."""

    v: float
    loading: float
    beta: float = 1.0
    noise_std: float = 0.5
    rho: float = 0.0
    label: str = "regression"

    def __post_init__(self) -> None:
        object.__setattr__(self, "v", check_non_negative(self.v, "v"))
        object.__setattr__(
            self, "loading", check_in_range(self.loading, "loading", -math.inf, math.inf)
        )
        object.__setattr__(self, "beta", check_in_range(self.beta, "beta", -math.inf, math.inf))
        object.__setattr__(self, "noise_std", check_non_negative(self.noise_std, "noise_std"))
        rho = check_in_range(self.rho, "rho", -1.0, 1.0)
        if abs(rho) == 1.0:
            raise InvalidParameterError("rho: expected |rho| < 1")
        object.__setattr__(self, "rho", rho)
        if self.label not in LABEL_KINDS:
            raise InvalidParameterError(f"label: expected one of {LABEL_KINDS}, got {self.label!r}")
        if self.beta == 0.0 and self.noise_std == 0.0:
            raise InvalidParameterError("beta, noise_std: expected a label that varies")
        if self.v == 0.0 and self.loading == 0.0:
            raise InvalidParameterError("v: expected v > 0 or a non-zero loading (Z_r constant)")

    @property
    def label_variance(self) -> float:
        """``Var Y``: ``m = beta^2 + sigma^2`` (regression) or 1/4 (binary)."""
        if self.label == "binary":
            return 0.25
        return self.beta**2 + self.noise_std**2

    @property
    def label_covariance(self) -> float:
        """``Cov(Z_s, Y)``: ``beta`` (regression) or ``beta / sqrt(2 pi m)`` (binary)."""
        if self.label == "binary":
            return self.beta / math.sqrt(2 * math.pi * (self.beta**2 + self.noise_std**2))
        return self.beta

    @property
    def tau(self) -> float:
        """``Var(Z_s | Y) = 1 - Cov(Z_s, Y)^2 / Var Y``."""
        return 1.0 - self.label_covariance**2 / self.label_variance

    @property
    def q(self) -> float:
        """``Cov(Z_s, E) = rho sqrt(v)``."""
        return self.rho * math.sqrt(self.v)

    def source_covariance(self) -> np.ndarray:
        """Source ``Cov([Z_s, Z_r, Y])`` (3 x 3)."""
        a, q, c_y, var_y = self.loading, self.q, self.label_covariance, self.label_variance
        g = a * var_y + q * c_y
        p12 = a * c_y + q
        p22 = a * a * var_y + self.v + 2 * a * q * c_y
        return np.array([[1.0, p12, c_y], [p12, p22, g], [c_y, g, var_y]])

    def pair(self, conditional: bool = False) -> tuple[float, float, float]:
        """``(p11, p12, p22)`` of ``(Z_s, Z_r)``, given the label when ``conditional``."""
        if conditional:
            tau, q = self.tau, self.q
            return tau, q * tau, self.v - q * q * (1.0 - tau)
        joint = self.source_covariance()
        return 1.0, float(joint[0, 1]), float(joint[1, 1])

    def stream_moments(self, psi, conditional: bool = False):
        """``(D, K, E)`` of the streams at ``psi`` (given the label when ``conditional``)."""
        return rotated_moments(*_cos_sin(psi), *self.pair(conditional))

    def cka(self, psi, conditional: bool = False):
        """Population CKA of the streams, unconditional or label-conditional."""
        return rotated_cka(*_cos_sin(psi), *self.pair(conditional))

    def cka_slope(self, psi, conditional: bool = False):
        """``dCKA/dpsi`` in closed form (:func:`rotated_cka_slope`)."""
        return rotated_cka_slope(*_cos_sin(psi), *self.pair(conditional))

    def cka_zero_angle(self, conditional: bool = False) -> float:
        """The zero of the (conditional) CKA nearest 0 (:func:`zero_angle`); the others are
        ``+ n pi/2``."""
        return zero_angle(*self.pair(conditional))

    def conditional_blind(self) -> bool:
        """Whether the conditional CKA is 0 at every angle (``q = 0`` and ``v = tau``, to float64
        round-off)."""
        p11, p12, p22 = self.pair(conditional=True)
        return p12 == 0.0 and abs(p11 - p22) <= 1e-12 * max(p11, p22)

    def _regression(self) -> None:
        if self.label != "regression":
            raise InvalidParameterError(
                "label: the risks and gaps are those of setting S's regression tasks; "
                f"got label={self.label!r}"
            )

    def _signal(self, c, s):
        a, q, beta = self.loading, self.q, self.beta
        g = a * self.label_variance + q * beta
        return c * beta + s * g, -s * beta + c * g

    def head(self, psi):
        """Source-optimal head ``w* = N / D`` (bias 0)."""
        self._regression()
        c, s = _cos_sin(psi)
        d, _, _ = rotated_moments(c, s, *self.pair())
        return self._signal(c, s)[0] / d

    def profile_risk(self, psi):
        """``R*_S = m - N^2 / D`` (without the irreducible part: ``R*_S(0) = sigma^2``)."""
        self._regression()
        c, s = _cos_sin(psi)
        d, _, _ = rotated_moments(c, s, *self.pair())
        return self.label_variance - self._signal(c, s)[0] ** 2 / d

    def profile_slope(self, psi):
        """``dR*_S/dpsi = -2 N (N' D - N K) / D^2``."""
        self._regression()
        c, s = _cos_sin(psi)
        d, k, _ = rotated_moments(c, s, *self.pair())
        n, n_prime = self._signal(c, s)
        return -2 * n * (n_prime * d - n * k) / (d * d)

    def shortcut_angle(self) -> float:
        """The source-optimal angle in ``(-pi/2, pi/2]``: the direction ``Sigma^{-1} Cov(., Y)``
        of the regression of ``Y`` on ``(Z_s, Z_r)``; ``atan(a sigma^2 / (v beta))`` at ``q = 0``."""
        self._regression()
        joint = self.source_covariance()
        coefficients = np.linalg.lstsq(joint[:2, :2], joint[:2, 2], rcond=None)[0]
        angle = math.atan2(coefficients[1], coefficients[0])
        if angle <= -math.pi / 2:
            return angle + math.pi
        return angle - math.pi if angle > math.pi / 2 else angle

    def target_risk(self, psi, shift: float, mean_shift: float = 0.0):
        """``R_T = (beta - w c)^2 + sigma^2 + w^2 s^2 (v + shift + mu_T^2)`` at the source-optimal
        head ``w*``, target residual ``N(mu_T, v + shift)`` independent of ``(Z_s, Y)``."""
        self._regression()
        shift = check_in_range(shift, "shift", -self.v, math.inf)
        mean_shift = check_in_range(mean_shift, "mean_shift", -math.inf, math.inf)
        c, s = _cos_sin(psi)
        d, _, _ = rotated_moments(c, s, *self.pair())
        w = self._signal(c, s)[0] / d
        spread = self.v + shift + mean_shift**2
        return (self.beta - w * c) ** 2 + self.noise_std**2 + w * w * s * s * spread

    def ood_gap(self, psi, shift: float, mean_shift: float = 0.0):
        """``R_T - R_S`` at the source-optimal head (:meth:`target_risk` minus
        :meth:`profile_risk`)."""
        return self.target_risk(psi, shift, mean_shift) - self.profile_risk(psi)

    def objective_slope(self, psi, lam: float, penalty: str):
        """``d/dpsi (R*_S + lam P)`` for ``penalty`` in :data:`PENALTIES`."""
        slope = self.profile_slope(psi)
        if _check_penalty(penalty) == "none" or lam == 0.0:
            return slope
        return slope + lam * self.cka_slope(psi, conditional=penalty == "conditional")


def _check_penalty(penalty: str) -> str:
    if penalty not in PENALTIES:
        raise InvalidParameterError(f"penalty: expected one of {PENALTIES}, got {penalty!r}")
    return penalty


def penalised_endpoint(model: ScalarLabelSCM, psi_0: float, lam: float, penalty: str) -> float:
    """Where gradient flow on ``R*_S + lam P`` started at ``psi_0`` stops: the first zero of the
    slope downhill from ``psi_0`` (within pi, the period), refined by Brent's method
    (``penalty='none'``: the task losses alone, where every balancer goes, S3)."""
    from scipy.optimize import brentq

    psi_0 = float(as_finite_array(psi_0, "psi_0", ndim=0))
    lam = check_in_range(lam, "lam", 0.0, math.inf)
    _check_penalty(penalty)

    def slope(psi):
        return model.objective_slope(psi, lam, penalty)

    start = float(slope(psi_0))
    if start == 0.0:
        return psi_0
    grid = psi_0 - math.copysign(1.0, start) * np.linspace(0.0, math.pi, 3142)
    values = slope(grid)
    flips = np.nonzero(np.sign(values[1:]) != np.sign(values[0]))[0]
    if flips.size == 0:
        return psi_0
    low, high = sorted((grid[flips[0]], grid[flips[0] + 1]))
    if values[flips[0] + 1] == 0.0:
        return float(grid[flips[0] + 1])
    return float(brentq(slope, low, high, xtol=1e-13))


def predicted_outcome(
    model: ScalarLabelSCM,
    psi_0: float,
    lam: float,
    shift: float,
    mean_shift: float = 0.0,
    psi_ew: float | None = None,
) -> dict:
    """End angle, OOD gap and target risk of each of :data:`PENALTIES` from ``psi_0``. ``"none"`` (EW) ends at
    ``psi_ew``, by default the end of the flow on ``R*_S`` (the task loss is not flat here: its
    slope at 0 is ``-2 a beta sigma^2``); pass a simulated or measured end angle otherwise."""
    ends = {
        "none": penalised_endpoint(model, psi_0, 0.0, "none") if psi_ew is None else psi_ew,
        "unconditional": penalised_endpoint(model, psi_0, lam, "unconditional"),
        "conditional": penalised_endpoint(model, psi_0, lam, "conditional"),
    }
    return {
        name: {
            "psi": float(angle),
            "gap": float(model.ood_gap(angle, shift, mean_shift)),
            "target_risk": float(model.target_risk(angle, shift, mean_shift)),
        }
        for name, angle in ends.items()
    }


def predicted_gap_difference_sign(
    model: ScalarLabelSCM,
    psi_0: float,
    lam: float,
    shift: float,
    first: str = "conditional",
    second: str = "unconditional",
    mean_shift: float = 0.0,
    psi_ew: float | None = None,
    resolution: float = 1e-9,
    quantity: str = "gap",
) -> int:
    """Sign of ``first``'s OOD gap (or ``quantity='target_risk'``) minus ``second``'s (names of
    :data:`PENALTIES`; ``"none"`` is EW): -1 when ``first``'s is smaller, +1 larger, 0 within
    ``resolution``. The gap alone can favour an angle that costs source risk (one reading the
    label's copy against its sign has a negative gap); the target risk says which is better OOD."""
    _check_penalty(first)
    _check_penalty(second)
    if quantity not in ("gap", "target_risk"):
        raise InvalidParameterError(f"quantity: expected 'gap' or 'target_risk', got {quantity!r}")
    resolution = check_in_range(resolution, "resolution", 0.0, math.inf)
    outcome = predicted_outcome(model, psi_0, lam, shift, mean_shift, psi_ew)
    difference = outcome[first][quantity] - outcome[second][quantity]
    return 0 if abs(difference) <= resolution else int(math.copysign(1, difference))


# ------------------------------------------------------------------------------------ any k, K


def label_joint_covariance(sigma_s, sigma_e, loading, beta, noise_std, cross=None) -> np.ndarray:
    """Source ``Cov([Z_s; Z_r; Y])`` ((2k + K) square) for ``Z_r = A Y + E``: ``sigma_s``,
    ``sigma_e`` (k x k), ``loading`` ``A`` (k x K), ``beta`` ``B`` (K x k, rows ``beta_t``),
    ``noise_std`` (K,), ``cross = Cov(Z_s, E)`` (k x k, default 0)."""
    sigma_s = check_covariance(sigma_s, "sigma_s")
    k = sigma_s.shape[0]
    sigma_e = check_covariance(sigma_e, "sigma_e", dim=k)
    beta = as_finite_array(beta, "beta", ndim=2)
    if beta.shape[1] != k:
        raise InvalidParameterError(f"beta: expected shape (K, {k}), got {beta.shape}")
    tasks = beta.shape[0]
    loading = as_finite_array(loading, "loading", ndim=2)
    if loading.shape != (k, tasks):
        raise InvalidParameterError(f"loading: expected shape ({k}, {tasks}), got {loading.shape}")
    noise = as_finite_array(noise_std, "noise_std", ndim=1)
    if noise.shape != (tasks,) or np.any(noise < 0):
        raise InvalidParameterError(f"noise_std: expected {tasks} non-negative values")
    cross = np.zeros((k, k)) if cross is None else as_finite_array(cross, "cross", ndim=2)
    if cross.shape != (k, k):
        raise InvalidParameterError(f"cross: expected shape ({k}, {k}), got {cross.shape}")
    base = np.zeros((2 * k + tasks, 2 * k + tasks))
    base[: 2 * k, : 2 * k] = np.block([[sigma_s, cross], [cross.T, sigma_e]])
    base[2 * k :, 2 * k :] = np.diag(noise**2)
    check_covariance(base, "sigma_s, sigma_e, cross (joint of Z_s and E)")
    eye, zero = np.eye(k), np.zeros((k, k))
    structural = np.block(
        [
            [eye, zero, np.zeros((k, tasks))],
            [loading @ beta, eye, loading],
            [beta, np.zeros((tasks, k)), np.eye(tasks)],
        ]
    )
    return structural @ base @ structural.T


def conditional_covariance(joint, k: int) -> np.ndarray:
    """``Cov([Z_s; Z_r] | Y)``: the Schur complement ``J_zz - J_zy J_yy^+ J_yz`` of the label block
    of ``joint`` (:func:`label_joint_covariance`), i.e. the covariance left after partialling the
    labels out linearly (the pseudo-inverse allows collinear labels)."""
    joint = check_covariance(joint, "joint")
    if joint.shape[0] <= 2 * k:
        raise InvalidParameterError(f"joint: expected more than {2 * k} rows (factors and labels)")
    factors, labels = slice(0, 2 * k), slice(2 * k, None)
    between = joint[factors, labels]
    return joint[factors, factors] - between @ np.linalg.pinv(joint[labels, labels]) @ between.T


def rotation_cka(covariance, psi: float) -> float:
    """Population CKA ``||C_sr||_F^2 / (||C_ss||_F ||C_rr||_F)`` of the streams
    ``R(psi) [Z_s; Z_r]`` for ``Cov([Z_s; Z_r]) = covariance`` (2k square), at any real psi
    (0 where a stream is constant)."""
    covariance = check_covariance(covariance, "covariance")
    k = covariance.shape[0] // 2
    psi = float(as_finite_array(psi, "psi", ndim=0))
    c, s, eye = math.cos(psi), math.sin(psi), np.eye(k)
    rotation = np.block([[c * eye, s * eye], [-s * eye, c * eye]])
    stream = rotation @ covariance @ rotation.T
    denominator = float(np.linalg.norm(stream[:k, :k]) * np.linalg.norm(stream[k:, k:]))
    return 0.0 if denominator == 0.0 else float(np.sum(stream[:k, k:] ** 2) / denominator)
