"""Monte Carlo means with standard errors, and the tolerance every Monte Carlo check uses.

A sample mean of ``n`` i.i.d. draws with standard deviation ``sd`` has standard error
``sd / sqrt(n)``; by the central limit theorem the estimate lies within ``Z_SCORE`` standard errors
of the population value except with probability ``2 (1 - Phi(Z_SCORE)) ~ 5.7e-7`` per check, so a
failed check is evidence against the closed form, not bad luck.

The standard error is ``scipy.stats.sem`` (sample standard deviation, ``ddof = 1``): the layers
keep ``proofs`` from importing :mod:`experiments.stats`, so this module calls the library rather
than writing the formula again.
"""

from __future__ import annotations

import numpy as np

Z_SCORE = 5.0


def mean_and_standard_error(values: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error ``sd / sqrt(n)`` (``scipy.stats.sem``, ddof = 1)."""
    from scipy.stats import sem

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError(f"values: expected at least 2 draws, got {values.size}")
    return float(values.mean()), float(sem(values))


def ratio_standard_error(
    numerator: np.ndarray, denominator_a: np.ndarray, denominator_b: np.ndarray
) -> tuple[float, float]:
    """``mean(N) / (mean(A) mean(B))`` and its delta-method standard error.

    To first order the relative error of the ratio is ``dN/N - dA/A - dB/B``; by the triangle
    inequality for standard deviations its standard deviation is at most the sum of the relative
    standard errors, whatever the correlations between the three estimates (they come from the
    same draws), so that sum is returned.
    """
    n_mean, n_se = mean_and_standard_error(numerator)
    a_mean, a_se = mean_and_standard_error(denominator_a)
    b_mean, b_se = mean_and_standard_error(denominator_b)
    ratio = n_mean / (a_mean * b_mean)
    relative = abs(n_se / n_mean) + abs(a_se / a_mean) + abs(b_se / b_mean)
    return ratio, abs(ratio) * relative


FLOAT64_ROUNDOFF = 1e-9
"""Tolerance for closed forms compared with other closed forms in float64: the formulas involve
O(10) operations on numbers of order 1-100, so round-off stays far below 1e-9 relative."""
