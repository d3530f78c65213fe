"""What S13 predicts for training (docs/THEORY.md S13), checked and tabulated.

Each method is gradient flow on the scalar profile risk ``R*_S`` plus ``lambda`` times its
penalty (:data:`scm.label_correlation.PENALTIES`: none, the unconditional or the label-conditional
CKA of the streams) to its end point (:func:`scm.label_correlation.penalised_endpoint`):

- :func:`endpoint_checks`: the conditional-penalised minimiser reached from 0 lies strictly
  between 0 and the shortcut angle ``psi*`` and shrinks as ``lambda`` grows;
- :func:`simulated_sign_checks`: the predicted signs of "conditional minus unconditional" and
  "conditional minus EW" (OOD gap and target risk) against stiff-solver gradient flows;
- :func:`regime_table`: the predicted signs on a grid of residual variances and label loadings,
  for the regime map's label-mediated cells.
"""

from __future__ import annotations

import math

import numpy as np

from proofs.statement import Evidence, NumericCheck

EXAMPLE = {"v": 1.0, "loading": 1.0, "beta": 1.0, "noise_std": 0.5}
"""The worked example of docs/THEORY.md S13 (``tau = 0.2``, ``psi* = atan 0.25``)."""


def example(**changes):
    """The worked example with ``changes``."""
    from scm.label_correlation import ScalarLabelSCM

    return ScalarLabelSCM(**{**EXAMPLE, **changes})


def random_model(rng: np.random.Generator, **fixed):
    """A scalar model with random (v, a, beta, sigma, rho), ``fixed`` overriding any of them."""
    from scm.label_correlation import ScalarLabelSCM

    drawn = {
        "v": float(np.exp(rng.uniform(np.log(0.05), np.log(5.0)))),
        "loading": float(rng.uniform(-2.0, 2.0)),
        "beta": float(rng.choice([-1, 1]) * rng.uniform(0.3, 2.0)),
        "noise_std": float(rng.uniform(0.2, 1.5)),
        "rho": float(rng.uniform(-0.8, 0.8)),
    }
    return ScalarLabelSCM(**{**drawn, **fixed})


def endpoint_checks(rng: np.random.Generator, evidence: Evidence, cases: int = 24) -> list[dict]:
    """At q = 0, v != tau and |psi*| < pi/4 the conditional-penalised minimiser reached from 0
    lies strictly between 0 and the shortcut angle psi*, shrinks as lambda grows, and equals a
    bounded minimisation of R*_S + lambda CKA_c."""
    from scipy.optimize import minimize_scalar

    from scm.label_correlation import penalised_endpoint

    rows, outside, growing, mismatch = [], 0, 0, 0.0
    while len(rows) < cases:
        model = random_model(rng, rho=0.0)
        shortcut = model.shortcut_angle()
        if abs(model.v - model.tau) < 0.05 or not 0.02 < abs(shortcut) < math.pi / 4:
            continue
        lam = float(np.exp(rng.uniform(np.log(0.05), np.log(20.0))))
        found = penalised_endpoint(model, 0.0, lam, "conditional")
        stronger = penalised_endpoint(model, 0.0, 4 * lam, "conditional")
        outside += int(not min(0.0, shortcut) < found < max(0.0, shortcut))
        growing += int(abs(stronger) >= abs(found))

        def objective(psi, model=model, lam=lam):
            return float(model.profile_risk(psi) + lam * model.cka(psi, conditional=True))

        direct = minimize_scalar(
            objective, bounds=sorted((0.0, shortcut)), method="bounded", options={"xatol": 1e-12}
        )
        mismatch = max(mismatch, float(abs(direct.x - found)))
        rows.append(
            {
                "v": model.v,
                "a": model.loading,
                "beta": model.beta,
                "sigma": model.noise_std,
                "lam": lam,
                "psi_star": shortcut,
                "psi_conditional": found,
                "psi_conditional_4lam": stronger,
            }
        )
    evidence.checks += [
        NumericCheck(
            f"{cases} random cases: the conditional-penalised minimiser from 0 lies strictly between 0 and psi*",
            float(outside),
            0.0,
            0.0,
            "exact count",
        ),
        NumericCheck(
            f"{cases} random cases: |minimiser| shrinks when lambda is multiplied by 4",
            float(growing),
            0.0,
            0.0,
            "exact count",
        ),
        NumericCheck(
            f"{cases} random cases: Brent root of f' = bounded direct minimisation of f",
            mismatch,
            0.0,
            1e-6,
            "xatol 1e-12 of the minimiser; a flat minimum of curvature ~1e-3 locates to ~1e-7",
        ),
    ]
    return rows


def simulated_sign_checks(evidence: Evidence) -> list[dict]:
    """The predicted signs (conditional minus unconditional, conditional minus EW; gap and target
    risk) against gradient flows of the three objectives run to convergence (stiff solver)."""
    from scipy.integrate import solve_ivp

    from scm.label_correlation import predicted_gap_difference_sign

    rows, disagreements, lam, shift = [], 0, 1.0, 1.0
    starts = np.array([0.1, 0.3, 0.6, 1.0])
    for v in (0.3, 3.0):
        for loading in (0.5, 1.0):
            model = example(v=v, loading=loading)
            ends = {}
            for penalty in ("none", "unconditional", "conditional"):
                solution = solve_ivp(
                    lambda _, psi, penalty=penalty, model=model: (
                        -model.objective_slope(psi, lam, penalty)
                    ),
                    (0.0, 1e4),
                    starts,
                    method="LSODA",
                    rtol=1e-9,
                    atol=1e-12,
                )
                ends[penalty] = solution.y[:, -1]
            for index, start in enumerate(starts):
                for other in ("unconditional", "none"):
                    for quantity in ("gap", "target_risk"):
                        measure = model.ood_gap if quantity == "gap" else model.target_risk
                        simulated = float(
                            measure(ends["conditional"][index], shift)
                            - measure(ends[other][index], shift)
                        )
                        simulated_sign = 0 if abs(simulated) <= 1e-6 else int(np.sign(simulated))
                        predicted = predicted_gap_difference_sign(
                            model,
                            float(start),
                            lam,
                            shift,
                            "conditional",
                            other,
                            resolution=1e-6,
                            quantity=quantity,
                        )
                        disagreements += int(predicted != simulated_sign)
                        rows.append(
                            {
                                "v": v,
                                "a": loading,
                                "psi_0": float(start),
                                "versus": other,
                                "quantity": quantity,
                                "simulated": simulated,
                                "predicted_sign": predicted,
                            }
                        )
    evidence.checks.append(
        NumericCheck(
            f"predicted signs = signs of the simulated differences ({len(rows)} comparisons of gradient flows)",
            float(disagreements),
            0.0,
            0.0,
            "exact count",
        )
    )
    return rows


def regime_table(
    lam: float = 1.0,
    shift: float = 1.0,
    variances=(0.1, 0.3, 1.0, 3.0),
    loadings=(0.0, 0.5, 1.0),
    starts=(0.3, 0.6, 1.0),
) -> list[dict]:
    """Per (v, a) of the worked example's family: tau, psi*, psi_c and the predicted signs of the
    conditional penalty's target risk minus the unconditional one's and minus EW's."""
    from scm.label_correlation import predicted_gap_difference_sign

    rows = []
    for v in variances:
        for loading in loadings:
            model = example(v=v, loading=loading)
            signs = {
                other: {
                    str(start): predicted_gap_difference_sign(
                        model, start, lam, shift, "conditional", other, quantity="target_risk"
                    )
                    for start in starts
                }
                for other in ("unconditional", "none")
            }
            rows.append(
                {
                    "v": v,
                    "a": loading,
                    "tau": model.tau,
                    "psi_star": model.shortcut_angle(),
                    "psi_c": model.cka_zero_angle(),
                    "cka_at_0": float(model.cka(0.0)),
                    "conditional_minus_unconditional": signs["unconditional"],
                    "conditional_minus_ew": signs["none"],
                }
            )
    return rows
