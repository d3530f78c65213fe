"""S13 (beyond the paper): a label-conditional independence penalty and a label-mediated shortcut.

Setting S with a residual that follows the labels in the source only, ``Z_r = A Y + E`` (``A = 0``
in the target); closed forms and numerics in :mod:`scm.label_correlation`. Scalar case
``Sigma_s = 1``, ``Sigma_S = v``, loading ``a``, ``m = beta^2 + sigma^2``,
``tau = Var(Z_s | Y) = sigma^2 / m`` (``1 - 2 beta^2 / (pi m)`` for a binary label), ``q`` the
correlation of ``Z_s`` and ``E`` not mediated by the label (S11's ``rho sqrt(v)``):

1. *The unconditional penalty is biased.* ``CKA(0) = (a beta + q)^2 / (a^2 m + v + 2 a beta q)``,
   ``> 0`` whenever ``a beta != 0``: its zero is S11's ``psi_c`` of the source covariance, not 0.
2. *The conditional one is not.* Partialling the label out (the Schur complement of its block)
   leaves ``Cov(Z_s, Z_r | Y) = [[tau, q tau], [q tau, v - q^2 (1 - tau)]]``, free of ``a``; at
   ``q = 0`` the streams' conditional cross-covariance is ``c s (v - tau)``, zero at psi = 0. It
   identifies psi (zero only at 0 and at the swap pi/2) iff ``v != tau``: blind at ``v = tau``
   (S6's blind point moves from ``Sigma_S = Sigma_s`` to ``Sigma_S = Cov(Z_s | Y)``), and a step
   (1 off its zeros, no gradient) when the label explains a whole stream (``tau = 0``: ``sigma =
   0``; or ``v = 0``). With ``t = tan^2 psi`` it is ``t (v - tau)^2 / ((tau + t v)(t tau + v))``,
   rising on ``(0, pi/4)`` (derivative ``tau v (1 - t^2) (v - tau)^2 / (...)^2``).
3. *What it needs of the encoder* (S10 with the conditional covariance in place of ``Sigma``): a
   free linear encoder reaches zero conditional CKA at any leakage (S10's decorrelating encoder),
   and a nuisance the encoder keeps out of ``Z_r`` altogether is invisible to any penalty between
   the streams. In the rotation family (stream-orthogonal, invertible: what reconstruction
   grounding and an orthogonal split give) zero conditional CKA means psi in {0, pi/2}, and the
   task loss must rule out the swap: ``R*_S(pi/2) = m v / (a^2 m + v)`` is below ``R*_S(0) =
   sigma^2`` when ``a^2 sigma^2 m > v beta^2`` (a strong shortcut), and then only grounding or the
   initialisation keeps the encoder near 0.
4. *Training.* ``R*_S = m - N^2 / D`` with ``N = c beta + s (a m + q beta)`` has slope
   ``-2 a beta sigma^2`` at 0 (free of ``q``): the label's copy in ``Z_r`` carries its noise, so
   the source prefers the shortcut angle ``tan psi* = a sigma^2 / (v beta)`` and every balancer
   (S3) goes there. ``R*_S + lam CKA_c`` has its minimiser strictly between 0 and ``psi*`` when
   ``|psi*| < pi/4`` and ``v != tau`` (``f'(0) = -2 a beta sigma^2``, ``f'(psi*) = lam CKA_c'(psi*)``
   of the other sign), tending to 0 as ``lam`` grows; ``R*_S + lam CKA`` goes towards ``psi_c``.
   What this predicts for training is checked and tabulated in :mod:`proofs.s13_predictions`.
5. *Counterexample.* A correlation not carried by the label (``q != 0``) biases the conditional
   penalty too: ``Cov(Z_s, Z_r | Y) = q tau != 0`` at psi = 0 and its zero moves to
   ``tan 2 psi = 2 q tau / (tau - v + q^2 (1 - tau))``.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from proofs.headline import Headline
from proofs.montecarlo import FLOAT64_ROUNDOFF, Z_SCORE, mean_and_standard_error
from proofs.s13_predictions import (
    EXAMPLE,
    endpoint_checks,
    example,
    random_model,
    regime_table,
    simulated_sign_checks,
)
from proofs.statement import Evidence, NumericCheck, Statement, SymbolicStep, Verdict
from proofs.symbolic import identity_step, matrix_identity_step

FINITE_DIFFERENCE_STEP = 1e-5
FINITE_DIFFERENCE_TOLERANCE = 1e-6
"""As in S11: central differences at 1e-5 err by ~1e-10 on these smooth O(1-100) functions."""


def _circle_step(name: str, lhs, rhs, c, s) -> SymbolicStep:
    from proofs.s4_encoder_drift import _zero_on_circle

    return SymbolicStep(
        name, str(lhs)[:160], str(rhs)[:160], "==", _zero_on_circle(lhs - rhs, c, s)
    )


def _rotated(covariance: sp.Matrix, c, s) -> sp.Matrix:
    return sp.Matrix([[c, s], [-s, c]]) * covariance * sp.Matrix([[c, s], [-s, c]]).T


def derive() -> list[SymbolicStep]:
    from proofs.s4_encoder_drift import _d_dpsi

    c, s, a, q, beta, c_y, w, mu, shift = sp.symbols("c s a q beta c_y w mu Delta", real=True)
    sigma, v, var_y, positive_beta = sp.symbols("sigma v V_y b", positive=True)
    m = beta**2 + sigma**2
    structural = sp.Matrix([[1, 0, 0], [a * beta, 1, a], [beta, 0, 1]])
    base = sp.Matrix([[1, q, 0], [q, v, 0], [0, 0, sigma**2]])
    joint = structural * base * structural.T
    p12, p22, g = a * beta + q, a**2 * m + v + 2 * a * beta * q, a * m + q * beta
    steps = [
        matrix_identity_step(
            "Cov_S(Z_s, Z_r, Y) for Z_r = a Y + E, Y = beta Z_s + eps, Cov(Z_s, E) = q",
            joint,
            sp.Matrix([[1, p12, beta], [p12, p22, g], [beta, g, m]]),
        )
    ]
    any_structural = sp.Matrix([[1, 0, 0], [q, 1, a], [0, 0, 1]])
    any_base = sp.Matrix([[1, 0, c_y], [0, v - q**2, 0], [c_y, 0, var_y]])
    any_joint = any_structural * any_base * any_structural.T
    tau_any = 1 - c_y**2 / var_y
    schur = any_joint[:2, :2] - any_joint[:2, 2] * any_joint[2, :2] / var_y
    steps.append(
        matrix_identity_step(
            "any label Y of (Z_s, eps) (Cov(Z_s, Y) = c_y, Var Y = V_y), Z_r = a Y + q Z_s + E_perp: "
            "Cov(Z_s, Z_r | Y) = [[tau, q tau], [q tau, v - q^2 (1 - tau)]], tau = 1 - c_y^2/V_y, "
            "free of a",
            schur,
            sp.Matrix([[tau_any, q * tau_any], [q * tau_any, v - q**2 * (1 - tau_any)]]),
        )
    )
    tau = sigma**2 / m
    steps.append(
        identity_step(
            "regression label: tau = sigma^2 / m", tau_any.subs({c_y: beta, var_y: m}), tau
        )
    )
    z = sp.Symbol("z", real=True)
    stein = sp.integrate(
        positive_beta
        * sp.exp(-(z**2) * (1 + positive_beta**2 / sigma**2) / 2)
        / (2 * sp.pi * sigma),
        (z, -sp.oo, sp.oo),
    )
    steps.append(
        identity_step(
            "binary label 1{b Z_s + eps > 0}: Cov(Z_s, Y) = b E[phi_eps(b Z_s)] (Stein) = "
            "b / sqrt(2 pi m) (odd in b)",
            stein,
            positive_beta / sp.sqrt(2 * sp.pi * (positive_beta**2 + sigma**2)),
        )
    )
    tau = sp.Symbol("tau", positive=True)
    conditional = sp.diag(tau, v)
    stream = _rotated(conditional, c, s)
    steps.append(
        identity_step(
            "q = 0: conditional cross-covariance of the streams = c s (v - tau)",
            stream[0, 1],
            c * s * (v - tau),
        )
    )
    t = sp.Symbol("t", nonnegative=True)
    cka_c = stream[0, 1] ** 2 / (stream[0, 0] * stream[1, 1])
    in_t = t * (v - tau) ** 2 / ((tau + t * v) * (t * tau + v))
    steps.append(
        identity_step(
            "CKA_c = t (v - tau)^2 / ((tau + t v)(t tau + v)), t = tan^2 psi",
            cka_c.subs(s, c * sp.sqrt(t)),
            in_t,
        )
    )
    steps.append(
        identity_step(
            "dCKA_c/dt = (v - tau)^2 tau v (1 - t^2) / ((tau + t v)(t tau + v))^2: rises on "
            "(0, pi/4), falls on (pi/4, pi/2)",
            sp.diff(t / ((tau + t * v) * (t * tau + v)), t),
            tau * v * (1 - t**2) / ((tau + t * v) * (t * tau + v)) ** 2,
        )
    )
    at_zero = _rotated(joint[:2, :2], 1, 0)
    steps.append(
        identity_step(
            "unconditional CKA(0) = (a beta + q)^2 / (a^2 m + v + 2 a beta q)",
            at_zero[0, 1] ** 2 / (at_zero[0, 0] * at_zero[1, 1]),
            (a * beta + q) ** 2 / (a**2 * m + v + 2 * a * beta * q),
        )
    )
    uncond = _rotated(joint[:2, :2], c, s)
    d, k = uncond[0, 0], uncond[0, 1]
    n = c * beta + s * g
    residual = sp.Matrix([-w * c, -w * s, 1])
    steps.append(
        identity_step(
            "R_S(w) = Var(Y - w Zhat_s) = m - 2 w N + w^2 D, N = c beta + s (a m + q beta)",
            (residual.T * joint * residual)[0],
            m - 2 * w * n + w**2 * d,
        )
    )
    steps.append(
        identity_step("w* = N / D", sp.solve(sp.diff(m - 2 * w * n + w**2 * d, w), w)[0], n / d)
    )
    profile = m - n**2 / d
    n_prime = _d_dpsi(n, c, s)
    steps.append(
        _circle_step(
            "dR*_S/dpsi = -2 N (N' D - N K) / D^2 (D' = 2 K)",
            _d_dpsi(profile, c, s),
            -2 * n * (n_prime * d - n * k) / d**2,
            c,
            s,
        )
    )
    steps.append(
        identity_step(
            "dR*_S/dpsi(0) = -2 a beta sigma^2, free of q",
            (-2 * n * (n_prime * d - n * k) / d**2).subs({c: 1, s: 0}),
            -2 * a * beta * sigma**2,
        )
    )
    stationary = (n_prime * d - n * k).subs(q, 0)
    steps.append(
        identity_step(
            "q = 0: N' D - N K = 0 at (c, s) ~ (v beta, a sigma^2): tan psi* = a sigma^2 / (v beta)",
            stationary.subs({c: v * beta, s: a * sigma**2}),
            0,
        )
    )
    steps.append(
        identity_step(
            "q = 0: swap R*_S(pi/2) = m v / (a^2 m + v)",
            profile.subs({q: 0, c: 0, s: 1}),
            m * v / (a**2 * m + v),
        )
    )
    target = sp.Matrix([[1, 0, beta], [0, v + shift, 0], [beta, 0, m]])
    steps.append(
        identity_step(
            "R_T(w) = (beta - w c)^2 + sigma^2 + w^2 s^2 (v + Delta + mu_T^2) (Z_r independent in T)",
            (residual.T * target * residual)[0] + (w * s * mu) ** 2,
            (beta - w * c) ** 2 + sigma**2 + w**2 * s**2 * (v + shift + mu**2),
        )
    )
    correlated = _rotated(sp.Matrix([[tau, q * tau], [q * tau, v - q**2 * (1 - tau)]]), 1, 0)
    steps.append(
        identity_step(
            "q != 0: CKA_c(0) = q^2 tau / (v - q^2 (1 - tau)) (the counterexample)",
            correlated[0, 1] ** 2 / (correlated[0, 0] * correlated[1, 1]),
            q**2 * tau / (v - q**2 * (1 - tau)),
        )
    )
    return steps


def _general_of(model) -> tuple[np.ndarray, np.ndarray]:
    """The scalar model through the any-k functions: source and conditional covariances."""
    from scm.label_correlation import conditional_covariance, label_joint_covariance

    joint = label_joint_covariance(
        [[1.0]], [[model.v]], [[model.loading]], [[model.beta]], [model.noise_std], [[model.q]]
    )
    return joint, conditional_covariance(joint, 1)


def _closed_form_checks(rng: np.random.Generator, evidence: Evidence, cases: int = 8) -> None:
    """Scalar closed forms against the any-k Schur complement and finite differences."""
    from scm.label_correlation import rotation_cka

    worst = dict.fromkeys(("joint", "cka", "risk", "gap", "slope", "zero", "shortcut"), 0.0)
    h = FINITE_DIFFERENCE_STEP
    for _ in range(cases):
        model = random_model(rng)
        joint, conditional = _general_of(model)
        worst["joint"] = max(
            worst["joint"], float(np.max(np.abs(joint - model.source_covariance())))
        )
        for psi in rng.uniform(-math.pi / 2, math.pi / 2, 4):
            pairs = ((joint[:2, :2], False), (conditional, True))
            for covariance, given in pairs:
                error = abs(rotation_cka(covariance, psi) - float(model.cka(psi, given)))
                worst["cka"] = max(worst["cka"], error)
                numeric = (model.cka(psi + h, given) - model.cka(psi - h, given)) / (2 * h)
                worst["slope"] = max(
                    worst["slope"], abs(float(model.cka_slope(psi, given) - numeric))
                )
            c, s = math.cos(psi), math.sin(psi)
            reading = np.array([c, s])
            n, d = reading @ joint[:2, 2], reading @ joint[:2, :2] @ reading
            worst["risk"] = max(
                worst["risk"], abs(model.profile_risk(psi) - (joint[2, 2] - n * n / d))
            )
            numeric = (model.profile_risk(psi + h) - model.profile_risk(psi - h)) / (2 * h)
            worst["slope"] = max(worst["slope"], abs(float(model.profile_slope(psi) - numeric)))
            w = n / d
            target = np.diag([1.0, model.v + 1.0])
            direction = np.array([model.beta - w * c, -w * s])
            stated = direction @ target @ direction + model.noise_std**2 - (joint[2, 2] - n * n / d)
            worst["gap"] = max(worst["gap"], abs(float(model.ood_gap(psi, 1.0)) - stated))
        for given in (False, True):
            worst["zero"] = max(worst["zero"], float(model.cka(model.cka_zero_angle(given), given)))
        angles = np.linspace(-math.pi / 2, math.pi / 2, 20001)
        offset = abs(angles[int(np.argmin(model.profile_risk(angles)))] - model.shortcut_angle())
        worst["shortcut"] = max(worst["shortcut"], min(offset, math.pi - offset))
    texts = {
        "joint": (
            "ScalarLabelSCM.source_covariance = the structural L Sigma L^T",
            FLOAT64_ROUNDOFF,
        ),
        "cka": ("scalar CKA and CKA_c = the any-k Schur complement and rotation", FLOAT64_ROUNDOFF),
        "risk": ("R*_S = m - N^2 / D = the joint's Var(Y) - N^2 / D", FLOAT64_ROUNDOFF),
        "gap": (
            "gap closed form = target minus source risk from the covariances",
            FLOAT64_ROUNDOFF,
        ),
        "slope": (
            "dR*_S/dpsi, dCKA/dpsi, dCKA_c/dpsi = central differences",
            FINITE_DIFFERENCE_TOLERANCE,
        ),
        "zero": ("CKA and CKA_c vanish at their stated zero angles", FLOAT64_ROUNDOFF),
        "shortcut": ("shortcut angle = argmin of R*_S on a grid of step pi/20000", math.pi / 20000),
    }
    bases = {
        FLOAT64_ROUNDOFF: "float64 round-off",
        FINITE_DIFFERENCE_TOLERANCE: f"central differences at h = {FINITE_DIFFERENCE_STEP:g}",
        math.pi / 20000: "the grid step",
    }
    for key, (text, tolerance) in texts.items():
        evidence.checks.append(
            NumericCheck(
                f"k=1, {cases} random (v, a, beta, sigma, rho): {text}",
                float(worst[key]),
                0.0,
                tolerance,
                bases[tolerance],
            )
        )


def _random_general(rng: np.random.Generator, k: int, tasks: int, cross: float = 0.0):
    from scm.generate import random_psd
    from scm.label_correlation import label_joint_covariance

    sigma_s, sigma_e = random_psd(k, rng), random_psd(k, rng)
    loading = rng.standard_normal((k, tasks))
    beta = rng.standard_normal((tasks, k))
    noise = rng.uniform(0.2, 1.0, tasks)
    base = cross * np.linalg.cholesky(sigma_s) @ np.linalg.cholesky(sigma_e).T
    joint = label_joint_covariance(sigma_s, sigma_e, loading, beta, noise, base)
    return joint, (sigma_s, sigma_e, loading, beta, noise, base)


def _general_checks(rng: np.random.Generator, evidence: Evidence) -> list[dict]:
    """Any k and K: the conditional cross block is 0 and free of A; the streams' conditional
    cross-covariance is c s (Sigma_S - T); CKA(0) > 0; CKA_c > 0 off {0, pi/2} unless
    Sigma_S = T (then 0 everywhere); with Cov(Z_s, E) = X the block is T Sigma_s^{-1} X."""
    from scm.label_correlation import conditional_covariance, label_joint_covariance, rotation_cka

    rows, worst = [], dict.fromkeys(("zero", "free_of_a", "cross", "blind", "with_x"), 0.0)
    positive_misses = 0
    interior = np.linspace(0.05, math.pi / 2 - 0.05, 12)
    for k, tasks in ((1, 2), (2, 1), (2, 3), (3, 2)):
        joint, (sigma_s, sigma_e, loading, beta, noise, _) = _random_general(rng, k, tasks)
        conditional = conditional_covariance(joint, k)
        worst["zero"] = max(worst["zero"], float(np.max(np.abs(conditional[:k, k:]))))
        unloaded = label_joint_covariance(sigma_s, sigma_e, np.zeros_like(loading), beta, noise)
        gap = np.abs(conditional - conditional_covariance(unloaded, k))
        worst["free_of_a"] = max(worst["free_of_a"], float(np.max(gap)))
        semantic = conditional[:k, :k]
        for psi in (0.3, 1.1):
            c, s, eye = math.cos(psi), math.sin(psi), np.eye(k)
            rotation = np.block([[c * eye, s * eye], [-s * eye, c * eye]])
            block = (rotation @ conditional @ rotation.T)[:k, k:]
            stated = c * s * (sigma_e - semantic)
            worst["cross"] = max(worst["cross"], float(np.max(np.abs(block - stated))))
        values = [rotation_cka(conditional, psi) for psi in interior]
        positive_misses += int(min(values) <= 0.0)
        blind = conditional.copy()
        blind[k:, k:] = semantic
        worst["blind"] = max(worst["blind"], max(rotation_cka(blind, psi) for psi in interior))
        correlated, (sigma_s, *_, base) = _random_general(rng, k, tasks, cross=0.5)
        given = conditional_covariance(correlated, k)
        stated = given[:k, :k] @ np.linalg.solve(sigma_s, base)
        worst["with_x"] = max(worst["with_x"], float(np.max(np.abs(given[:k, k:] - stated))))
        rows.append(
            {
                "k": k,
                "tasks": tasks,
                "cka_at_0": rotation_cka(joint[: 2 * k, : 2 * k], 0.0),
                "conditional_cka_at_0": rotation_cka(conditional, 0.0),
                "min_conditional_cka_off_zero": float(min(values)),
                "conditional_cka_at_0_with_x": rotation_cka(given, 0.0),
            }
        )
    misses = sum(row["cka_at_0"] <= 0.0 for row in rows)
    for key, text in (
        ("zero", "Cov(Z_s, Z_r | Y) = 0 for X = 0"),
        ("free_of_a", "Cov([Z_s; Z_r] | Y) is the same with A = 0"),
        ("cross", "conditional stream cross-covariance = c s (Sigma_S - T)"),
        ("blind", "Sigma_S = T: CKA_c = 0 at every angle"),
        ("with_x", "Cov(Z_s, Z_r | Y) = T Sigma_s^{-1} X with X != 0"),
    ):
        evidence.checks.append(
            NumericCheck(
                f"k, K in (1,2), (2,1), (2,3), (3,2): {text}",
                worst[key],
                0.0,
                FLOAT64_ROUNDOFF,
                "float64 round-off",
            )
        )
    evidence.checks.append(
        NumericCheck(
            "random A, B: unconditional CKA(0) > 0 and CKA_c > 0 off {0, pi/2} (misses)",
            float(misses + positive_misses),
            0.0,
            0.0,
            "exact count",
        )
    )
    return rows


def _encoder_findings(rng: np.random.Generator, evidence: Evidence) -> dict:
    """S10 with the conditional covariance: a free linear encoder reaches zero conditional CKA at
    any relative leakage; in the rotation family the zeros are 0 and the swap pi/2."""
    from scm.correlation import decorrelating_encoder, latent_map_cka, relative_leakage
    from scm.label_correlation import conditional_covariance

    joint, _ = _random_general(rng, 2, 2)
    conditional = conditional_covariance(joint, 2)
    rows = []
    for target in (0.1, 1.0, 10.0):
        leak = rng.standard_normal((2, 2))
        leak *= target / np.linalg.norm(leak, 2)
        latent_map = decorrelating_encoder(
            conditional[:2, :2], conditional[2:, 2:], np.eye(2), leak
        )
        rows.append(
            {
                "conditional_cka": latent_map_cka(conditional, latent_map),
                "lambda_rel": relative_leakage(latent_map),
            }
        )
    evidence.checks.append(
        NumericCheck(
            "free linear encoder (S10's construction on Cov(. | Y)): conditional CKA = 0 at lambda_rel 0.1, 1, 10",
            max(row["conditional_cka"] for row in rows),
            0.0,
            FLOAT64_ROUNDOFF,
            "float64 round-off",
        )
    )
    model = example()
    angles = np.linspace(-math.pi / 2, math.pi / 2, 4001)
    values = model.cka(angles, conditional=True)
    zeros = angles[values <= FLOAT64_ROUNDOFF]
    evidence.checks.append(
        NumericCheck(
            "rotation family, worked example: CKA_c vanishes on [-pi/2, pi/2] only at 0 and +-pi/2",
            float(
                np.min(np.abs(np.abs(zeros[:, None]) - np.array([0.0, math.pi / 2])), axis=1).max()
            ),
            0.0,
            FLOAT64_ROUNDOFF,
            "exact grid points",
        )
    )
    return {"free_linear_encoder": rows}


def sample_label_scm(model, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` source draws of ``(Z_s, Z_r, Y)`` of the scalar model (regression or binary label)."""
    z_s = rng.standard_normal(n)
    noise = model.noise_std * rng.standard_normal(n)
    own = math.sqrt(max(model.v - model.q**2, 0.0)) * rng.standard_normal(n)
    score = model.beta * z_s + noise
    y = score if model.label == "regression" else (score > 0).astype(np.float64)
    return {"z_s": z_s, "z_r": model.loading * y + model.q * z_s + own, "y": y}


def _residual_products(draws, psi: float) -> tuple[np.ndarray, np.ndarray]:
    """Products of the centred streams, and of the streams after least squares on ``[1, y]``."""
    c, s = math.cos(psi), math.sin(psi)
    streams = np.stack(
        [c * draws["z_s"] + s * draws["z_r"], -s * draws["z_s"] + c * draws["z_r"]], 1
    )
    design = np.stack([np.ones_like(draws["y"]), draws["y"]], 1)
    residuals = streams - design @ np.linalg.lstsq(design, streams, rcond=None)[0]
    centred = streams - streams.mean(0)
    return centred[:, 0] * centred[:, 1], residuals[:, 0] * residuals[:, 1]


def _monte_carlo_checks(rng: np.random.Generator, evidence: Evidence, draws: int = 200_000):
    """Sample covariances against the closed forms (regression and binary labels, with and
    without q); the library's conditional CKA at psi = 0 centred at 0 over batches."""
    cases = (
        ("regression", example(), 0.4),
        ("binary", example(label="binary", v=0.5), 0.4),
        ("regression, rho = 0.5", example(rho=0.5), 0.0),
    )
    for name, model, psi in cases:
        sample = sample_label_scm(model, draws, rng)
        raw, residual = _residual_products(sample, psi)
        for products, given in ((raw, False), (residual, True)):
            mean, error = mean_and_standard_error(products)
            _, stated, _ = model.stream_moments(psi, conditional=given)
            label = "label-residualised" if given else "unconditional"
            evidence.checks.append(
                NumericCheck(
                    f"{name} Monte Carlo ({draws} draws), psi = {psi}: {label} stream covariance = closed form",
                    mean,
                    float(stated),
                    Z_SCORE * error + 3.0 / draws,
                    f"{Z_SCORE:g} standard errors, plus the O(1/n) bias of the fitted intercept and slope",
                )
            )
    binary = example(label="binary", v=0.5)
    sample = sample_label_scm(binary, draws, rng)
    z_s, positive = sample["z_s"], sample["y"] > 0
    within = z_s - np.where(positive, z_s[positive].mean(), z_s[~positive].mean())
    mean, error = mean_and_standard_error(within**2)
    evidence.checks.append(
        NumericCheck(
            f"binary Monte Carlo ({draws} draws): within-class Var Z_s = tau = 1 - 2 beta^2 / (pi m)",
            mean,
            binary.tau,
            Z_SCORE * error + 2.0 / draws,
            f"{Z_SCORE:g} standard errors, plus the O(1/n) bias of two fitted class means",
        )
    )
    _estimator_checks(rng, evidence)


def _estimator_checks(
    rng: np.random.Generator, evidence: Evidence, batches: int = 200, size: int = 128
):
    """The library's estimators on batches at psi = 0 of the worked example: the conditional
    debiased CKA is centred at 0, the unconditional one at about CKA(0) > 0."""
    import torch

    from coremtl.cka import conditional_linear_cka, linear_cka

    model = example()
    conditional, unconditional = [], []
    for _ in range(batches):
        sample = sample_label_scm(model, size, rng)
        z_s, z_r, y = (torch.as_tensor(sample[key])[:, None] for key in ("z_s", "z_r", "y"))
        conditional.append(float(conditional_linear_cka(z_s, z_r, y)))
        unconditional.append(float(linear_cka(z_s, z_r)))
    mean, error = mean_and_standard_error(np.array(conditional))
    evidence.checks.append(
        NumericCheck(
            f"coremtl.cka.conditional_linear_cka, psi = 0, {batches} batches of {size}: mean = 0",
            mean,
            0.0,
            Z_SCORE * error,
            f"{Z_SCORE:g} standard errors over batches",
        )
    )
    mean, error = mean_and_standard_error(np.array(unconditional))
    evidence.checks.append(
        NumericCheck(
            f"coremtl.cka.linear_cka, psi = 0, {batches} batches of {size}: mean > 0 (CKA(0) = {float(model.cka(0.0)):.3f})",
            mean - Z_SCORE * error,
            0.0,
            0.0,
            f"mean minus {Z_SCORE:g} standard errors",
            relation=">=",
        )
    )


def counterexample() -> dict:
    """Where the unqualified wording ("the label-conditional penalty is zero only at the true
    representation") fails, and the other qualifiers, with numbers."""
    from scm.label_correlation import penalised_endpoint

    correlated, clean = example(rho=0.5), example()
    grid = np.linspace(-math.pi / 2, math.pi / 2, 2001)
    found = penalised_endpoint(correlated, 0.0, 1.0, "conditional")
    blind = example(v=clean.tau)
    explained = example(noise_std=0.0)
    swap = example(v=0.1)
    return {
        "correlation_not_mediated": {
            **EXAMPLE,
            "rho": 0.5,
            "conditional_cka_at_0": float(correlated.cka(0.0, conditional=True)),
            "conditional_zero": correlated.cka_zero_angle(conditional=True),
            "conditional_endpoint_lambda1": found,
            "target_risk_there": float(correlated.target_risk(found, 1.0)),
            "target_risk_at_0": float(correlated.target_risk(0.0, 1.0)),
        },
        "blind_v_equals_tau": {
            "v": blind.v,
            "max_conditional_cka": float(np.max(blind.cka(grid, True))),
        },
        "label_explains_semantic_stream": {
            "noise_std": 0.0,
            "conditional_cka_off_zeros": sorted(
                {round(float(x), 12) for x in explained.cka(grid[1:-1][grid[1:-1] != 0], True)}
            ),
            "conditional_cka_at_0": float(explained.cka(0.0, True)),
        },
        "swap_preferred_by_task_loss": {
            "v": 0.1,
            "risk_at_0": float(swap.profile_risk(0.0)),
            "risk_at_swap": float(swap.profile_risk(math.pi / 2)),
            "conditional_cka_at_swap": float(swap.cka(math.pi / 2, True)),
        },
    }


def measure(rng: np.random.Generator) -> Evidence:
    from scm.label_correlation import predicted_outcome

    evidence = Evidence()
    _closed_form_checks(rng, evidence)
    evidence.tables["general"] = _general_checks(rng, evidence)
    evidence.tables["encoders"] = [_encoder_findings(rng, evidence)]
    _monte_carlo_checks(rng, evidence)
    evidence.tables["conditional_minimiser"] = endpoint_checks(rng, evidence)
    evidence.tables["simulated_sign"] = simulated_sign_checks(evidence)
    evidence.tables["regimes_lambda1_shift1"] = regime_table()
    evidence.counterexample = counterexample()
    model = example()
    outcome = predicted_outcome(model, 0.3, 1.0, 1.0)
    evidence.findings.append(
        f"v = 1, a = 1, beta = 1, sigma = 0.5 (tau = {model.tau:.2f}): unconditional CKA(0) = "
        f"{float(model.cka(0.0)):.3f}, zero at psi_c = {model.cka_zero_angle():.3f}; conditional "
        f"CKA zero at 0; the source prefers psi* = {model.shortcut_angle():.3f}. From psi_0 = 0.3 "
        "with lambda = 1 and shift 1: "
        + "; ".join(
            f"{name} ends at {row['psi']:.3f} (gap {row['gap']:.3f}, target risk "
            f"{row['target_risk']:.3f})"
            for name, row in outcome.items()
        )
        + f", against the Bayes target risk {model.noise_std**2:.2f} at psi = 0."
    )
    bad = evidence.counterexample["correlation_not_mediated"]
    evidence.findings.append(
        f"A correlation not carried by the label (rho = 0.5) gives CKA_c(0) = "
        f"{bad['conditional_cka_at_0']:.4f}, moves its zero to {bad['conditional_zero']:.3f} and "
        f"the conditional-penalised end from 0 to {bad['conditional_endpoint_lambda1']:.4f}."
    )
    evidence.headline = Headline(
        "with a correlation not carried by the label (rho = 0.5), conditional CKA at psi = 0",
        bad["conditional_cka_at_0"],
        threshold="0 if only the label carried it",
    )
    swap = evidence.counterexample["swap_preferred_by_task_loss"]
    evidence.findings.append(
        f"At v = 0.1 the swap pi/2 (also a zero of CKA_c) has source risk {swap['risk_at_swap']:.4f} "
        f"below {swap['risk_at_0']:.4f} at psi = 0: the task loss does not anchor against it."
    )
    return evidence


def _measure_unqualified(rng: np.random.Generator) -> Evidence:
    """The unqualified claim: the conditional penalty is zero only at psi = 0 whatever the source."""
    del rng
    evidence = Evidence()
    for rho in (0.3, 0.5, -0.7):
        model = example(rho=rho)
        evidence.checks.append(
            NumericCheck(
                f"v = 1, a = 1, rho = {rho}: the conditional CKA's zero nearest 0 is 0",
                model.cka_zero_angle(conditional=True),
                0.0,
                1e-9,
                "closed form",
            )
        )
    return evidence


ASSUMPTIONS = (
    "setting S with Z_r = A Y + E in the source, A = 0 in the target (target residual independent of Z_s, Y)",
    "k = 1 (Sigma_s = 1, Sigma_S = v, loading a) for the closed forms; any k, K numerically; "
    "regression labels Y = beta Z_s + eps, binary labels 1{beta Z_s + eps > 0} for the CKA statements",
    "labels partialled out linearly (exact for Gaussian labels and for one-hot discrete ones)",
    "rotation encoder at a real angle psi, heads at their source optimum (profile risk), mu_S = 0",
    "each method = gradient flow on R*_S (+ lambda times its penalty) to its end point",
)

STATEMENT = Statement(
    id="S13",
    claim="C4 (label-conditional)",
    title="partialling out the labels removes a label-mediated source correlation from the penalty",
    expected=Verdict.HOLDS_AS_STATED,
    assumptions=ASSUMPTIONS,
    sympy_assumptions={
        "c, s, a, q, beta, c_y, w, mu, Delta": "real",
        "sigma, v, V_y, tau, b": "positive",
        "t": "non-negative",
    },
    derive=derive,
    measure=measure,
    unqualified="the label-conditional independence penalty is zero only at the true representation psi = 0",
)

UNQUALIFIED_S13 = Statement(
    id="S13-unqualified",
    claim="C4 (label-conditional)",
    title="the conditional penalty is zero only at psi = 0 for every source correlation (deliberately wrong)",
    expected=Verdict.FAILS,
    assumptions=ASSUMPTIONS[:3],
    sympy_assumptions=STATEMENT.sympy_assumptions,
    derive=lambda: [],
    measure=_measure_unqualified,
    unqualified=STATEMENT.unqualified,
)
