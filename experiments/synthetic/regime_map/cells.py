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

CORRELATION_KINDS = ("residual", "label")
"""The kinds of source correlation a cell can have:

- ``residual`` (S11): ``Cov(Z_r, Z_s) = rho sqrt(v) I`` in the source only, ``strength = rho``;
- ``label`` (S13): the residual copies the standardised labels in the source only,
  ``Z_r = a I_{k x K} diag(Var Y_t)^{-1/2} Y + E``, ``strength = a`` (model A only).

A new kind is added here, with its population moments in :mod:`.population` (model A), its
sampler in the units of :mod:`.model_a` (and :mod:`.model_b`), its label in :func:`regime_of` and
its statement in :func:`statement_of`."""

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

    @property
    def loading(self) -> float:
        """S13's label loading ``a`` (the strength of a ``label`` correlation)."""
        return self.strength if self.kind == "label" else 0.0

    def label(self) -> str:
        if self.strength == 0:
            return "rho = 0"
        return "rho > 0" if self.kind == "residual" else "label-mediated"


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


def correlations(strengths: tuple[float, ...], kind: str = "residual") -> tuple[Correlation, ...]:
    """The correlations of a grid: one correlation of ``kind`` per strength."""
    return tuple(Correlation(kind, float(strength)) for strength in strengths)


def grid(
    variances: tuple[float, ...],
    strengths: tuple[float, ...],
    starts: tuple[float | str, ...],
    kind: str = "residual",
) -> list[Cell]:
    """The cells in grid order (``v``, then the correlation of ``kind``, then the start)."""
    return [
        Cell(float(v), correlation, start)
        for v in variances
        for correlation in correlations(strengths, kind)
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


def statement_of(cell: Cell, penalty: str) -> str:
    """The statement that drives the prediction of a cell for a variant whose independence
    ``penalty`` is ``"none"``, ``"unconditional"`` or ``"conditional"`` (for the reader; the
    prediction itself comes from the population dynamics)."""
    rho, uses_cka = cell.correlation.rho, penalty != "none"
    if cell.correlation.loading != 0:
        if penalty == "conditional":
            return "S13: the CKA given the labels is zero at psi = 0"
        if uses_cka:
            return "S13: CKA(0) > 0 through the labels' copy in Z_r"
        return "S13: the source pulls psi to the shortcut angle"
    if rho != 0 and penalty == "conditional":
        return "S13: a correlation not carried by the labels biases the conditional CKA"
    if rho != 0 and uses_cka:
        return f"S11: CKA is zero at psi_c = {critical_angle(cell.v, rho):.3f}, not at 0"
    if cell.v == 1.0 and uses_cka:
        return "S6: CKA blind at Sigma_S = Sigma_s"
    if cell.v <= 0.01:
        return "S4: flat valley, source pull O(v)"
    return "S4 + S6: CKA pulls psi to the nearer of 0 and pi/2" if uses_cka else "S3/S4: no CKA"
