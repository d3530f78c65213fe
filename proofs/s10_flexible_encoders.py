"""S10 (C4 beyond rotations): when does CKA(Zhat_s, Zhat_r) -> 0 imply lambda_leak -> 0?

Setting S with ``rho = 0``: ``z ~ N(0, Sigma)``, ``Sigma = diag(Sigma_s, Sigma_S)`` positive
definite, and a linear encoder acting on the latents through the invertible ``M = E G``,
``[Zhat_s; Zhat_r] = M z``, ``M = [[A, B], [C, D]]``, ``P_s = [A, B]``, ``P_r = [C, D]``.
Population CKA is zero iff ``C_sr = P_s Sigma P_r^T = 0``. Leakage is normalised by the
semantic gain, ``lambda_rel = ||A^{-1} B||_op`` (``Zhat_s = A (z_s + A^{-1} B z_r)``: invariant
under any reparametrisation of the semantic stream, ``tan psi`` for the rotation encoder); the raw
``||B||_op`` is S5's ``lambda_leak``.

(i) Free linear M. For every semantic block with ``A`` invertible, the residual rows
``P_r = [-Sigma_S B^T A^{-T} Sigma_s^{-1}, I]`` give ``C_sr = 0`` and ``det M = det C_ss /
(det A det Sigma_s) != 0``. So CKA = 0 says nothing about the semantic stream: for
``M = R(theta) Sigma^{-1/2}``, ``M Sigma M^T = I`` and ``lambda_rel = |tan theta|
||Sigma_s^{1/2} Sigma_S^{-1/2}||_op``, unbounded. Norm constraints do not help: for k = 1,
``[[1, b], [-b v, 1]]`` has CKA 0, ``lambda_rel = |b|`` and condition number -> 1 as b -> 0.

(ii) Stream-orthogonal M (``P_s P_r^T = 0``, i.e. ``M = diag(S_s, S_r) Q``, ``Q`` orthogonal; the
orthogonal encoders and any per-stream reparametrisation). ``C_sr = 0`` iff the row space ``U`` of
``P_s`` is Sigma-invariant. If ``spec(Sigma_s)`` and ``spec(Sigma_S)`` are disjoint, every
eigenspace of Sigma lies in the z_s- or the z_r-coordinates, so ``U = U_s (+) U_r``: CKA = 0 and
``A`` invertible imply ``B = 0``; CKA = 0 with ``B != 0`` is a swap of ``dim U_r`` eigen-directions
between the streams (``rank A = k - dim U_r``, raw leakage 1). Swaps lie in the identity's connected
component (k = 1: the rotation by pi/2), so "near the identity" means ``||B||_op < 1``, not
"connected to it". The task loss is the anchor that rules swaps out: a swap loses the semantic
eigen-directions it moves, and the source risk of the optimal head rises by exactly
``sum_i lambda_i (e_i^T beta)^2`` over them, so it is excluded whenever beta has a component on
every eigenvector of Sigma_s (a swap of a direction beta does not use is harmless to the head,
whose weight on it is 0). If the spectra share an eigenvalue (eigenvectors ``e`` of Sigma_s and
``f`` of Sigma_S), rotating the plane ``(e, f)`` keeps CKA at 0 with ``lambda_rel = |tan theta|``.

(iii) Continuity, orthogonal M. ``M Sigma - (M Sigma M^T) M = M Sigma (I - M^T M) = 0``; its
(s, r) block is the Sylvester equation ``B Sigma_S - C_ss B = C_sr D``. For symmetric ``X, Y``
``||Q Y - X Q||_F >= sep(X, Y) ||Q||_F`` (eigenbases: entries ``(y_j - x_i) q_ij``) and
``||D||_op <= 1``, so ``||B||_F <= ||C_sr||_F / sep(C_ss, Sigma_S)``. With ``eps = ||B||_op < 1``,
``A = (I - B B^T)^{1/2} V``, ``||(I - B B^T)^{1/2} - I|| <= eps^2`` and Weyl's inequality, every
eigenvalue of ``C_ss`` lies within ``eps^2 L`` (``L = 2 ||Sigma_s|| + ||Sigma_S||``) of one of
``Sigma_s``; hence for ``eps^2 <= delta / (2 L)``, ``delta = sep(Sigma_s, Sigma_S)``:

    ||B||_op <= 2 ||C_sr||_F / delta <= sqrt(2 CKA) ||Sigma||_F / delta,
    lambda_rel <= ||B||_op / sqrt(1 - ||B||_op^2),

using ``||C_ss||_F^2 + ||C_rr||_F^2 + 2 ||C_sr||_F^2 = ||Sigma||_F^2``.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from proofs.headline import Headline
from proofs.montecarlo import FLOAT64_ROUNDOFF, Z_SCORE, mean_and_standard_error
from proofs.statement import Evidence, NumericCheck, Statement, SymbolicStep, Verdict
from proofs.symbolic import identity_step, matrix, matrix_identity_step, symmetric_matrix

THETAS: tuple[float, ...] = (0.3, 0.6, 1.0)
"""Rotation angles after whitening (the issue's counterexample)."""


def derive() -> list[SymbolicStep]:
    from proofs.s4_encoder_drift import _zero_on_circle

    steps = []
    a, b, c, s = sp.symbols("a b c s", real=True)
    v, u = sp.symbols("v u", positive=True)
    sigma1 = sp.diag(1, v)
    free = sp.Matrix([[a, b], [-b * v, a]])
    steps.append(
        identity_step(
            "k=1 free: M = [[a, b], [-b v, a]] has C_sr = 0 for all a, b (lambda_rel = |b/a|)",
            (free * sigma1 * free.T)[0, 1],
            0,
        )
    )
    steps.append(identity_step("k=1 free: det M = a^2 + b^2 v > 0", free.det(), a**2 + b**2 * v))
    gain, leak = matrix("A", 2, 2, real=True), matrix("B", 2, 2, real=True)
    sigma_s, sigma_r = symmetric_matrix("Sigma_s", 2), symmetric_matrix("Sigma_S", 2)
    residual = -sigma_r * leak.T * gain.inv().T * sigma_s.inv()
    steps.append(
        matrix_identity_step(
            "k=2 free: P_r = [-Sigma_S B^T A^-T Sigma_s^-1, I] gives C_sr = A Sigma_s X^T + B Sigma_S = 0",
            gain * sigma_s * residual.T + leak * sigma_r,
            sp.zeros(2),
        )
    )
    steps.append(
        matrix_identity_step(
            "k=2 free: (A - B X) Sigma_s A^T = A Sigma_s A^T + B Sigma_S B^T = C_ss, so det M = det C_ss / (det A det Sigma_s) != 0",
            (gain - leak * residual) * sigma_s * gain.T,
            gain * sigma_s * gain.T + leak * sigma_r * leak.T,
        )
    )
    whitening = sp.Matrix([[c, s], [-s, c]]) * sp.diag(1, 1 / u)
    white = whitening * sp.diag(1, u**2) * whitening.T - sp.eye(2)
    steps.append(
        SymbolicStep(
            "k=1 whitening + rotation: M Sigma M^T = I (mod c^2 + s^2 = 1), so CKA = 0 for every theta",
            str(white + sp.eye(2)),
            "I",
            "==",
            all(_zero_on_circle(entry, c, s) for entry in white),
        )
    )
    steps.append(
        identity_step(
            "k=1 whitening + rotation: lambda_rel = A^-1 B = tan(theta) / sqrt(v)",
            whitening[0, 1] / whitening[0, 0],
            s / (c * u),
        )
    )
    rotation = sp.Matrix([[c, s], [-s, c]])
    steps.append(
        identity_step(
            "k=1 orthogonal: C_sr = c s (v - 1), zero iff c s = 0 when v != 1 (leakage |s| in {0, 1})",
            (rotation * sigma1 * rotation.T)[0, 1],
            c * s * (v - 1),
        )
    )
    full = matrix("M", 4, 4, real=True)
    sigma = sp.Matrix(sp.BlockMatrix([[sigma_s, sp.zeros(2)], [sp.zeros(2), sigma_r]]))
    stream = full * sigma * full.T
    steps.append(
        matrix_identity_step(
            "k=2: M Sigma - (M Sigma M^T) M = M Sigma (I - M^T M) (zero for orthogonal M)",
            full * sigma - stream * full,
            full * sigma * (sp.eye(4) - full.T * full),
        )
    )
    steps.append(
        matrix_identity_step(
            "k=2: the (s, r) block of M Sigma - (M Sigma M^T) M is B Sigma_S - C_ss B - C_sr D",
            (full * sigma - stream * full)[:2, 2:],
            full[:2, 2:] * sigma_r - stream[:2, :2] * full[:2, 2:] - stream[:2, 2:] * full[2:, 2:],
        )
    )
    x1, x2, y1, y2 = sp.symbols("x_1 x_2 y_1 y_2", real=True)
    q = matrix("q", 2, 2, real=True)
    difference = q * sp.diag(y1, y2) - sp.diag(x1, x2) * q
    steps.append(
        identity_step(
            "Sylvester in eigenbases: ||Q Y - X Q||_F^2 = sum_ij (y_j - x_i)^2 q_ij^2 "
            "(>= sep^2 ||Q||_F^2)",
            sum((entry**2 for entry in difference), sp.Integer(0)),
            sum(
                (
                    (y - x) ** 2 * q[i, j] ** 2
                    for i, x in enumerate((x1, x2))
                    for j, y in enumerate((y1, y2))
                ),
                sp.Integer(0),
            ),
        )
    )
    lam = sp.Symbol("lambda", positive=True)
    shared = rotation * sp.diag(lam, lam) * rotation.T
    steps.append(
        identity_step(
            "shared eigenvalue: rotating the plane (e, f) keeps C_sr = 0 for every theta",
            shared[0, 1].subs(c**2, 1 - s**2),
            0,
        )
    )
    return steps


def _orthogonal_blocks(sigma: np.ndarray, latent_map: np.ndarray):
    from scm.correlation import stream_blocks

    c_ss, c_sr, c_rr = stream_blocks(sigma, latent_map)
    k = sigma.shape[0] // 2
    return c_ss, c_sr, c_rr, latent_map[:k, k:]


def _skew(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.standard_normal((n, n))
    return (a - a.T) / math.sqrt(2 * n)


def _latent_covariance(scm) -> np.ndarray:
    return scm.joint_covariance("source")


def _free_encoder_checks(rng: np.random.Generator, evidence: Evidence, batch: int, repeats: int):
    """The issue's counterexample (whitening + rotation) and the decorrelating construction."""
    import torch

    from coremtl.cka import linear_cka
    from scm import random_scm, sample
    from scm.correlation import (
        decorrelating_encoder,
        latent_map_cka,
        raw_leakage,
        relative_leakage,
        whitening_rotation,
    )
    from scm.validation import psd_sqrt

    scm = random_scm(k=2, num_tasks=1, seed=int(rng.integers(2**31)), mixing="haar")
    sigma = _latent_covariance(scm)
    root_s, inverse_root_r = psd_sqrt(scm.sigma_s), np.linalg.inv(psd_sqrt(scm.source.cov))
    relative_scale = float(np.linalg.norm(root_s @ inverse_root_r, 2))
    raw_scale = float(np.linalg.norm(inverse_root_r, 2))
    rows = []
    for theta in THETAS:
        latent_map = whitening_rotation(sigma, theta)
        cka = latent_map_cka(sigma, latent_map)
        evidence.checks.append(
            NumericCheck(
                f"free, theta={theta}: population CKA of R(theta) Sigma^-1/2 = 0",
                cka,
                0.0,
                FLOAT64_ROUNDOFF,
                "float64 round-off",
            )
        )
        evidence.checks.append(
            NumericCheck(
                f"free, theta={theta}: lambda_rel = tan(theta) ||Sigma_s^1/2 Sigma_S^-1/2||",
                relative_leakage(latent_map),
                math.tan(theta) * relative_scale,
                FLOAT64_ROUNDOFF * max(1.0, relative_scale),
                "float64 round-off",
            )
        )
        encoder = latent_map @ scm.mixing.T
        estimates = []
        for _ in range(repeats):
            drawn = sample(scm, batch, "source", seed=rng)
            streams = drawn.x @ encoder.T
            estimates.append(
                float(
                    linear_cka(
                        torch.as_tensor(streams[:, :2]),
                        torch.as_tensor(streams[:, 2:]),
                        debiased=True,
                    )
                )
            )
        mean, error = mean_and_standard_error(np.array(estimates))
        evidence.checks.append(
            NumericCheck(
                f"free, theta={theta}: debiased minibatch CKA of x -> M G^T x is 0",
                mean,
                0.0,
                Z_SCORE * error + 1.0 / batch,
                f"{Z_SCORE:g} standard errors over {repeats} batches of {batch}, plus the O(1/n) "
                "bias of a ratio of unbiased HSIC estimates",
            )
        )
        rows.append(
            {
                "theta": theta,
                "population_cka": cka,
                "minibatch_cka": mean,
                "minibatch_cka_se": error,
                "lambda_rel": relative_leakage(latent_map),
                "lambda_raw": raw_leakage(latent_map),
                "raw_over_sin_theta": raw_leakage(latent_map) / math.sin(theta),
                "min_eig_sigma_S": float(np.linalg.eigvalsh(scm.source.cov)[0]),
            }
        )
    evidence.checks.append(
        NumericCheck(
            "free: lambda_raw / sin(theta) = ||Sigma_S^-1/2||_op for every theta",
            max(abs(row["raw_over_sin_theta"] - raw_scale) for row in rows),
            0.0,
            FLOAT64_ROUNDOFF * max(1.0, raw_scale),
            "float64 round-off",
        )
    )
    gain = rng.standard_normal((2, 2)) + 2 * np.eye(2)
    leak = gain @ rng.standard_normal((2, 2))
    leak *= 10.0 / float(np.linalg.norm(np.linalg.solve(gain, leak), 2))
    constructed = decorrelating_encoder(scm.sigma_s, scm.source.cov, gain, leak)
    evidence.checks.append(
        NumericCheck(
            "free: decorrelating residual rows for a semantic block with lambda_rel = 10 give CKA 0",
            latent_map_cka(sigma, constructed),
            0.0,
            FLOAT64_ROUNDOFF,
            "float64 round-off",
        )
    )
    near = []
    for b in (0.3, 0.1, 0.01):
        scalar = np.array([[1.0, b], [-b * 0.5, 1.0]])
        near.append(
            {
                "b": b,
                "cka": latent_map_cka(np.diag([1.0, 0.5]), scalar),
                "lambda_rel": relative_leakage(scalar),
                "condition_number": float(np.linalg.cond(scalar)),
            }
        )
    evidence.tables["free_whitening_rotation"] = rows
    evidence.tables["free_near_orthogonal"] = near
    return {
        "whitening_rotation": rows,
        "decorrelating": {
            "lambda_rel": relative_leakage(constructed),
            "cka": latent_map_cka(sigma, constructed),
            "condition_number": float(np.linalg.cond(constructed)),
        },
        "near_orthogonal_k1_v0.5": near,
    }


def _orthogonal_checks(rng: np.random.Generator, evidence: Evidence, draws: int = 150) -> None:
    """Sylvester bound over Haar-random orthogonal maps, the near-identity bound, the swaps."""
    from scipy.linalg import expm

    from scm import haar_orthogonal, random_scm
    from scm.correlation import (
        latent_map_cka,
        orthogonal_leakage_bound,
        raw_leakage,
        relative_leakage,
        spectral_separation,
    )

    worst_sylvester, worst_local, local_count, worst_identity = 0.0, 0.0, 0, 0.0
    for k in (1, 2, 3):
        scm = random_scm(k=k, num_tasks=1, seed=int(rng.integers(2**31)))
        sigma = _latent_covariance(scm)
        delta = spectral_separation(scm.sigma_s, scm.source.cov)
        size = 2 * np.linalg.norm(scm.sigma_s, 2) + np.linalg.norm(scm.source.cov, 2)
        for trial in range(draws):
            if trial % 2:
                latent_map = haar_orthogonal(2 * k, rng)
            else:
                latent_map = expm(rng.uniform(0, 0.3) * _skew(rng, 2 * k))
            c_ss, c_sr, c_rr, leak = _orthogonal_blocks(sigma, latent_map)
            frobenius = (
                np.linalg.norm(c_ss) ** 2
                + np.linalg.norm(c_rr) ** 2
                + 2 * np.linalg.norm(c_sr) ** 2
                - np.linalg.norm(sigma) ** 2
            )
            worst_identity = max(worst_identity, abs(float(frobenius)))
            separation = spectral_separation(c_ss, scm.source.cov)
            if separation > 1e-6:
                worst_sylvester = max(
                    worst_sylvester,
                    float(np.linalg.norm(leak)) - float(np.linalg.norm(c_sr)) / separation,
                )
            epsilon = raw_leakage(latent_map)
            if epsilon**2 <= delta / (2 * size):
                local_count += 1
                bound, _ = orthogonal_leakage_bound(
                    scm.sigma_s, scm.source.cov, latent_map_cka(sigma, latent_map)
                )
                worst_local = max(worst_local, epsilon - bound)
                worst_local = max(
                    worst_local,
                    relative_leakage(latent_map) - epsilon / math.sqrt(1 - epsilon**2),
                )
    evidence.checks += [
        NumericCheck(
            "orthogonal M: ||C_ss||^2 + ||C_rr||^2 + 2 ||C_sr||^2 = ||Sigma||_F^2",
            worst_identity,
            0.0,
            FLOAT64_ROUNDOFF * 100,
            "float64 round-off on squared norms of order 10",
        ),
        NumericCheck(
            f"orthogonal M ({3 * draws} draws, k=1..3, half Haar, half near I): ||B||_F <= "
            "||C_sr||_F / sep(C_ss, Sigma_S)",
            worst_sylvester,
            0.0,
            FLOAT64_ROUNDOFF,
            "float64 round-off",
            relation="<=",
        ),
        NumericCheck(
            f"orthogonal M near I ({local_count} of them): ||B||_op <= sqrt(2 CKA) ||Sigma||_F / "
            "delta and lambda_rel <= ||B|| / sqrt(1 - ||B||^2)",
            worst_local,
            0.0,
            FLOAT64_ROUNDOFF,
            "float64 round-off",
            relation="<=",
        ),
        NumericCheck(
            "near-identity draws exist (the local bound was exercised)",
            float(local_count),
            10.0,
            0.0,
            "count",
            relation=">=",
        ),
    ]


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: a singular semantic gain (``lambda_rel = inf``) is recorded as null."""
    return value if math.isfinite(value) else None


def swap_map(sigma_s: np.ndarray, sigma_r: np.ndarray, swapped: int) -> np.ndarray:
    """The orthogonal latent map that exchanges the first ``swapped`` eigen-directions of
    ``Sigma_s`` with those of ``Sigma_S`` (eigenbases ``V_s``, ``V_r``): CKA 0, raw leakage 1."""
    k = sigma_s.shape[0]
    _, v_s = np.linalg.eigh(sigma_s)
    _, v_r = np.linalg.eigh(sigma_r)
    basis = np.block([[v_s, np.zeros((k, k))], [np.zeros((k, k)), v_r]])
    permutation = np.eye(2 * k)
    for i in range(swapped):
        permutation[[i, k + i]] = permutation[[k + i, i]]
    return basis @ permutation @ basis.T


def _zero_cka_set_checks(rng: np.random.Generator, evidence: Evidence) -> dict:
    """The zero-CKA orthogonal maps: swaps (with their task-risk cost), minimisation of CKA from
    random near-identity starts, and the shared-eigenvalue family."""
    from scipy.linalg import expm
    from scipy.optimize import minimize

    from scm import random_scm
    from scm.correlation import latent_map_cka, raw_leakage, relative_leakage

    k = 2
    scm = random_scm(k=k, num_tasks=1, seed=int(rng.integers(2**31)), noise_std=0.0)
    sigma = _latent_covariance(scm)
    swaps = []
    for swapped in range(k + 1):
        latent_map = swap_map(scm.sigma_s, scm.source.cov, swapped)
        gain = latent_map[:k, :k]
        covariance = latent_map @ sigma @ latent_map.T
        target = latent_map[:k] @ sigma[:, :k] @ scm.beta[0]
        risk = float(
            scm.beta[0] @ scm.sigma_s @ scm.beta[0]
            - target @ np.linalg.solve(covariance[:k, :k], target)
        )
        eigenvalues, vectors = np.linalg.eigh(scm.sigma_s)
        lost = float(
            sum(eigenvalues[i] * (vectors[:, i] @ scm.beta[0]) ** 2 for i in range(swapped))
        )
        swaps.append(
            {
                "swapped": swapped,
                "cka": latent_map_cka(sigma, latent_map),
                "lambda_raw": raw_leakage(latent_map),
                "lambda_rel": _finite_or_none(relative_leakage(latent_map)),
                "rank_A": int(np.linalg.matrix_rank(gain, tol=1e-9)),
                "source_risk_excess": risk,
                "lost_semantic_variance": lost,
            }
        )
    evidence.checks += [
        NumericCheck(
            f"swap of {row['swapped']} eigen-direction(s): CKA = 0, raw leakage "
            f"{1 if row['swapped'] else 0}, rank A = {k - row['swapped']}",
            abs(row["cka"])
            + abs(row["lambda_raw"] - (1.0 if row["swapped"] else 0.0))
            + abs(row["rank_A"] - (k - row["swapped"])),
            0.0,
            FLOAT64_ROUNDOFF,
            "float64 round-off",
        )
        for row in swaps
    ]
    evidence.checks.append(
        NumericCheck(
            "swaps: source risk excess = beta's variance on the swapped semantic eigen-directions",
            max(abs(row["source_risk_excess"] - row["lost_semantic_variance"]) for row in swaps),
            0.0,
            FLOAT64_ROUNDOFF,
            "float64 round-off",
        )
    )
    n = 2 * k
    upper = np.triu_indices(n, 1)

    def orthogonal(params: np.ndarray, start: np.ndarray) -> np.ndarray:
        generator = np.zeros((n, n))
        generator[upper] = params
        return expm(generator - generator.T) @ start

    found = []
    for _ in range(4):
        start = expm(0.25 * _skew(rng, n))
        result = minimize(
            lambda p, start=start: latent_map_cka(sigma, orthogonal(p, start)),
            np.zeros(upper[0].size),
            method="BFGS",
            options={"gtol": 1e-12, "maxiter": 400},
        )
        latent_map = orthogonal(result.x, start)
        found.append(
            {
                "start_leakage": raw_leakage(start),
                "cka": float(result.fun),
                "lambda_raw": raw_leakage(latent_map),
            }
        )
    evidence.checks.append(
        NumericCheck(
            "CKA minimised over orthogonal M from near-identity starts: leakage at the minimum is "
            "0 or 1 (the swap), never in between",
            max(min(row["lambda_raw"], abs(1 - row["lambda_raw"])) for row in found),
            0.0,
            1e-3,
            "BFGS to CKA ~ 1e-12; leakage ~ sqrt(CKA) ||Sigma||_F / delta",
        )
    )
    evidence.checks.append(
        NumericCheck(
            "those minimisations reach CKA ~ 0",
            max(row["cka"] for row in found),
            0.0,
            1e-8,
            "BFGS tolerance",
            relation="<=",
        )
    )
    joint = np.diag([1.0, 2.0, 2.0, 3.0])
    shared = []
    for theta in THETAS:
        c, s = math.cos(theta), math.sin(theta)
        latent_map = np.eye(4)
        latent_map[np.ix_([1, 2], [1, 2])] = [[c, s], [-s, c]]
        shared.append(
            {
                "theta": theta,
                "cka": latent_map_cka(joint, latent_map),
                "lambda_rel": relative_leakage(latent_map),
            }
        )
        evidence.checks.append(
            NumericCheck(
                f"shared eigenvalue 2 (Sigma_s = diag(1,2), Sigma_S = diag(2,3)), theta={theta}: "
                "CKA 0 and lambda_rel = tan(theta)",
                abs(shared[-1]["cka"]) + abs(shared[-1]["lambda_rel"] - math.tan(theta)),
                0.0,
                FLOAT64_ROUNDOFF,
                "float64 round-off",
            )
        )
    evidence.tables["swaps"] = swaps
    evidence.tables["cka_minimisation"] = found
    evidence.tables["shared_eigenvalue"] = shared
    return {"swaps": swaps, "shared_eigenvalue": shared, "minimisation": found}


def measure(rng: np.random.Generator, batch: int = 512, repeats: int = 8) -> Evidence:
    evidence = Evidence()
    free = _free_encoder_checks(rng, evidence, batch, repeats)
    _orthogonal_checks(rng, evidence)
    zero_set = _zero_cka_set_checks(rng, evidence)
    evidence.counterexample = {
        "free_linear": free,
        "shared_eigenvalue": zero_set["shared_eigenvalue"],
    }
    rows = free["whitening_rotation"]
    widest = max(rows, key=lambda row: row["lambda_rel"])
    evidence.headline = Headline(
        f"lambda_rel of a free linear encoder at population CKA {widest['population_cka']:.0e} "
        f"(whitening, then rotation by {widest['theta']:g} rad)",
        widest["lambda_rel"],
        threshold="unqualified C4: 0 at CKA 0",
    )
    evidence.findings += [
        "Free linear encoder, whitening then rotation: population CKA "
        + ", ".join(f"{row['population_cka']:.1e}" for row in rows)
        + " and minibatch CKA "
        + ", ".join(f"{row['minibatch_cka']:+.4f}" for row in rows)
        + f" at theta = {', '.join(str(t) for t in THETAS)}, while lambda_rel = "
        + ", ".join(f"{row['lambda_rel']:.2f}" for row in rows)
        + " and the raw ||B||_op = "
        + ", ".join(f"{row['lambda_raw']:.2f}" for row in rows)
        + f" (= sin(theta) ||Sigma_S^-1/2||_op = {rows[0]['raw_over_sin_theta']:.2f} sin(theta)). "
        "The issue's 1.76, 3.37, 5.02 at 0.3, 0.6, 1.0 are 5.96 sin(theta) to rounding, "
        "consistent with the raw leakage of this construction when ||Sigma_S^-1/2||_op = 5.96 "
        "(smallest residual variance 0.028).",
        f"Any semantic block can be completed to CKA 0: lambda_rel = "
        f"{free['decorrelating']['lambda_rel']:.1f} at CKA {free['decorrelating']['cka']:.1e}. "
        "Norm constraints alone do not help: [[1, b], [-b v, 1]] keeps CKA 0 with lambda_rel = b "
        "and condition number "
        + ", ".join(f"{row['condition_number']:.3f}" for row in free["near_orthogonal_k1_v0.5"])
        + " at b = 0.3, 0.1, 0.01.",
        "Orthogonal encoders with disjoint spectra: the zero-CKA maps are the block-orthogonal ones "
        "(leakage 0) and the swaps (leakage 1, the semantic stream loses the swapped eigen-"
        "directions, costing exactly beta's variance on them in source risk); CKA minimisation "
        "from near-identity starts ends at leakage "
        + ", ".join(f"{row['lambda_raw']:.1e}" for row in zero_set["minimisation"])
        + ". A shared eigenvalue gives CKA 0 at every rotation of its plane (lambda_rel = "
        "tan theta).",
    ]
    return evidence


def _measure_unqualified(rng: np.random.Generator) -> Evidence:
    """The unqualified C4 for free linear encoders: 'CKA = 0 implies lambda_rel = 0'."""
    from scm import random_scm
    from scm.correlation import latent_map_cka, relative_leakage, whitening_rotation

    scm = random_scm(k=2, num_tasks=1, seed=int(rng.integers(2**31)), mixing="haar")
    sigma = _latent_covariance(scm)
    evidence = Evidence()
    for theta in THETAS:
        latent_map = whitening_rotation(sigma, theta)
        if latent_map_cka(sigma, latent_map) <= FLOAT64_ROUNDOFF:
            evidence.checks.append(
                NumericCheck(
                    f"free, theta={theta}: CKA = 0 so lambda_rel = 0",
                    relative_leakage(latent_map),
                    0.0,
                    FLOAT64_ROUNDOFF,
                    "float64 round-off",
                )
            )
    return evidence


ASSUMPTIONS = (
    "setting S with rho = 0, source law z ~ N(0, diag(Sigma_s, Sigma_S)), Sigma positive definite",
    "linear encoder Zhat = M z, M = E G invertible, blocks [[A, B], [C, D]]",
    "lambda_rel = ||A^-1 B||_op (leakage per unit of semantic gain); raw ||B||_op is S5's lambda_leak",
    "zero-CKA implication: M stream-orthogonal (P_s P_r^T = 0: orthogonal M up to per-stream "
    "reparametrisation), spec(Sigma_s) and spec(Sigma_S) disjoint, A invertible (no swap)",
    "continuity: M orthogonal with ||B||_op^2 <= delta / (2 L)",
)

STATEMENT = Statement(
    id="S10",
    claim="C4",
    title="CKA -> 0 implies lambda_leak -> 0 only for stream-orthogonal encoders, disjoint spectra, no swap",
    expected=Verdict.HOLDS_AS_STATED,
    assumptions=ASSUMPTIONS,
    sympy_assumptions={
        "a, b, c, s, A, B, M, q, x, y": "real",
        "v, u, lambda": "positive",
        "Sigma_s, Sigma_S": "real symmetric, positive diagonal",
    },
    derive=derive,
    measure=measure,
    unqualified="driving CKA(Zhat_s, Zhat_r) to zero drives lambda_leak to zero for any encoder",
)

UNQUALIFIED_C4 = Statement(
    id="C4-unqualified",
    claim="C4",
    title="CKA = 0 implies no leakage for a free linear encoder (deliberately wrong)",
    expected=Verdict.FAILS,
    assumptions=ASSUMPTIONS[:3],
    sympy_assumptions=STATEMENT.sympy_assumptions,
    derive=lambda: [],
    measure=_measure_unqualified,
    unqualified=STATEMENT.unqualified,
)
