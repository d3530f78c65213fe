"""Exact population quantities of setting S (docs/THEORY.md, statements S1-S3, S5, S6).

Throughout, ``c = cos psi``, ``s = sin psi``, ``Zhat_s = c Z_s + s Z_r`` and heads
``yhat_t = w_t^T Zhat_s + b_t``.
"""

from __future__ import annotations

import math

import numpy as np

from scm.encoder import block_rotation
from scm.model import Environment, LinearGaussianSCM, ResidualLaw
from scm.validation import (
    InvalidParameterError,
    as_finite_array,
    check_angle,
    check_covariance,
    check_non_negative,
    psd_sqrt,
)


def _heads(scm: LinearGaussianSCM, weights, bias) -> tuple[np.ndarray, np.ndarray]:
    weights = as_finite_array(weights, "weights")
    weights = np.atleast_2d(weights)
    if weights.shape != (scm.num_tasks, scm.k):
        raise InvalidParameterError(
            f"weights: expected shape ({scm.num_tasks}, {scm.k}) (one row per task), "
            f"got {weights.shape}"
        )
    bias = np.zeros(scm.num_tasks) if bias is None else as_finite_array(bias, "bias", ndim=1)
    if bias.shape != (scm.num_tasks,):
        raise InvalidParameterError(f"bias: expected shape ({scm.num_tasks},), got {bias.shape}")
    return weights, bias


def stream_covariance(scm: LinearGaussianSCM, psi: float, env: Environment) -> np.ndarray:
    """``Cov([Zhat_s; Zhat_r]) = R(psi) Sigma_joint R(psi)^T`` in ``env``."""
    rotation = block_rotation(psi, scm.k)
    return rotation @ scm.joint_covariance(env) @ rotation.T


def risks(scm: LinearGaussianSCM, psi: float, weights, bias=None, env: Environment = "source"):
    """Squared-error risk of every task's head (S1), shape (K,).

    With ``v_t = [beta_t - c w_t; -s w_t]`` and the joint covariance of ``[Z_s; Z_r]``,
    ``R_e = v_t^T Sigma_joint v_t + (s w_t^T mu_e + b_t)^2 + sigma_t^2``, which for ``rho = 0`` is
    ``(beta - c w)^T Sigma_s (beta - c w) + s^2 w^T Sigma_e w + (s w^T mu_e + b)^2 + sigma^2``.
    """
    psi = check_angle(psi)
    weights, bias = _heads(scm, weights, bias)
    c, s = math.cos(psi), math.sin(psi)
    directions = np.concatenate([scm.beta - c * weights, -s * weights], axis=1)
    variance = np.einsum("ti,ij,tj->t", directions, scm.joint_covariance(env), directions)
    offset = s * weights @ scm.law(env).mean + bias
    return variance + offset**2 + scm.noise_std**2


def optimal_heads(scm: LinearGaussianSCM, psi: float, env: Environment = "source"):
    """The risk-minimising heads in ``env`` (S3), as ``(weights (K, k), bias (K,))``.

    Least squares of ``Y_t`` on ``Zhat_s``: ``w_t* = Cov(Zhat_s)^+ Cov(Zhat_s, Y_t)`` and
    ``b_t* = -w_t*^T E[Zhat_s]``; for ``rho = 0`` this is
    ``w_t* = c (c^2 Sigma_s + s^2 Sigma_e)^{-1} Sigma_s beta_t``, ``b_t* = -s w_t*^T mu_e``.
    The pseudo-inverse gives the minimum-norm head when ``Cov(Zhat_s)`` is singular.
    """
    psi = check_angle(psi)
    c, s = math.cos(psi), math.sin(psi)
    cross = scm.cross_covariance(env)
    covariance = c * c * scm.sigma_s + s * s * scm.law(env).cov + c * s * (cross + cross.T)
    target_covariance = (c * scm.sigma_s + s * cross) @ scm.beta.T
    weights = (np.linalg.pinv(covariance, hermitian=True) @ target_covariance).T
    bias = -s * weights @ scm.law(env).mean
    return weights, bias


def ood_gap(scm: LinearGaussianSCM, psi: float, weights, bias=None) -> np.ndarray:
    """``R_T - R_S`` per task (S1)."""
    return risks(scm, psi, weights, bias, "target") - risks(scm, psi, weights, bias, "source")


def ood_gap_formula(scm: LinearGaussianSCM, psi: float, weights, bias=None) -> np.ndarray:
    """The gap written as in S1 (``rho = 0``):
    ``s^2 w^T (Sigma_T - Sigma_S) w + (s w^T mu_T + b)^2 - (s w^T mu_S + b)^2``."""
    psi = check_angle(psi)
    weights, bias = _heads(scm, weights, bias)
    s = math.sin(psi)
    delta = scm.target.cov - scm.source.cov
    quadratic = s * s * np.einsum("ti,ij,tj->t", weights, delta, weights)
    return (
        quadratic
        + (s * weights @ scm.target.mean + bias) ** 2
        - (s * weights @ scm.source.mean + bias) ** 2
    )


def worst_case_target_covariance(source_cov, head, delta: float) -> np.ndarray:
    """``Sigma_S + delta w w^T / ||w||^2``: the maximiser of the gap at Frobenius shift ``delta`` (S2)."""
    source_cov = check_covariance(source_cov, "source_cov")
    head = as_finite_array(head, "head", ndim=1)
    if head.shape != (source_cov.shape[0],):
        raise InvalidParameterError(
            f"head: expected shape ({source_cov.shape[0]},), got {head.shape}"
        )
    norm_sq = float(head @ head)
    if norm_sq == 0.0:
        raise InvalidParameterError("head: expected a non-zero head, the worst case is undefined")
    delta = check_non_negative(delta, "delta")
    return source_cov + delta * np.outer(head, head) / norm_sq


def worst_case_gap(psi: float, head, delta: float) -> float:
    """``sup { R_T - R_S : Sigma_T PSD, ||Sigma_T - Sigma_S||_F <= delta } = s^2 ||w||^2 delta`` (S2)."""
    psi = check_angle(psi)
    head = as_finite_array(head, "head", ndim=1)
    delta = check_non_negative(delta, "delta")
    return math.sin(psi) ** 2 * float(head @ head) * delta


def population_cka(scm: LinearGaussianSCM, psi: float, env: Environment = "source") -> float:
    """Population linear CKA between the streams (S6).

    ``CKA = ||C_sr||_F^2 / (||C_ss||_F ||C_rr||_F)`` with ``C`` the blocks of
    ``Cov([Zhat_s; Zhat_r])``. Zero when both streams are constant.
    """
    covariance = stream_covariance(scm, psi, env)
    k = scm.k
    c_ss, c_sr, c_rr = covariance[:k, :k], covariance[:k, k:], covariance[k:, k:]
    denominator = np.linalg.norm(c_ss, "fro") * np.linalg.norm(c_rr, "fro")
    if denominator == 0.0:
        return 0.0
    return float(np.linalg.norm(c_sr, "fro") ** 2 / denominator)


def gaussian_w2(law_a: ResidualLaw, law_b: ResidualLaw) -> float:
    """2-Wasserstein distance between Gaussians:
    ``W_2^2 = ||m_a - m_b||^2 + tr(S_a + S_b - 2 (S_b^{1/2} S_a S_b^{1/2})^{1/2})``."""
    if law_a.mean.shape != law_b.mean.shape:
        raise InvalidParameterError(
            f"law_b: expected dimension {law_a.mean.shape[0]}, got {law_b.mean.shape[0]}"
        )
    root_b = psd_sqrt(law_b.cov)
    cross = psd_sqrt(root_b @ law_a.cov @ root_b)
    squared = float(
        np.sum((law_a.mean - law_b.mean) ** 2)
        + np.trace(law_a.cov)
        + np.trace(law_b.cov)
        - 2.0 * np.trace(cross)
    )
    return math.sqrt(max(squared, 0.0))


def leakage_coefficient(psi: float) -> float:
    """``lambda_leak = |sin psi|`` for the encoder of setting S (S5)."""
    return abs(math.sin(check_angle(psi)))


def linear_encoder_leakage(scm: LinearGaussianSCM, encoder: np.ndarray) -> float:
    """``lambda_leak = ||d Zhat_s / d z_r||_op`` for a linear encoder ``Zhat = E x`` of the linear SCM.

    ``Zhat_s = E_s G [z_s; z_r]``, so the Jacobian in ``z_r`` is the right block of ``E_s G``.
    """
    encoder = as_finite_array(encoder, "encoder", ndim=2)
    if encoder.shape[1] != 2 * scm.k or encoder.shape[0] < scm.k:
        raise InvalidParameterError(
            f"encoder: expected shape (>= {scm.k}, {2 * scm.k}), got {encoder.shape}"
        )
    jacobian = (encoder[: scm.k] @ scm.mixing)[:, scm.k :]
    return float(np.linalg.norm(jacobian, 2))
