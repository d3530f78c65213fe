"""The derived gradient on psi of each swap variant (package docstring): sympy differentiates the
swap loss per sample and takes its Gaussian expectation."""

from __future__ import annotations

from functools import cache

import numpy as np

VARIANTS = ("task", "tied", "input", "feature")


@cache
def derivation() -> dict:
    """Per-sample and expected gradients on psi of each variant, as sympy expressions."""
    import sympy as sp

    psi, phi, w, b = sp.symbols("psi phi w b", real=True)
    beta, mu = sp.symbols("beta mu", real=True)
    v, sigma = sp.symbols("v sigma", nonnegative=True)
    zs_i, rr_i, zs_j, rr_j, eps = sp.symbols("zs_i rr_i zs_j rr_j eps", real=True)
    zr_i, zr_j = mu + rr_i, mu + rr_j
    y_i = beta * zs_i + eps

    def streams(angle, zs, zr):
        return sp.cos(angle) * zs + sp.sin(angle) * zr, -sp.sin(angle) * zs + sp.cos(angle) * zr

    semantic_i, _ = streams(psi, zs_i, zr_i)
    frozen_s_i, _ = streams(phi, zs_i, zr_i)
    _, frozen_r_j = streams(phi, zs_j, zr_j)
    _, residual_j = streams(psi, zs_j, zr_j)
    encoder = sp.Matrix([[sp.cos(psi), sp.sin(psi)], [-sp.sin(psi), sp.cos(psi)]])
    re_encoded = encoder * encoder.T * sp.Matrix([semantic_i, residual_j])
    read = {
        "task": semantic_i,
        "tied": sp.simplify(re_encoded[0]),
        "input": sp.cos(psi - phi) * frozen_s_i + sp.sin(psi - phi) * frozen_r_j,
        "feature": frozen_s_i,
    }
    variances = {zs_i: 1, zs_j: 1, rr_i: v, rr_j: v, eps: sigma**2}
    per_sample, expected = {}, {}
    for variant, u in read.items():
        loss = (y_i - w * u - b) ** 2
        gradient = sp.expand(sp.diff(loss, psi).subs(phi, psi))
        per_sample[variant] = gradient
        expected[variant] = sp.simplify(gaussian_expectation(gradient, variances))
    profile = {"beta": beta, "v": v, "psi": psi}
    return {
        "symbols": {"psi": psi, "w": w, "b": b, "beta": beta, "mu": mu, "v": v, "sigma": sigma},
        "samples": (zs_i, rr_i, zs_j, rr_j, eps),
        "per_sample": per_sample,
        "expected": expected,
        "profile": profile,
    }


def gaussian_expectation(expression, variances: dict):
    """``E[expression]`` for independent centred Gaussians with the given variances.

    The polynomial is expanded in the Gaussian variables and each monomial ``prod z^n`` replaced by
    ``prod E[z^n]`` with ``E[z^n] = var^(n/2) (n - 1)!!`` for even ``n`` and 0 for odd ``n``.
    """
    import sympy as sp

    variables = list(variances)
    polynomial = sp.Poly(sp.expand(expression), *variables)
    total = sp.Integer(0)
    for powers, coefficient in polynomial.terms():
        term = coefficient
        for variable, power in zip(variables, powers, strict=True):
            if power % 2:
                term = 0
                break
            term *= variances[variable] ** sp.Rational(power, 2) * sp.factorial2(power - 1)
        total += term
    return total


def derived_statements() -> dict[str, str]:
    """The expected gradients as strings, and whether each equals the task gradient."""
    import sympy as sp

    derived = derivation()
    task = derived["expected"]["task"]
    return {
        variant: {
            "expected_gradient": str(sp.factor(expression)),
            "equals_task_gradient": bool(sp.simplify(expression - task) == 0),
            "is_zero": bool(sp.simplify(expression) == 0),
        }
        for variant, expression in derived["expected"].items()
    }


@cache
def numeric(variant: str, with_samples: bool):
    """The per-sample (``with_samples``) or expected gradient of ``variant`` as a numpy function."""
    import sympy as sp

    derived = derivation()
    expression = derived["per_sample" if with_samples else "expected"][variant]
    symbols = derived["symbols"]
    arguments = [symbols[name] for name in ("psi", "w", "b", "beta", "mu", "v", "sigma")]
    if with_samples:
        arguments += list(derived["samples"])
    return sp.lambdify(arguments, expression, "numpy")


def expected_gradient(variant: str, psi, w, b, beta, mu, v, sigma):
    """The derived ``E[d L_swap / d psi]`` of ``variant`` (numpy-evaluable)."""
    function = numeric(variant, with_samples=False)
    return np.broadcast_to(function(psi, w, b, beta, mu, v, sigma), np.shape(psi)).astype(float)
