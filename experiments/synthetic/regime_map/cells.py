"""The cells of the regime map (study 1): a residual variance, a source correlation between the
factors, and a starting point, with the regime a cell belongs to and the statement that drives its
prediction.

A cell of model A starts the angle encoder at ``psi_0``; a cell of model B names the mixing of the
dual-stream MLP's input (``linear`` or ``nonlinear``). Both have ``Sigma_s = I``,
``Sigma_S = v I`` and a :class:`Correlation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scm.validation import InvalidParameterError

CORRELATION_KINDS = ("residual",)
"""The kinds of source correlation a cell can have:

- ``residual`` (S11): ``Cov(Z_r, Z_s) = rho sqrt(v) I`` in the source only, ``strength = rho``.

A new kind (e.g. S13's correlation carried by the labels) is added here, with its population joint
covariance in :mod:`.population` (model A), its sampler in the units of :mod:`.model_a` and
:mod:`.model_b`, its label in :func:`regime_of` and its statement in :func:`statement_of`."""

DIRECTIONS = ("random", "worst")
"""The target shift directions: the seed's random PSD direction and the model's worst case."""


@dataclass(frozen=True)
class Correlation:
    """The source correlation of a cell: its ``kind`` (:data:`CORRELATION_KINDS`) and
    ``strength`` (0: none)."""

    kind: str = "residual"
    strength: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in CORRELATION_KINDS:
            raise InvalidParameterError(
                f"correlation kind: expected one of {CORRELATION_KINDS}, got {self.kind!r}"
            )

    @property
    def rho(self) -> float:
        """S11's ``rho`` (the strength of a ``residual`` correlation)."""
        return self.strength if self.kind == "residual" else 0.0

    def label(self) -> str:
        return "rho = 0" if self.strength == 0 else "rho > 0"


@dataclass(frozen=True)
class Cell:
    """One cell: ``Sigma_S = v I``, the source ``correlation`` and the ``start`` (``psi_0`` of
    model A, the mixing of model B)."""

    v: float
    correlation: Correlation
    start: float | str

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Cell:
        return cls(float(record["v"]), Correlation(**record["correlation"]), record["start"])


def correlations(rhos: tuple[float, ...]) -> tuple[Correlation, ...]:
    """The correlations of a grid: one ``residual`` correlation per ``rho``."""
    return tuple(Correlation("residual", float(rho)) for rho in rhos)


def grid(
    variances: tuple[float, ...], rhos: tuple[float, ...], starts: tuple[float | str, ...]
) -> list[Cell]:
    """The cells in grid order (``v``, then the correlation, then the start)."""
    return [
        Cell(float(v), correlation, start)
        for v in variances
        for correlation in correlations(rhos)
        for start in starts
    ]


def regime_of(cell: Cell) -> str:
    """The regime of a cell: the size of ``v`` against the semantic variance 1, and whether the
    source correlates the factors."""
    v = cell.v
    base = (
        "v -> 0 (v = 0.01)"
        if v <= 0.01
        else "control Sigma_S = Sigma_s (v = 1)"
        if v == 1.0
        else "v > 1"
        if v > 1
        else "small v (0.1, 0.3)"
    )
    return f"{base}, {cell.correlation.label()}"


def critical_angle(v: float, rho: float) -> float:
    """The angle in ``[0, pi/2)`` where the population stream CKA is zero with ``rho != 0``:
    S11's ``psi_c`` (:func:`scm.correlation.cka_zero_angle`) brought into the encoder's range."""
    from scm.correlation import cka_zero_angle

    return cka_zero_angle(v, rho) % (math.pi / 2)


def statement_of(cell: Cell, uses_cka: bool) -> str:
    """The statement that drives the prediction of a cell for a variant with (``uses_cka``) or
    without the CKA term (for the reader; the prediction itself comes from the population
    dynamics)."""
    rho = cell.correlation.rho
    if rho != 0 and uses_cka:
        return f"S11: CKA is zero at psi_c = {critical_angle(cell.v, rho):.3f}, not at 0"
    if cell.v == 1.0 and uses_cka:
        return "S6: CKA blind at Sigma_S = Sigma_s"
    if cell.v <= 0.01:
        return "S4: flat valley, source pull O(v)"
    return "S4 + S6: CKA pulls psi to the nearer of 0 and pi/2" if uses_cka else "S3/S4: no CKA"
