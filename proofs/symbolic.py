"""Symbolic building blocks: symbolic matrices, an expectation operator and certified steps.

The expectation operator works on polynomials in random symbols that come in mutually independent
groups with known first and second moments: a monomial factorises over the groups,
``E[prod_g m_g] = prod_g E[m_g]``, and each group factor of degree at most two is replaced by its
mean ``E[u_i]`` or second moment ``E[u_i u_j]``. Higher moments are never needed by the
statements (every quantity is a second moment of a linear form), and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from proofs.statement import SymbolicStep


def vector(name: str, k: int, **assumptions) -> sp.Matrix:
    """A column of symbols ``name_1 .. name_k``."""
    return sp.Matrix([sp.Symbol(f"{name}_{i + 1}", **assumptions) for i in range(k)])


def matrix(name: str, rows: int, cols: int, **assumptions) -> sp.Matrix:
    """A ``rows x cols`` matrix of independent symbols ``name_ij``."""
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", **assumptions))


def symmetric_matrix(name: str, k: int, positive_diagonal: bool = True) -> sp.Matrix:
    """A symmetric ``k x k`` matrix of real symbols ``name_ij`` (``i <= j``); a covariance has a
    positive diagonal, a shift ``Sigma_T - Sigma_S`` need not."""
    entries = {}
    for i in range(k):
        for j in range(i, k):
            positive = positive_diagonal and i == j
            entries[i, j] = sp.Symbol(
                f"{name}_{i + 1}{j + 1}", real=True, positive=positive or None
            )
    return sp.Matrix(k, k, lambda i, j: entries[min(i, j), max(i, j)])


@dataclass(frozen=True)
class RandomGroup:
    """Random symbols ``u`` with ``E[u] = mean`` and ``E[u u^T] = second``, independent of every
    other group."""

    symbols: Sequence[sp.Symbol]
    mean: sp.Matrix
    second: sp.Matrix

    @classmethod
    def from_covariance(cls, symbols, mean, covariance) -> RandomGroup:
        """Second moment ``Cov + mean mean^T``."""
        mean = sp.Matrix(mean)
        return cls(tuple(symbols), mean, sp.Matrix(covariance) + mean * mean.T)


def expectation(expression: sp.Expr, groups: Sequence[RandomGroup]) -> sp.Expr:
    """``E[expression]`` for a polynomial in the random symbols of ``groups``."""
    random_symbols = [symbol for group in groups for symbol in group.symbols]
    polynomial = sp.Poly(sp.expand(expression), *random_symbols)
    total = sp.Integer(0)
    for exponents, coefficient in polynomial.terms():
        factor = sp.Integer(1)
        offset = 0
        for group in groups:
            powers = exponents[offset : offset + len(group.symbols)]
            offset += len(group.symbols)
            indices = [i for i, power in enumerate(powers) for _ in range(power)]
            if len(indices) == 0:
                continue
            if len(indices) == 1:
                factor *= group.mean[indices[0]]
            elif len(indices) == 2:
                factor *= group.second[indices[0], indices[1]]
            else:
                raise ValueError(
                    f"expression: a monomial of degree {len(indices)} in one random group needs "
                    "moments beyond the second"
                )
        total += coefficient * factor
    return total


def is_zero(expression: sp.Expr) -> bool:
    """Whether a rational expression is identically zero (numerator expands to 0)."""
    numerator, _ = sp.fraction(sp.cancel(sp.together(sp.expand(expression))))
    return sp.expand(numerator) == 0


def identity_step(name: str, lhs: sp.Expr, rhs: sp.Expr) -> SymbolicStep:
    """Certify ``lhs = rhs`` by simplifying the difference to zero."""
    return SymbolicStep(name, _short(lhs), _short(rhs), "==", is_zero(lhs - rhs))


def matrix_identity_step(name: str, lhs: sp.Matrix, rhs: sp.Matrix) -> SymbolicStep:
    """Certify a matrix identity entrywise."""
    difference = sp.Matrix(lhs) - sp.Matrix(rhs)
    passed = all(is_zero(entry) for entry in difference)
    return SymbolicStep(name, _short(lhs), _short(rhs), "==", passed)


def lagrange_sum_of_squares(a: Sequence[sp.Expr], b: Sequence[sp.Expr]) -> sp.Expr:
    """``sum_{i<j} (a_i b_j - a_j b_i)^2``, Lagrange's identity for
    ``(sum a_i^2)(sum b_i^2) - (sum a_i b_i)^2`` (the slack of Cauchy-Schwarz)."""
    n = len(a)
    return sum(
        ((a[i] * b[j] - a[j] * b[i]) ** 2 for i in range(n) for j in range(i + 1, n)),
        sp.Integer(0),
    )


def sum_of_squares_step(
    name: str, larger: sp.Expr, smaller: sp.Expr, squares: Sequence[sp.Expr]
) -> SymbolicStep:
    """Certify ``larger >= smaller`` by ``larger - smaller = sum_i squares_i^2`` (expanded)."""
    certificate = sum((term**2 for term in squares), sp.Integer(0))
    passed = is_zero(larger - smaller - certificate)
    return SymbolicStep(
        name, _short(larger), _short(smaller), ">=", passed, f"sum of {len(squares)} squares"
    )


def _short(expression, limit: int = 160) -> str:
    text = str(expression)
    return text if len(text) <= limit else text[: limit - 3] + "..."
