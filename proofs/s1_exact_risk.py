"""S1: the exact risk and the exact OOD gap in setting S.

``R_e = (beta - c w)^T Sigma_s (beta - c w) + s^2 w^T Sigma_e w + (s w^T mu_e + b)^2 + sigma^2``
and ``R_T - R_S = s^2 w^T (Sigma_T - Sigma_S) w + (s w^T mu_T + b)^2 - (s w^T mu_S + b)^2``.

Derivation: the residual ``Y - w^T Zhat_s - b = (beta - c w)^T Z_s - s w^T Z_r + eps - b`` is a
linear form in the independent groups ``Z_s``, ``Z_r``, ``eps``; its square is expanded and the
expectation operator of :mod:`proofs.symbolic` replaces every monomial by its moment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from proofs.headline import Headline
from proofs.montecarlo import FLOAT64_ROUNDOFF, Z_SCORE, mean_and_standard_error
from proofs.statement import Evidence, NumericCheck, Statement, SymbolicStep, Verdict
from proofs.symbolic import RandomGroup, expectation, identity_step, symmetric_matrix, vector

SYMPY_ASSUMPTIONS = {
    "Sigma_s, Sigma_S, Sigma_T": "real symmetric (positive diagonal)",
    "beta, w, mu_S, mu_T, b": "real",
    "c, s": "real (cos psi, sin psi; c^2 + s^2 = 1 is not needed)",
    "sigma": "positive",
    "Z_s, Z_r, eps": "independent random groups with the stated first and second moments",
}


@dataclass(frozen=True)
class SymbolicSetting:
    """The symbols of setting S for one task at dimension ``k``."""

    k: int
    sigma_s: sp.Matrix
    beta: sp.Matrix
    w: sp.Matrix
    b: sp.Symbol
    c: sp.Symbol
    s: sp.Symbol
    noise: sp.Symbol
    z_s: sp.Matrix
    z_r: sp.Matrix
    eps: sp.Symbol

    @classmethod
    def build(cls, k: int) -> SymbolicSetting:
        return cls(
            k=k,
            sigma_s=symmetric_matrix("Sigma_s", k),
            beta=vector("beta", k, real=True),
            w=vector("w", k, real=True),
            b=sp.Symbol("b", real=True),
            c=sp.Symbol("c", real=True),
            s=sp.Symbol("s", real=True),
            noise=sp.Symbol("sigma", positive=True),
            z_s=vector("z_s", k, real=True),
            z_r=vector("z_r", k, real=True),
            eps=sp.Symbol("eps", real=True),
        )

    def residual(self) -> sp.Expr:
        """``Y - w^T Zhat_s - b`` with ``Y = beta^T Z_s + eps``, ``Zhat_s = c Z_s + s Z_r``."""
        y = (self.beta.T * self.z_s)[0] + self.eps
        prediction = (self.w.T * (self.c * self.z_s + self.s * self.z_r))[0] + self.b
        return y - prediction

    def risk(self, residual_mean: sp.Matrix, residual_cov: sp.Matrix) -> sp.Expr:
        """``E[(Y - w^T Zhat_s - b)^2]`` derived from the moments of the three groups."""
        zero = sp.zeros(self.k, 1)
        groups = [
            RandomGroup.from_covariance(list(self.z_s), zero, self.sigma_s),
            RandomGroup.from_covariance(list(self.z_r), residual_mean, residual_cov),
            RandomGroup((self.eps,), sp.Matrix([0]), sp.Matrix([[self.noise**2]])),
        ]
        return expectation(self.residual() ** 2, groups)

    def stated_risk(self, residual_mean: sp.Matrix, residual_cov: sp.Matrix) -> sp.Expr:
        """The right-hand side of S1."""
        direction = self.beta - self.c * self.w
        return (
            (direction.T * self.sigma_s * direction)[0]
            + self.s**2 * (self.w.T * residual_cov * self.w)[0]
            + (self.s * (self.w.T * residual_mean)[0] + self.b) ** 2
            + self.noise**2
        )


def derive() -> list[SymbolicStep]:
    steps = []
    for k in (1, 2):
        setting = SymbolicSetting.build(k)
        mean_s, mean_t = vector("mu_S", k, real=True), vector("mu_T", k, real=True)
        cov_s, cov_t = symmetric_matrix("Sigma_S", k), symmetric_matrix("Sigma_T", k)
        risk_s = setting.risk(mean_s, cov_s)
        risk_t = setting.risk(mean_t, cov_t)
        steps.append(
            identity_step(
                f"k={k}: E[residual^2] = stated R_S", risk_s, setting.stated_risk(mean_s, cov_s)
            )
        )
        w = setting.w
        stated_gap = (
            setting.s**2 * (w.T * (cov_t - cov_s) * w)[0]
            + (setting.s * (w.T * mean_t)[0] + setting.b) ** 2
            - (setting.s * (w.T * mean_s)[0] + setting.b) ** 2
        )
        steps.append(identity_step(f"k={k}: R_T - R_S = stated gap", risk_t - risk_s, stated_gap))
    return steps


def _stated_risks(scm, psi: float, weights: np.ndarray, bias: np.ndarray, env: str) -> np.ndarray:
    """S1's right-hand side evaluated in numpy, independently of ``scm.risks``."""
    c, s = math.cos(psi), math.sin(psi)
    law = scm.law(env)
    direction = scm.beta - c * weights
    return (
        np.einsum("ti,ij,tj->t", direction, scm.sigma_s, direction)
        + s * s * np.einsum("ti,ij,tj->t", weights, law.cov, weights)
        + (s * weights @ law.mean + bias) ** 2
        + scm.noise_std**2
    )


def _monte_carlo_risks(scm, psi, weights, bias, env, n, rng):
    from scm import encode, sample

    drawn = sample(scm, n, env, seed=rng)
    z_hat_s, _ = encode(scm, psi, drawn.x)
    squared = (drawn.y - z_hat_s @ weights.T - bias) ** 2
    return [mean_and_standard_error(squared[:, t]) for t in range(scm.num_tasks)]


def measure(rng: np.random.Generator, draws: int = 40_000) -> Evidence:
    from scm import ood_gap, ood_gap_formula, random_scm, risks

    evidence = Evidence()
    cases = [
        (1, 1, "random", "identity", 0.0),
        (3, 2, "worst", "haar", 0.0),
        (6, 3, "shrink", "haar", 0.0),
        (2, 2, "random", "haar", 0.6),
    ]
    rows = []
    for k, tasks, direction, mixing, rho in cases:
        scm = random_scm(
            k=k,
            num_tasks=tasks,
            seed=int(rng.integers(2**31)),
            shift_size=0.3 if direction == "shrink" else 1.0,
            shift_direction=direction,
            mean_shift=0.7,
            mixing=mixing,
            rho=rho,
        )
        psi = float(rng.uniform(0.1, math.pi / 2 - 0.1))
        weights = rng.standard_normal((tasks, k))
        bias = rng.standard_normal(tasks)
        label = f"k={k}, K={tasks}, {direction}, {mixing}, rho={rho}"
        for env in ("source", "target"):
            closed = risks(scm, psi, weights, bias, env)
            if rho == 0.0 or env == "target":
                stated = _stated_risks(scm, psi, weights, bias, env)
                scale = float(np.max(np.abs(stated)))
                evidence.checks.append(
                    NumericCheck(
                        f"{label}: scm.risks = S1 formula ({env})",
                        float(np.max(np.abs(closed - stated))),
                        0.0,
                        FLOAT64_ROUNDOFF * max(1.0, scale),
                        "float64 round-off",
                    )
                )
            for t, (mc_mean, mc_se) in enumerate(
                _monte_carlo_risks(scm, psi, weights, bias, env, draws, rng)
            ):
                evidence.checks.append(
                    NumericCheck(
                        f"{label}: Monte Carlo R_{env}[{t}] = scm.risks",
                        mc_mean,
                        float(closed[t]),
                        Z_SCORE * mc_se,
                        f"{Z_SCORE:g} standard errors of a mean of {draws} squared residuals",
                    )
                )
                rows.append(
                    {
                        "case": label,
                        "env": env,
                        "task": t,
                        "closed_form": float(closed[t]),
                        "monte_carlo": mc_mean,
                        "standard_error": mc_se,
                    }
                )
        if rho == 0.0:
            gap = ood_gap(scm, psi, weights, bias)
            formula = ood_gap_formula(scm, psi, weights, bias)
            evidence.checks.append(
                NumericCheck(
                    f"{label}: ood_gap = ood_gap_formula",
                    float(np.max(np.abs(gap - formula))),
                    0.0,
                    FLOAT64_ROUNDOFF * max(1.0, float(np.max(np.abs(gap)))),
                    "float64 round-off",
                )
            )
    evidence.tables["risks"] = rows
    largest = max(abs(r["monte_carlo"] - r["closed_form"]) / r["standard_error"] for r in rows)
    evidence.headline = Headline(
        f"closed-form risk against Monte Carlo, largest |z| over {len(rows)} risks",
        largest,
        threshold=f"<= {Z_SCORE:g}",
    )
    evidence.findings += [
        f"The closed-form risks of scm.risks (the S1 formula where rho = 0 or in the target) "
        f"agree with Monte Carlo means of {draws} draws to a largest |z| of {largest:.2f} over "
        f"{len(rows)} risks ({'within' if largest <= Z_SCORE else 'beyond'} {Z_SCORE:g} "
        "standard errors).",
        "With the source-only correlation rho the S1 formula omits the cross term "
        "-2 s (beta - c w)^T Cov(Z_s, Z_r) w; scm.risks includes it and matches Monte Carlo.",
    ]
    return evidence


STATEMENT = Statement(
    id="S1",
    claim="C1 (ingredient)",
    title="exact risk and exact OOD gap",
    expected=Verdict.HOLDS,
    assumptions=(
        "Z_s ~ N(0, Sigma_s), Z_r ~ N(mu_e, Sigma_e), eps ~ N(0, sigma^2) mutually independent",
        "Zhat_s = c Z_s + s Z_r, heads yhat = w^T Zhat_s + b, squared loss",
    ),
    sympy_assumptions=SYMPY_ASSUMPTIONS,
    derive=derive,
    measure=measure,
)
