"""S7 (C3): gradient alignment at the last shared layer is bounded by the streams' CKA.

Shared features ``F`` with ``Cov(F) = I``, streams ``Zhat_s = P_s F``, ``Zhat_r = P_r F``,
back-propagated signals ``delta_s``, ``delta_r`` independent with ``E[delta delta^T] = I``.
Then ``g_task = P_s^T delta_s``, ``g_res = P_r^T delta_r`` and

    E<g_task, g_res>^2 = E (delta_s^T P_s P_r^T delta_r)^2 = ||P_s P_r^T||_F^2,
    E||g_task||^2 = ||P_s||_F^2,  E||g_res||^2 = ||P_r||_F^2,

so ``rho^2 = ||P_s P_r^T||_F^2 / (||P_s||_F^2 ||P_r||_F^2)``. The population CKA of the streams is
``||P_s P_r^T||_F^2 / (||P_s P_s^T||_F ||P_r P_r^T||_F)`` and ``||P P^T||_F <= ||P||_F^2`` (rows
``p_i``: ``||P||_F^4 - ||P P^T||_F^2 = sum_{i != j} sum_{a < b} (p_ia p_jb - p_ib p_ja)^2``), hence
``rho^2 <= CKA``: C3 with ``c = 1``, ``delta = 0``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs.headline import Headline
from proofs.montecarlo import (
    FLOAT64_ROUNDOFF,
    Z_SCORE,
    mean_and_standard_error,
    ratio_standard_error,
)
from proofs.statement import Evidence, NumericCheck, Statement, SymbolicStep, Verdict
from proofs.symbolic import (
    RandomGroup,
    expectation,
    identity_step,
    matrix,
    matrix_identity_step,
    sum_of_squares_step,
    vector,
)


def _frobenius_sq(m: sp.Matrix) -> sp.Expr:
    return sum((entry**2 for entry in m), sp.Integer(0))


def derive() -> list[SymbolicStep]:
    p_s, p_r = matrix("P", 2, 3, real=True), matrix("Q", 2, 3, real=True)
    delta_s, delta_r = vector("d", 2, real=True), vector("e", 2, real=True)
    isotropic = [
        RandomGroup.from_covariance(list(delta_s), sp.zeros(2, 1), sp.eye(2)),
        RandomGroup.from_covariance(list(delta_r), sp.zeros(2, 1), sp.eye(2)),
    ]
    g_task, g_res = p_s.T * delta_s, p_r.T * delta_r
    steps = [
        identity_step(
            "E<g_task, g_res>^2 = ||P_s P_r^T||_F^2",
            expectation(((g_task.T * g_res)[0]) ** 2, isotropic),
            _frobenius_sq(p_s * p_r.T),
        ),
        identity_step(
            "E||g_task||^2 = ||P_s||_F^2",
            expectation((g_task.T * g_task)[0], isotropic),
            _frobenius_sq(p_s),
        ),
    ]
    features = vector("f", 3, real=True)
    whitened = [RandomGroup.from_covariance(list(features), sp.zeros(3, 1), sp.eye(3))]
    cross = (p_s * features) * (p_r * features).T
    steps.append(
        matrix_identity_step(
            "Cov(Zhat_s, Zhat_r) = P_s P_r^T for whitened F",
            cross.applyfunc(lambda entry: expectation(entry, whitened)),
            p_s * p_r.T,
        )
    )
    rows = [p_s.row(i) for i in range(p_s.rows)]
    squares = [
        rows[i][a] * rows[j][b] - rows[i][b] * rows[j][a]
        for i in range(len(rows))
        for j in range(len(rows))
        if i != j
        for a in range(3)
        for b in range(a + 1, 3)
    ]
    steps.append(
        sum_of_squares_step(
            "||P||_F^4 >= ||P P^T||_F^2 (so rho^2 <= CKA)",
            _frobenius_sq(p_s) ** 2,
            _frobenius_sq(p_s * p_s.T),
            squares,
        )
    )
    return steps


def alignment(p_s: np.ndarray, p_r: np.ndarray) -> float:
    return float(
        np.linalg.norm(p_s @ p_r.T) ** 2 / (np.linalg.norm(p_s) ** 2 * np.linalg.norm(p_r) ** 2)
    )


def stream_cka(p_s: np.ndarray, p_r: np.ndarray) -> float:
    return float(
        np.linalg.norm(p_s @ p_r.T) ** 2
        / (np.linalg.norm(p_s @ p_s.T) * np.linalg.norm(p_r @ p_r.T))
    )


def measure(
    rng: np.random.Generator, draws: int = 100_000, batch: int = 1024, repeats: int = 8
) -> Evidence:
    import torch

    from coremtl.cka import linear_cka

    evidence = Evidence()
    slack = []
    for _ in range(200):
        d = int(rng.integers(1, 9))
        p_s = rng.standard_normal((int(rng.integers(1, 7)), d))
        p_r = rng.standard_normal((int(rng.integers(1, 7)), d))
        slack.append(alignment(p_s, p_r) - stream_cka(p_s, p_r))
    evidence.checks.append(
        NumericCheck(
            "max (rho^2 - CKA) over 200 random (P_s, P_r), d, p in 1..8",
            max(slack),
            0.0,
            FLOAT64_ROUNDOFF,
            "float64 round-off",
            relation="<=",
        )
    )
    d = 8
    p_s, p_r = rng.standard_normal((3, d)), rng.standard_normal((4, d))
    p_r[:, :2] += 2 * p_s[:1, :2]
    delta_s, delta_r = rng.standard_normal((draws, 3)), rng.standard_normal((draws, 4))
    g_task, g_res = delta_s @ p_s, delta_r @ p_r
    ratio, error = ratio_standard_error(
        np.sum(g_task * g_res, axis=1) ** 2, np.sum(g_task**2, axis=1), np.sum(g_res**2, axis=1)
    )
    evidence.checks.append(
        NumericCheck(
            "Monte Carlo rho^2 = ||P_s P_r^T||_F^2 / (||P_s||_F^2 ||P_r||_F^2)",
            ratio,
            alignment(p_s, p_r),
            Z_SCORE * error,
            f"{Z_SCORE:g} delta-method standard errors of a ratio of means of {draws} draws",
        )
    )
    estimates = []
    for _ in range(repeats):
        features = torch.as_tensor(rng.standard_normal((batch, d)))
        estimates.append(
            float(linear_cka(features @ torch.as_tensor(p_s.T), features @ torch.as_tensor(p_r.T)))
        )
    mean, error = mean_and_standard_error(np.array(estimates))
    evidence.checks.append(
        NumericCheck(
            "debiased minibatch CKA of the streams = ||P_s P_r^T||^2/(||P_s P_s^T|| ||P_r P_r^T||)",
            mean,
            stream_cka(p_s, p_r),
            Z_SCORE * error + 1.0 / batch,
            f"{Z_SCORE:g} standard errors over {repeats} batches of {batch} plus O(1/n) ratio bias",
        )
    )
    evidence.tables["alignment_vs_cka"] = [
        {"rho2": alignment(p_s, p_r), "cka": stream_cka(p_s, p_r), "monte_carlo_rho2": ratio}
    ]
    evidence.headline = Headline(
        f"largest rho^2 - CKA over {len(slack)} random stream maps (P_s, P_r)",
        max(slack),
        threshold="<= 0: rho^2 <= CKA",
    )
    evidence.findings.append(
        f"rho^2 - CKA is at most {max(slack):.2g} over {len(slack)} random (P_s, P_r); for one "
        f"pair with correlated streams the Monte Carlo alignment of isotropic signals is "
        f"{ratio:.4f}, the closed form rho^2 {alignment(p_s, p_r):.4f} and CKA "
        f"{stream_cka(p_s, p_r):.4f}."
    )
    return evidence


STATEMENT = Statement(
    id="S7",
    claim="C3",
    title="rho^2 = ||P_s P_r^T||^2/(||P_s||^2 ||P_r||^2) <= CKA",
    expected=Verdict.HOLDS,
    assumptions=(
        "shared features F whitened (Cov F = I), linear stream maps P_s, P_r",
        "back-propagated signals delta_s, delta_r independent, zero mean, isotropic",
    ),
    sympy_assumptions={
        "P, Q (entries of P_s, P_r)": "real",
        "d, e, f": "random groups, E = 0, E xx^T = I",
    },
    derive=derive,
    measure=measure,
)
