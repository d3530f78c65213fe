"""The regime map's cells with a source correlation carried by the labels (docs/THEORY.md S13).

In a ``label`` cell (:mod:`.cells`) the residual copies the standardised labels in the source
only, ``Z_r = A Y + E``, ``A = a I_{k x K} diag(Var Y_t)^{-1/2}``
(:func:`.population.label_loading`). The unconditional CKA of the true streams is then ``> 0`` (S11's
mechanism, here through the labels), so CORE-MTL's penalty pulls ``psi`` away from 0, while the
CKA given the labels (``CoreMTLObjective(independence="conditional")``) is zero there.

Registered before any training (:func:`registered_signs`): per cell, S13's predicted sign of the
OOD gap of the conditional penalty minus the unconditional one's and minus EW's, from the scalar
model of S13 (:class:`scm.label_correlation.ScalarLabelSCM` with the cell's ``v``, loading
``a / sqrt(1 + sigma^2)`` (the standardised label's), ``beta = 1`` and the study's label noise
``sigma``; gradient flow from the cell's ``psi_0`` with
``lambda`` the study's CKA weight and a shift of the headline size,
:func:`scm.label_correlation.predicted_gap_difference_sign`).

Measured (:func:`label_regimes`): per model-A optimiser, run length and label regime, paired over
seeds and averaged per seed over the regime's cells (worst-case shift of the headline size), the
unconditional penalty's gap minus the best balancer's (the penalty it pays), the conditional one's
minus the best balancer's, and conditional minus unconditional, each with its registered interval.
The penalty is *removed* where the unconditional variant is reliably worse than the best balancer
and the conditional one is not; *reduced* where both are worse but the conditional one reliably
less so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.stats import Estimate
from experiments.study import Outcome
from experiments.synthetic.regime_map.cells import Cell, regime_of
from experiments.synthetic.regime_map.comparisons import (
    Arrays,
    Row,
    estimate_from,
    finite_difference,
    gap_key,
    interval_of,
)
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.rules import measured_outcome

UNCONDITIONAL, CONDITIONAL = "core-mtl", "core-mtl (conditional)"
"""The two CORE-MTL variants compared (:data:`.methods.VARIANTS`)."""


def registered_signs(config: Config, cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """S13's predicted signs for every ``label`` cell of ``cells``: of the conditional penalty's
    OOD gap minus the unconditional one's (``versus_unconditional``) and minus EW's
    (``versus_ew``); -1 smaller, +1 larger, 0 equal to 1e-9."""
    from scm.label_correlation import ScalarLabelSCM, predicted_gap_difference_sign

    out = []
    for cell in dict.fromkeys(c for c in cells if c.correlation.loading != 0):
        loading = cell.correlation.loading / math.sqrt(1.0 + config.noise_std**2)
        model = ScalarLabelSCM(v=cell.v, loading=loading, beta=1.0, noise_std=config.noise_std)
        lam, shift, start = config.objective.cka_weight, config.display_delta, float(cell.start)
        out.append(
            {
                "cell": asdict(cell),
                "regime": regime_of(cell),
                "versus_unconditional": predicted_gap_difference_sign(
                    model, start, lam, shift, "conditional", "unconditional"
                ),
                "versus_ew": predicted_gap_difference_sign(
                    model, start, lam, shift, "conditional", "none"
                ),
            }
        )
    return out


@dataclass(frozen=True)
class LabelRegime:
    """One model-A optimiser, run length and label regime: the paired differences (gap, worst-case
    shift of the headline size, averaged per seed over the regime's ``cells``) of the unconditional
    and the conditional penalty against each cell's best balancer and against each other, their
    measured outcomes, S13's registered sign of conditional minus unconditional (0 when its cells
    disagree) and the reading of the penalty."""

    optimiser: str
    length: str
    regime: str
    cells: int
    unconditional: Estimate
    conditional: Estimate
    between: Estimate
    unconditional_outcome: str
    conditional_outcome: str
    between_outcome: str
    registered: int
    reading: str

    @property
    def label(self) -> str:
        return f"A {self.optimiser}, {self.regime}"

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for key in ("unconditional", "conditional", "between"):
            record[key] = getattr(self, key).to_dict()
        return {**record, "label": self.label}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> LabelRegime:
        values = {key: value for key, value in record.items() if key != "label"}
        for key in ("unconditional", "conditional", "between"):
            values[key] = estimate_from(record[key])
        return cls(**values)


def reading_of(unconditional: str, conditional: str, between: str) -> str:
    """What the conditional penalty does to the unconditional one's cost, from the three measured
    outcomes (``better``, ``worse``, ``no difference``)."""
    if unconditional != "worse":
        return "no penalty to remove"
    if conditional != "worse":
        return "removed"
    return "reduced" if between == "better" else "not removed"


def label_regimes(
    arrays: Arrays,
    cells: list[Cell],
    rows: Sequence[Row],
    signs: Sequence[Mapping[str, Any]],
    config: Config,
    setting: tuple[str, str, str],
) -> list[LabelRegime]:
    """The :class:`LabelRegime` entries of one model-A setting (``(model, optimiser, length)``)
    from its measurements ``arrays`` and its scored ``rows`` (which name each cell's best
    balancer)."""
    key = gap_key("worst", config.display_delta)
    best = {
        row.cell: row.best_balancer
        for row in rows
        if row.variant == UNCONDITIONAL and row.baseline == "best" and row.direction == "worst"
    }
    out = []
    for name in dict.fromkeys(regime_of(c) for c in cells if c.correlation.loading != 0):
        chosen = [c for c in dict.fromkeys(cells) if regime_of(c) == name]
        places = [np.flatnonzero([c == cell for c in cells]) for cell in chosen]

        def pooled(method_of, places=places, chosen=chosen):
            return np.mean(
                [arrays[method_of(c)][key][p] for c, p in zip(chosen, places, strict=True)], axis=0
            )

        unconditional, conditional = pooled(lambda _: UNCONDITIONAL), pooled(lambda _: CONDITIONAL)
        baseline = pooled(lambda c: best[c])
        differences = [
            finite_difference(unconditional, baseline)[0],
            finite_difference(conditional, baseline)[0],
            finite_difference(conditional, unconditional)[0],
        ]
        outcomes = [measured_outcome(*interval_of(d, config)) for d in differences]
        registered = {s["versus_unconditional"] for s in signs if s["regime"] == name}
        out.append(
            LabelRegime(
                setting[1], setting[2], name, len(chosen), *differences, *outcomes,
                registered=registered.pop() if len(registered) == 1 else 0,
                reading=reading_of(*outcomes),
            )
        )  # fmt: skip
    return out


SIGN_OUTCOME = {-1: "better", 1: "worse", 0: "no difference"}
"""The measured outcome of conditional minus unconditional that each registered sign asserts."""


def score(summary: Mapping[str, Any]) -> Outcome:
    """P5: in every label regime of model A (long runs), conditional minus unconditional is
    measured with S13's registered sign."""
    regimes = [
        LabelRegime.from_dict(r) for r in summary.get("label_regimes", []) if r["length"] == "long"
    ]
    if not regimes:
        return Outcome(None, "no label-mediated cell in this setting")
    agreeing = [r for r in regimes if r.between_outcome == SIGN_OUTCOME[r.registered]]
    removed = [r.label for r in regimes if r.reading == "removed"]
    return Outcome(
        len(agreeing) == len(regimes),
        f"conditional minus unconditional as registered in {len(agreeing)} of {len(regimes)} "
        f"label regimes; the penalty removed in {len(removed)}",
        {"removed": removed, "readings": {r.label: r.reading for r in regimes}},
    )


def details(summary: Mapping[str, Any]) -> list[str]:
    """One line per label regime (long runs)."""
    lines = []
    for record in summary.get("label_regimes", []):
        regime = LabelRegime.from_dict(record)
        if regime.length != "long":
            continue
        lines.append(
            f"- S13, {regime.label} ({regime.cells} cells): unconditional CKA minus the best "
            f"balancer {regime.unconditional.text(3)} ({regime.unconditional_outcome}), "
            f"conditional {regime.conditional.text(3)} ({regime.conditional_outcome}); "
            f"conditional minus unconditional {regime.between.text(3)}, S13 registered "
            f"{SIGN_OUTCOME[regime.registered]}; the penalty {regime.reading}."
        )
    return lines
