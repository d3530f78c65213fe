"""Study 11's setting: the configuration, its checks, the directions of a cell and the rule that
decides every cell, fixed from the configuration before any sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from experiments.stats import bonferroni_z
from experiments.study import Context

LEVEL = 0.05
PSIS = tuple(index * math.pi / 16 for index in range(8))


@dataclass(frozen=True)
class Config:
    """``head = None``: the source-optimal head at each psi; otherwise the fixed ``head``, ``bias``."""

    samples: int = 50_000
    psis: tuple[float, ...] = PSIS
    variances: tuple[float, ...] = (0.25, 1.0)
    shift_sizes: tuple[float, ...] = (0.5, 2.0)
    random_directions: int = 3
    orthogonal: bool = True
    k: int = 2
    noise_std: float = 0.1
    head: tuple[float, ...] | None = None
    bias: float = 0.0
    curve_points: int = 61


CONFIGS = {
    "smoke": Config(
        samples=4000,
        psis=(0.0, math.pi / 4, 7 * math.pi / 16),
        variances=(1.0,),
        shift_sizes=(1.0,),
        random_directions=1,
        curve_points=9,
    ),
    "fast": Config(),
    "full": Config(
        samples=200_000,
        variances=(0.1, 0.5, 2.0),
        shift_sizes=(0.25, 1.0, 4.0),
        random_directions=6,
    ),
}


def check_config(config: Config) -> None:
    """Raise :class:`~scm.validation.InvalidParameterError` naming the first bad field."""
    from scm.validation import (
        InvalidParameterError,
        check_angle,
        check_in_range,
        check_non_negative,
        check_positive_int,
    )

    check_positive_int(config.k, "k")
    if check_positive_int(config.samples, "samples") < 2:
        raise InvalidParameterError(f"samples: expected at least 2 draws, got {config.samples}")
    if not config.psis or not config.variances or not config.shift_sizes:
        raise InvalidParameterError("psis, variances, shift_sizes: expected non-empty grids")
    for psi in config.psis:
        check_angle(psi, "psis")
    for variance in config.variances:
        if check_non_negative(variance, "variances") == 0.0:
            raise InvalidParameterError("variances: expected positive residual variances, got 0")
    for size in config.shift_sizes:
        check_non_negative(size, "shift_sizes")
    if config.random_directions < 0 or isinstance(config.random_directions, bool):
        raise InvalidParameterError(
            f"random_directions: expected a non-negative integer, got {config.random_directions!r}"
        )
    if config.orthogonal and config.k < 2:
        raise InvalidParameterError(
            f"orthogonal: expected k >= 2 factors for an orthogonal shift, got k = {config.k}"
        )
    check_in_range(config.noise_std, "noise_std", 0.0, math.inf)
    check_in_range(config.bias, "bias", -math.inf, math.inf)
    if config.head is not None:
        head = np.asarray(config.head, dtype=float)
        if head.shape != (config.k,) or not np.all(np.isfinite(head)) or not np.any(head):
            raise InvalidParameterError(
                f"head: expected a finite non-zero vector of length k = {config.k}, got {config.head}"
            )
    check_positive_int(config.curve_points, "curve_points")


def directions(config: Config) -> tuple[str, ...]:
    """The direction labels of every ``(psi, v, delta)``: random ones, then orthogonal and worst."""
    labels = [f"random:{r}" for r in range(config.random_directions)]
    if config.orthogonal:
        labels.append("orthogonal")
    return (*labels, "worst")


def rule(config: Config) -> dict:
    """The rule every cell is read against, with its ``z`` and number of cells, fixed from the
    (checked) config alone: ``z = Phi^-1(1 - LEVEL / (2 N))`` over the ``N`` cells (Bonferroni)."""
    from proofs.montecarlo import FLOAT64_ROUNDOFF

    check_config(config)
    cells = (
        len(config.psis) * len(config.variances) * len(config.shift_sizes) * len(directions(config))
    )
    z = bonferroni_z(cells, LEVEL)
    return {
        "cells": cells,
        "z": z,
        "level": LEVEL,
        "roundoff_relative": FLOAT64_ROUNDOFF,
        "standard_error": (
            "paired: source and target draws share the standard normals (common random numbers); "
            "SE = sd(l_T - l_S) / sqrt(n)"
        ),
        "text": (
            f"in every one of the {cells} cells |MC - S1| <= z SE + r, every non-worst direction "
            f"has MC - S2 bound <= z SE + r and every worst direction |MC - S2 bound| <= z SE + r, "
            f"with z = Phi^-1(1 - 0.025 / {cells}) = {z:.3f} (Bonferroni, two-sided 95% over the "
            f"cells) and r = {FLOAT64_ROUNDOFF:g} (R_S + R_T) for float64 round-off"
        ),
    }


def register(context: Context) -> dict:
    """The rule, written into the result before any sampling."""
    return rule(context.config)
