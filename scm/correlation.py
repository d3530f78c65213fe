"""Cross-covariance between the streams: general linear encoders (S10) and the source-only
correlation rho (S11) of docs/THEORY.md.

General linear encoders (S10). A linear encoder of the linear SCM acts on the latents through
``M = E G`` (2k x 2k), ``[Zhat_s; Zhat_r] = M z`` with blocks ``M = [[A, B], [C, D]]``
(``A``: z_s -> Zhat_s, ``B``: z_r -> Zhat_s). With ``Sigma = Cov(z)`` the stream covariance is
``M Sigma M^T`` with cross block ``C_sr = P_s Sigma P_r^T`` (``P_s = [A, B]``, ``P_r = [C, D]``),
and the population linear CKA ``||C_sr||_F^2 / (||C_ss||_F ||C_rr||_F)`` is zero iff
``C_sr = 0``. Leakage is normalised by the semantic gain:

    lambda_rel = ||A^{-1} B||_op,   Zhat_s = A (z_s + A^{-1} B z_r),

which is unchanged by any invertible reparametrisation ``Zhat_s -> S Zhat_s`` (heads absorb
``S``); ``lambda_rel <= ||B||_op / sigma_min(A)`` with equality for k = 1 and for the rotation
encoder (``tan psi``); the raw ``||B||_op`` (``sin psi`` there) is S5's ``lambda_leak``.

Source-only correlation (S11), scalar case ``Sigma_s = 1``, ``Sigma_S = v``,
``Cov_S(z_r, z_s) = rho sqrt(v)``, rotation encoder at any real angle psi (``c = cos psi``,
``s = sin psi``, ``q = rho sqrt(v)``):

    Var(Zhat_s) = D = c^2 + s^2 v + 2 c s q,     Var(Zhat_r) = E = s^2 + c^2 v - 2 c s q,
    Cov(Zhat_s, Zhat_r) = K = c s (v - 1) + (c^2 - s^2) q,
    CKA(psi) = K^2 / (D E),     K = 0 at tan(2 psi_c) = 2 q / (1 - v),
    R*_S(psi) = beta^2 v (1 - rho^2) s^2 / D + sigma^2,
    dR*_S/dpsi = 2 beta^2 v (1 - rho^2) s N / D^2,   N = c + s q,
    dCKA/dpsi = 2 K (K' D E - K^2 (E - D)) / (D E)^2,   D' = 2 K,   E' = -2 K,
    K' = (c^2 - s^2)(v - 1) - 4 c s q,
    CKA(0) = rho^2,   dCKA/dpsi(0) = 2 rho (v - 1)(1 - rho^2) / sqrt(v).

Source-optimal head ``w* = beta N / D`` (bias 0, ``mu_S = 0``) and the OOD gap with target law
``N(mu_T, v + shift)`` uncorrelated with z_s:
``R_T - R_S = s^2 w^2 (shift + mu_T^2) + 2 s w (beta - c w) q``.

Any k (numerically): :func:`rotation_profile` gives the profile risk, CKA and gap at any real
angle, :func:`general_penalised_endpoint` and :func:`general_predicted_gap_difference_sign` the
prediction, :func:`cka_slope_at_zero` the closed-form slope that moves the optimum off psi = 0.
"""

from __future__ import annotations

import math

import numpy as np

from scm.validation import (
    InvalidParameterError,
    as_finite_array,
    check_covariance,
    check_in_range,
    psd_sqrt,
)

# ----------------------------------------------------------------------------- general encoders


def _latent_map(latent_map, sigma: np.ndarray) -> np.ndarray:
    matrix = as_finite_array(latent_map, "latent_map", ndim=2)
    n = sigma.shape[0]
    if matrix.shape != (n, n) or n % 2:
        raise InvalidParameterError(
            f"latent_map: expected shape ({n}, {n}) matching the latent covariance, got "
            f"{matrix.shape}"
        )
    return matrix


def stream_blocks(sigma, latent_map) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(C_ss, C_sr, C_rr)``: the blocks of ``M Sigma M^T`` for the latent map ``M``."""
    sigma = check_covariance(sigma, "sigma")
    matrix = _latent_map(latent_map, sigma)
    k = sigma.shape[0] // 2
    stream = matrix @ sigma @ matrix.T
    return stream[:k, :k], stream[:k, k:], stream[k:, k:]


def latent_map_cka(sigma, latent_map) -> float:
    """Population linear CKA ``||C_sr||_F^2 / (||C_ss||_F ||C_rr||_F)`` of ``Zhat = M z``."""
    c_ss, c_sr, c_rr = stream_blocks(sigma, latent_map)
    denominator = float(np.linalg.norm(c_ss) * np.linalg.norm(c_rr))
    return 0.0 if denominator == 0.0 else float(np.linalg.norm(c_sr) ** 2 / denominator)


def _blocks_of(latent_map) -> tuple[np.ndarray, int]:
    matrix = as_finite_array(latent_map, "latent_map", ndim=2)
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] % 2 or matrix.shape[0] == 0:
        raise InvalidParameterError(
            f"latent_map: expected a square 2k x 2k matrix, got shape {matrix.shape}"
        )
    return matrix, matrix.shape[0] // 2


def raw_leakage(latent_map) -> float:
    """``||B||_op``: the Lipschitz constant of ``Zhat_s`` in ``z_r`` (S5's ``lambda_leak``)."""
    matrix, k = _blocks_of(latent_map)
    return float(np.linalg.norm(matrix[:k, k:], 2))


def relative_leakage(latent_map) -> float:
    """``lambda_rel = ||A^{-1} B||_op`` (``inf`` when the semantic gain ``A`` is singular)."""
    matrix, k = _blocks_of(latent_map)
    gain, leak = matrix[:k, :k], matrix[:k, k:]
    singular = np.linalg.svd(gain, compute_uv=False)
    if singular[-1] <= 1e-12 * max(1.0, singular[0]):
        return math.inf
    return float(np.linalg.norm(np.linalg.solve(gain, leak), 2))


def whitening_rotation(sigma, theta: float) -> np.ndarray:
    """``M = R(theta) Sigma^{-1/2}``: ``M Sigma M^T = I`` for every ``theta``, so CKA = 0, while
    ``lambda_rel = |tan theta| ||Sigma_s^{1/2} Sigma_S^{-1/2}||_op`` for block-diagonal ``Sigma``."""
    sigma = check_covariance(sigma, "sigma")
    theta = check_in_range(theta, "theta", -math.pi, math.pi)
    k = sigma.shape[0] // 2
    eigenvalues, vectors = np.linalg.eigh(sigma)
    if eigenvalues[0] <= 0:
        raise InvalidParameterError("sigma: expected a positive-definite latent covariance")
    inverse_root = (vectors / np.sqrt(eigenvalues)) @ vectors.T
    c, s, eye = math.cos(theta), math.sin(theta), np.eye(k)
    return np.block([[c * eye, s * eye], [-s * eye, c * eye]]) @ inverse_root


def decorrelating_encoder(sigma_s, sigma_r, gain, leak) -> np.ndarray:
    """An invertible latent map with semantic rows ``[A, B] = [gain, leak]`` and CKA exactly 0.

    Residual rows ``P_r = [-Sigma_S B^T A^{-T} Sigma_s^{-1}, I]`` give
    ``C_sr = A Sigma_s X^T + B Sigma_S = 0``, and ``det M = det(C_ss) / (det A det Sigma_s) != 0``.
    So for a free linear encoder CKA = 0 constrains the semantic stream not at all.
    """
    sigma_s = check_covariance(sigma_s, "sigma_s")
    sigma_r = check_covariance(sigma_r, "sigma_r", dim=sigma_s.shape[0])
    k = sigma_s.shape[0]
    gain = as_finite_array(gain, "gain", ndim=2)
    leak = as_finite_array(leak, "leak", ndim=2)
    if gain.shape != (k, k) or leak.shape != (k, k):
        raise InvalidParameterError(f"gain, leak: expected shape ({k}, {k})")
    if np.linalg.eigvalsh(sigma_s)[0] <= 0:
        raise InvalidParameterError("sigma_s: expected a positive-definite semantic covariance")
    if abs(np.linalg.det(gain)) < 1e-12:
        raise InvalidParameterError("gain: expected an invertible semantic gain A")
    residual_from_s = -sigma_r @ leak.T @ np.linalg.inv(gain).T @ np.linalg.inv(sigma_s)
    return np.block([[gain, leak], [residual_from_s, np.eye(k)]])


def spectral_separation(first, second) -> float:
    """``min_{i,j} |lambda_i(first) - lambda_j(second)|`` of two symmetric matrices."""
    a = np.linalg.eigvalsh(check_covariance(first, "first"))
    b = np.linalg.eigvalsh(check_covariance(second, "second"))
    return float(np.min(np.abs(a[:, None] - b[None, :])))


def orthogonal_leakage_bound(sigma_s, sigma_r, cka: float) -> tuple[float, float]:
    """S10's continuity bound for an orthogonal latent map near the identity.

    With ``delta = sep(Sigma_s, Sigma_S) > 0`` and ``L = 2 ||Sigma_s||_op + ||Sigma_S||_op``: if
    ``||B||_op^2 <= delta / (2 L)`` then ``||B||_op <= sqrt(2 CKA) ||Sigma||_F / delta``. Returns
    ``(bound, radius)`` with ``radius = sqrt(delta / (2 L))``; the bound is ``inf`` at
    ``delta = 0`` (shared eigenvalue: no bound exists).
    """
    sigma_s = check_covariance(sigma_s, "sigma_s")
    sigma_r = check_covariance(sigma_r, "sigma_r", dim=sigma_s.shape[0])
    cka = check_in_range(cka, "cka", 0.0, 1.0)
    delta = spectral_separation(sigma_s, sigma_r)
    size = 2 * np.linalg.norm(sigma_s, 2) + np.linalg.norm(sigma_r, 2)
    frobenius = math.sqrt(np.linalg.norm(sigma_s) ** 2 + np.linalg.norm(sigma_r) ** 2)
    if delta == 0.0:
        return math.inf, 0.0
    return math.sqrt(2 * cka) * frobenius / delta, math.sqrt(delta / (2 * size))


# ------------------------------------------------------------------ source-only correlation, k=1


def _scalar_parameters(v: float, rho: float) -> tuple[float, float]:
    v = check_in_range(v, "v", 0.0, math.inf)
    if v == 0.0:
        raise InvalidParameterError("v: expected a positive residual variance")
    rho = check_in_range(rho, "rho", -1.0, 1.0)
    if abs(rho) == 1.0:
        raise InvalidParameterError(
            "rho: expected |rho| < 1 (at |rho| = 1 one stream can be constant and CKA undefined)"
        )
    return v, rho


def scalar_stream_moments(psi, v: float, rho: float):
    """``(D, K, E) = (Var Zhat_s, Cov(Zhat_s, Zhat_r), Var Zhat_r)`` in the source (array in psi)."""
    v, rho = _scalar_parameters(v, rho)
    psi = as_finite_array(psi, "psi")
    c, s, q = np.cos(psi), np.sin(psi), rho * math.sqrt(v)
    return (
        c * c + s * s * v + 2 * c * s * q,
        c * s * (v - 1) + (c * c - s * s) * q,
        s * s + c * c * v - 2 * c * s * q,
    )


def scalar_cka(psi, v: float, rho: float = 0.0):
    """Population CKA ``K^2 / (D E)`` of the scalar streams (S6 at ``rho = 0``)."""
    d, k, e = scalar_stream_moments(psi, v, rho)
    return k * k / (d * e)


def cka_zero_angle(v: float, rho: float) -> float:
    """``psi_c = atan(2 rho sqrt(v) / (1 - v)) / 2 in (-pi/4, pi/4)``: the zero of CKA nearest
    ``psi = 0`` (the others are ``psi_c + n pi/2``); ``sign(rho) pi/4`` at ``v = 1``."""
    v, rho = _scalar_parameters(v, rho)
    if v == 1.0:
        return math.copysign(math.pi / 4, rho) if rho else 0.0
    return 0.5 * math.atan(2 * rho * math.sqrt(v) / (1 - v))


def scalar_profile_risk(psi, v: float, rho: float, beta: float = 1.0, noise_std: float = 0.0):
    """``R*_S(psi) = beta^2 v (1 - rho^2) s^2 / D + sigma^2`` (source-optimal head)."""
    d, _, _ = scalar_stream_moments(psi, v, rho)
    s = np.sin(as_finite_array(psi, "psi"))
    return beta * beta * v * (1 - rho * rho) * s * s / d + noise_std**2


def scalar_profile_derivatives(psi, v: float, rho: float, beta: float = 1.0):
    """``(dR*_S/dpsi, dCKA/dpsi)`` in closed form.

    ``dR*_S/dpsi = 2 beta^2 v (1 - rho^2) s N / D^2`` with ``N = c + s q``;
    ``dCKA/dpsi = 2 K (K' D E - K^2 (E - D)) / (D E)^2`` (from ``D' = 2K``, ``E' = -2K``).
    """
    v, rho = _scalar_parameters(v, rho)
    psi = as_finite_array(psi, "psi")
    c, s, q = np.cos(psi), np.sin(psi), rho * math.sqrt(v)
    d, k, e = scalar_stream_moments(psi, v, rho)
    k_prime = (c * c - s * s) * (v - 1) - 4 * c * s * q
    risk = 2 * beta * beta * v * (1 - rho * rho) * s * (c + s * q) / d**2
    cka = 2 * k * (k_prime * d * e - k * k * (e - d)) / (d * e) ** 2
    return risk, cka


def scalar_heads(psi, v: float, rho: float, beta: float = 1.0):
    """Source-optimal head ``w* = beta (c + s q) / D`` (bias 0 since ``mu_S = 0``)."""
    d, _, _ = scalar_stream_moments(psi, v, rho)
    psi = as_finite_array(psi, "psi")
    return beta * (np.cos(psi) + np.sin(psi) * rho * math.sqrt(v)) / d


def scalar_ood_gap(
    psi, v: float, rho: float, shift: float, beta: float = 1.0, mean_shift: float = 0.0
):
    """``R_T - R_S = s^2 w^2 (shift + mu_T^2) + 2 s w (beta - c w) rho sqrt(v)`` at ``w = w*``,
    target residual law ``N(mu_T, v + shift)`` independent of z_s."""
    v, rho = _scalar_parameters(v, rho)
    check_in_range(shift, "shift", -v, math.inf)
    psi = as_finite_array(psi, "psi")
    c, s, w = np.cos(psi), np.sin(psi), scalar_heads(psi, v, rho, beta)
    return s * s * w * w * (shift + mean_shift**2) + 2 * s * w * (beta - c * w) * rho * math.sqrt(v)


PENALTIES: tuple[str, ...] = ("linear", "square")
"""How the CKA penalty enters: ``lam CKA`` or ``lam CKA^2``. Both are increasing in CKA >= 0 with
the same zeros, so the bracket ``(0, psi_c)`` of the optimum holds for either."""


def _check_penalty(penalty: str) -> str:
    if penalty not in PENALTIES:
        raise InvalidParameterError(f"penalty: expected one of {PENALTIES}, got {penalty!r}")
    return penalty


def penalised_endpoint(
    psi_0: float,
    v: float,
    rho: float,
    lam: float,
    beta: float = 1.0,
    penalty: str = "linear",
):
    """Where gradient flow on ``f = R*_S + lam CKA`` (or ``+ lam CKA^2``) started at ``psi_0``
    stops: the first zero of ``f'`` downhill from ``psi_0`` (``f`` has period pi, so it lies within
    pi), refined by Brent's method. CORE-MTL's angle when heads stay near optimal and training
    converges. For K tasks sharing the encoder pass ``beta = sqrt(sum_t beta_t^2)`` (the profile
    risks add; each task's gap is proportional to ``beta_t^2``)."""
    from scipy.optimize import brentq

    psi_0 = float(as_finite_array(psi_0, "psi_0", ndim=0))
    lam = check_in_range(lam, "lam", 0.0, math.inf)
    square = _check_penalty(penalty) == "square"

    def slope(psi):
        risk, cka = scalar_profile_derivatives(psi, v, rho, beta)
        return risk + lam * cka * (2 * scalar_cka(psi, v, rho) if square else 1.0)

    start = float(slope(psi_0))
    if start == 0.0:
        return psi_0
    direction = -math.copysign(1.0, start)
    grid = psi_0 + direction * np.linspace(0.0, math.pi, 3142)
    values = slope(grid)
    flips = np.nonzero(np.sign(values[1:]) != np.sign(values[0]))[0]
    if flips.size == 0:
        return psi_0
    a, b = grid[flips[0]], grid[flips[0] + 1]
    if values[flips[0] + 1] == 0.0:
        return float(b)
    return float(brentq(slope, min(a, b), max(a, b), xtol=1e-13))


def predicted_outcome(
    psi_0: float,
    v: float,
    rho: float,
    lam: float,
    shift: float,
    beta: float = 1.0,
    mean_shift: float = 0.0,
    psi_ew: float | None = None,
    penalty: str = "linear",
) -> dict:
    """CORE-MTL's and EW's end angles and OOD gaps in the scalar model of S11.

    EW ends at ``psi_ew`` (default ``psi_0``: S4's flat valley, valid while
    ``eta T beta^2 v (1 - rho^2)`` is small; pass a simulated or measured end angle otherwise).
    CORE-MTL ends at :func:`penalised_endpoint` from ``psi_0``. When the CKA term is identically
    zero (``lam = 0``, or ``rho = 0`` and ``v = 1``) both follow the same task loss and end at
    the same angle.
    """
    psi_ew = float(psi_0 if psi_ew is None else psi_ew)
    blind = lam == 0.0 or (rho == 0.0 and v == 1.0)
    psi_core = psi_ew if blind else penalised_endpoint(psi_0, v, rho, lam, beta, penalty)
    gaps = [
        float(scalar_ood_gap(angle, v, rho, shift, beta, mean_shift))
        for angle in (psi_core, psi_ew)
    ]
    return {
        "psi_core": psi_core,
        "psi_ew": psi_ew,
        "psi_c": cka_zero_angle(v, rho),
        "gap_core": gaps[0],
        "gap_ew": gaps[1],
        "difference": gaps[0] - gaps[1],
        "blind": blind,
    }


def predicted_gap_difference_sign(
    psi_0: float,
    v: float,
    rho: float,
    lam: float,
    shift: float,
    beta: float = 1.0,
    mean_shift: float = 0.0,
    psi_ew: float | None = None,
    resolution: float = 1e-9,
    penalty: str = "linear",
) -> int:
    """Sign of CORE-MTL's OOD gap minus EW's (S11): -1 CORE-MTL smaller, +1 larger, 0 when the
    predicted difference is at most ``resolution`` (the smallest difference the study resolves)."""
    resolution = check_in_range(resolution, "resolution", 0.0, math.inf)
    difference = predicted_outcome(psi_0, v, rho, lam, shift, beta, mean_shift, psi_ew, penalty)[
        "difference"
    ]
    return 0 if abs(difference) <= resolution else int(math.copysign(1, difference))


def gap_difference_boundaries(
    v: float,
    rho: float,
    lam: float,
    shift: float,
    beta: float = 1.0,
    mean_shift: float = 0.0,
    points: int = 2001,
    penalty: str = "linear",
) -> list[dict]:
    """The starting angles ``psi_0 in (0, pi/2)`` where the predicted sign changes, each with the
    signs on either side: a root of ``gap(psi_core(psi_0)) - gap(psi_0)`` or a jump of the
    CORE-MTL end angle between basins, located by bisection on a grid of ``points`` angles."""
    grid = np.linspace(1e-6, math.pi / 2 - 1e-6, points)

    def sign(psi_0):
        return predicted_gap_difference_sign(
            psi_0, v, rho, lam, shift, beta, mean_shift, penalty=penalty
        )

    signs = [sign(psi) for psi in grid]
    boundaries = []
    for i in range(points - 1):
        if signs[i] == signs[i + 1]:
            continue
        low, high = grid[i], grid[i + 1]
        for _ in range(40):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if sign(middle) == signs[i] else (low, middle)
        boundaries.append(
            {"psi_0": float(0.5 * (low + high)), "below": signs[i], "above": signs[i + 1]}
        )
    return boundaries


# --------------------------------------------------------------- source-only correlation, any k


def cka_slope_at_zero(sigma_s, sigma_r, rho: float) -> float:
    """``dCKA/dpsi`` at ``psi = 0`` for the rotation encoder with ``Cov(z_s, z_r) = X =
    rho Sigma_s^{1/2} Sigma_S^{1/2}``:

        (2 / (a b)) [<X, Sigma_S - Sigma_s> - ||X||_F^2 (<Sigma_s, X> / a^2 - <Sigma_S, X> / b^2)],

    ``a = ||Sigma_s||_F``, ``b = ||Sigma_S||_F`` (from ``dC/dpsi = R' Sigma + Sigma R'^T``). A
    non-zero slope moves the CKA-penalised optimum off ``psi = 0``; for k = 1 it is
    ``2 rho (v - 1)(1 - rho^2) / sqrt(v)``."""
    sigma_s = check_covariance(sigma_s, "sigma_s")
    sigma_r = check_covariance(sigma_r, "sigma_r", dim=sigma_s.shape[0])
    rho = check_in_range(rho, "rho", -1.0, 1.0)
    cross = rho * psd_sqrt(sigma_s) @ psd_sqrt(sigma_r)
    a, b = np.linalg.norm(sigma_s), np.linalg.norm(sigma_r)
    inner = float(np.sum(cross * (sigma_r - sigma_s)))
    correction = float(np.sum(cross * cross)) * (
        float(np.sum(sigma_s * cross)) / a**2 - float(np.sum(sigma_r * cross)) / b**2
    )
    return float(2 * (inner - correction) / (a * b))


def rotation_profile(scm, psi: float) -> dict:
    """Source profile risk ``sum_t R*_t``, population CKA and mean OOD gap of the rotation
    encoder at any real angle psi, for an SCM of any k (with its rho).

    With ``Sigma`` the source joint covariance and ``R(psi)`` the block rotation, the stream
    covariance is ``R Sigma R^T``; ``Cov(Zhat_s, Y_t) = R_s Sigma [beta_t; 0]``, the optimal head is
    ``w_t = C_ss^{-1} Cov(Zhat_s, Y_t)`` with bias ``-s w_t^T mu_S``, and each environment's risk is
    ``d_t^T Sigma_e d_t + (s w_t^T mu_e + b_t)^2 + sigma_t^2`` with ``d_t = [beta_t - c w_t; -s w_t]``.
    """
    psi = float(as_finite_array(psi, "psi", ndim=0))
    k = scm.k
    c, s, eye = math.cos(psi), math.sin(psi), np.eye(k)
    rotation = np.block([[c * eye, s * eye], [-s * eye, c * eye]])
    source = scm.joint_covariance("source")
    stream = rotation @ source @ rotation.T
    c_ss, c_sr, c_rr = stream[:k, :k], stream[:k, k:], stream[k:, k:]
    cross = rotation[:k] @ source[:, :k] @ scm.beta.T
    weights = np.linalg.lstsq(c_ss, cross, rcond=None)[0].T
    bias = -s * weights @ scm.source.mean
    directions = np.concatenate([scm.beta - c * weights, -s * weights], axis=1)
    risk = {}
    for env in ("source", "target"):
        variance = np.einsum("ti,ij,tj->t", directions, scm.joint_covariance(env), directions)
        offset = s * weights @ scm.law(env).mean + bias
        risk[env] = variance + offset**2 + scm.noise_std**2
    denominator = float(np.linalg.norm(c_ss) * np.linalg.norm(c_rr))
    return {
        "profile_risk": float(np.sum(risk["source"])),
        "cka": 0.0 if denominator == 0.0 else float(np.sum(c_sr**2) / denominator),
        "gap": float(np.mean(risk["target"] - risk["source"])),
    }


def general_penalised_endpoint(scm, psi_0: float, lam: float, step: float = 1e-3) -> float:
    """:func:`penalised_endpoint` for any k: the first zero of ``f'`` (central differences of
    ``f = sum_t R*_t + lam CKA`` at ``step``) downhill from ``psi_0`` within pi, refined by Brent."""
    from scipy.optimize import brentq

    psi_0 = float(as_finite_array(psi_0, "psi_0", ndim=0))
    lam = check_in_range(lam, "lam", 0.0, math.inf)

    def objective(psi: float) -> float:
        quantities = rotation_profile(scm, psi)
        return quantities["profile_risk"] + lam * quantities["cka"]

    def slope(psi: float) -> float:
        return (objective(psi + 1e-6) - objective(psi - 1e-6)) / 2e-6

    start = slope(psi_0)
    if start == 0.0:
        return psi_0
    direction = -math.copysign(1.0, start)
    previous = psi_0
    for index in range(1, int(math.pi / step) + 1):
        current = psi_0 + direction * index * step
        if math.copysign(1.0, slope(current)) != math.copysign(1.0, start):
            low, high = sorted((previous, current))
            return float(brentq(slope, low, high, xtol=1e-10))
        previous = current
    return psi_0


def general_predicted_gap_difference_sign(
    scm,
    psi_0: float,
    lam: float,
    psi_ew: float | None = None,
    resolution: float = 1e-9,
) -> int:
    """:func:`predicted_gap_difference_sign` for an SCM of any k (mean gap over tasks): EW at
    ``psi_ew`` (default ``psi_0``), CORE-MTL at :func:`general_penalised_endpoint`."""
    resolution = check_in_range(resolution, "resolution", 0.0, math.inf)
    psi_ew = float(psi_0 if psi_ew is None else psi_ew)
    psi_core = general_penalised_endpoint(scm, psi_0, lam) if lam > 0 else psi_ew
    difference = rotation_profile(scm, psi_core)["gap"] - rotation_profile(scm, psi_ew)["gap"]
    return 0 if abs(difference) <= resolution else int(math.copysign(1, difference))
