"""The statistics of the studies, in one place: mean and standard error over seeds, paired
differences, the "more than k SE" test, Student-t intervals, and the seeds a test needs.

Conventions (docs/THEORY.md §5). Values over ``n`` paired seeds are summarised as an
:class:`Estimate`: the mean, the sample standard deviation ``s`` (``ddof = 1``) and the standard
error ``SE = s / sqrt(n)``. A comparison of two methods is the :func:`paired_difference` of their
per-seed values (same data and initialisation on a seed), so the seed-to-seed variation that both
share cancels. The k-SE test says a difference is positive when ``mean > k SE`` (``k = 2`` unless a
study registers another), and never with a single seed. For a two-sided confidence level the
interval is Student's ``mean +- t_{n-1, 1 - a/2} SE``.

Power. The k-SE test detects a true difference ``d`` with probability
``Phi(d sqrt(n) / s - k)``; the smallest difference it detects with probability ``power`` is

    d_min = (k + z_power) s / sqrt(n)                                     (:func:`detectable_difference`)

and the paired seeds it needs for a difference ``d`` are ``n = ((k + z_power) s / d)^2``
(:func:`seeds_needed`, normal approximation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scm.validation import InvalidParameterError

K_SE = 2.0
"""The default k of the "more than k SE" test."""
CONFIDENCE = 0.95
POWER = 0.8


def _array(values: Iterable[float], name: str) -> np.ndarray:
    array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise InvalidParameterError(f"{name}: expected a non-empty sequence of numbers")
    return array


def standard_error(values: Iterable[float]) -> float:
    """``s / sqrt(n)`` with the sample standard deviation (``inf`` for a single value)."""
    array = _array(values, "values")
    return float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else math.inf


def critical_z(confidence: float = CONFIDENCE) -> float:
    """``z_{1 - a/2}`` of a two-sided test at ``confidence = 1 - a``."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def bonferroni_z(tests: int, level: float = 1 - CONFIDENCE) -> float:
    """The two-sided normal critical value for ``tests`` tests at family-wise level ``level``:
    ``z_{1 - level / (2 tests)}``."""
    from scipy.stats import norm

    if tests < 1 or not 0 < level < 1:
        raise InvalidParameterError(
            f"tests, level: expected tests >= 1 and 0 < level < 1, got {tests}, {level}"
        )
    return float(norm.ppf(1.0 - level / (2.0 * tests)))


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` seeds with its sample standard deviation ``sd`` and standard error ``se``
    (``se = inf`` when ``n = 1``: one seed says nothing about the spread)."""

    mean: float
    se: float
    n: int
    sd: float

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """Student's two-sided ``mean -+ t_{n-1, 1-a/2} se`` (infinite for ``n = 1``)."""
        if self.n < 2 or not math.isfinite(self.se):
            return (-math.inf, math.inf)
        from scipy.stats import t as student

        half = float(student.ppf(0.5 + confidence / 2, self.n - 1)) * self.se
        return (self.mean - half, self.mean + half)

    def above(self, k: float = K_SE) -> bool:
        """``mean > k se`` with at least two seeds: reliably above zero."""
        return self.n > 1 and self.mean > k * self.se

    def below(self, k: float = K_SE) -> bool:
        """``mean < -k se`` with at least two seeds: reliably below zero."""
        return self.n > 1 and self.mean < -k * self.se

    def separated(self, k: float = K_SE) -> bool:
        """Reliably different from zero in either direction."""
        return self.above(k) or self.below(k)

    def detectable(self, k: float = K_SE, power: float = POWER) -> float:
        """The smallest true difference the k-SE test detects with probability ``power`` at this
        estimate's spread and seeds (:func:`detectable_difference`)."""
        return detectable_difference(self.sd, self.n, k, power)

    def text(self, digits: int = 3, signed: bool = True) -> str:
        """``"+0.123 +- 0.045"`` (mean +- SE)."""
        sign = "+" if signed else ""
        se = "inf" if not math.isfinite(self.se) else f"{self.se:.{digits}f}"
        return f"{self.mean:{sign}.{digits}f} +- {se}"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "se": self.se, "n": self.n, "sd": self.sd}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Estimate:
        """The inverse of :meth:`to_dict`, also after JSON, where an infinite ``se`` or ``sd``
        (a single seed) is stored as ``None``."""

        def spread(key: str) -> float:
            value = record[key]
            return math.inf if value is None else float(value)

        return cls(float(record["mean"]), spread("se"), int(record["n"]), spread("sd"))


def estimate(values: Iterable[float]) -> Estimate:
    """Mean, SE and sample standard deviation of ``values`` (one per seed)."""
    array = _array(values, "values")
    sd = float(array.std(ddof=1)) if array.size > 1 else math.inf
    se = sd / math.sqrt(array.size) if array.size > 1 else math.inf
    return Estimate(float(array.mean()), se, int(array.size), sd)


def paired_difference(a: Iterable[float], b: Iterable[float]) -> Estimate:
    """The :func:`estimate` of the per-seed differences ``a_i - b_i`` (paired seeds)."""
    first, second = _array(a, "a"), _array(b, "b")
    if first.size != second.size:
        raise InvalidParameterError(
            f"a, b: paired values need one value per seed on both sides, got {first.size} and "
            f"{second.size}"
        )
    return estimate(first - second)


def detectable_difference(sd: float, n: int, k: float = K_SE, power: float = POWER) -> float:
    """``(k + z_power) sd / sqrt(n)``: the smallest true paired difference that the k-SE test
    finds with probability ``power`` (module docstring); ``inf`` for ``n < 2``."""
    from scipy.stats import norm

    if n < 2 or not math.isfinite(sd):
        return math.inf
    return float((k + norm.ppf(power)) * sd / math.sqrt(n))


def seeds_needed(effect: float, sd: float, k: float = K_SE, power: float = POWER) -> int | None:
    """``ceil(((k + z_power) sd / |effect|)^2)`` (at least 2): the paired seeds the k-SE test needs
    to find a true difference ``effect`` with probability ``power``; ``None`` for a zero effect
    or an unknown spread."""
    from scipy.stats import norm

    if effect == 0 or not math.isfinite(sd) or not math.isfinite(effect):
        return None
    return max(2, math.ceil(((k + norm.ppf(power)) * sd / abs(effect)) ** 2))


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """``{"mean", "std", "n"}`` of ``values`` (sample std; 0 for a single value): the spread of a
    quantity over seeds, where a band shows variation rather than uncertainty of the mean."""
    array = _array(values, "values")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": int(array.size)}


def independent_se(a: Iterable[float], b: Iterable[float]) -> float:
    """``sqrt(s_a^2 / n_a + s_b^2 / n_b)``: the SE of ``mean(a) - mean(b)`` for independent
    samples (Monte Carlo draws of two environments)."""
    first, second = _array(a, "a"), _array(b, "b")
    if first.size < 2 or second.size < 2:
        return math.inf
    return float(math.sqrt(first.var(ddof=1) / first.size + second.var(ddof=1) / second.size))
