"""The CORE-MTL term weights of each stacked model, read from the library's objective.

``TermWeights`` holds ``l_cka``, ``l_cfa``, ``l_rec`` of the batched loss (:mod:`.training`)

    loss_m = balanced(L_1..L_K) + l_cka max(0, CKA_u(Z_s, Z_r)) + l_cfa L_cfa + l_rec L_rec

one value for every model or one per model, and ``conditional``: 1 for a model whose CKA is the
label-conditional one (``independence="conditional"``, docs/THEORY.md S13), 0 otherwise. The weights are those of a
:class:`coremtl.objective.CoreMTLObjective` (the one description of the method's terms), and the
objective's other settings must be what the batched step computes: every term at every step, the
debiased CKA, the input-level CFA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from coremtl.objective import CoreMTLObjective
from scm.validation import InvalidParameterError


@dataclass
class TermWeights:
    """``l_cka``, ``l_cfa``, ``l_rec`` and the ``conditional`` switch of the CKA term per model:
    floats, or tensors of shape ``(M,)``; read from
    :class:`~coremtl.objective.CoreMTLObjective` by :meth:`of` (one for every model) and
    :meth:`per_model` (one per model). ``TermWeights()`` has no CORE-MTL terms (a balancer
    alone)."""

    cka: Tensor | float = 0.0
    cfa: Tensor | float = 0.0
    reconstruction: Tensor | float = 0.0
    conditional: Tensor | float = 0.0

    @classmethod
    def of(cls, objective: CoreMTLObjective | None) -> TermWeights:
        """The weights of ``objective`` for every model (None: no CORE-MTL terms).

        The batched step computes the debiased CKA's positive part, the input-level CFA and the
        L1 reconstruction at every step from the first; an objective with a CKA warm-up, a CFA
        probability below 1 or a later CFA start, the feature-level CFA or the biased CKA is
        refused in one line naming the setting (``independence="none"`` is a CKA weight of 0).
        The label-conditional CKA partials out the task labels themselves (regression)."""
        if objective is None:
            return cls()
        _check_batched(objective)
        cka = objective.cka_weight if objective.independence != "none" else 0.0
        conditional = float(cka > 0 and objective.independence == "conditional")
        return cls(cka, objective.cfa_weight, objective.reconstruction_weight, conditional)

    @classmethod
    def per_model(
        cls,
        objectives: Sequence[CoreMTLObjective | None],
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> TermWeights:
        """The weights of ``objectives[m]`` for model ``m`` (None: no CORE-MTL terms), as
        tensors ``(M,)``; each objective is checked as in :meth:`of`."""
        each = [cls.of(objective) for objective in objectives]
        rows = [(*weights.row(0), float(weights.conditional)) for weights in each]
        columns = torch.tensor(rows, dtype=dtype, device=device).reshape(len(rows), 4).T
        return cls(*columns)

    def row(self, index: int) -> tuple[float, float, float]:
        def pick(value):
            return float(value[index]) if isinstance(value, Tensor) else float(value)

        return pick(self.cka), pick(self.cfa), pick(self.reconstruction)

    def active(self, name: str) -> bool:
        value = getattr(self, name)
        return bool((value != 0).any()) if isinstance(value, Tensor) else value != 0


def _check_batched(objective: CoreMTLObjective) -> None:
    """One line for a setting of ``objective`` that the batched step does not compute."""
    cka = objective.cka_weight > 0 and objective.independence != "none"
    unsupported = (
        ("cka_warmup_steps", cka and objective.cka_warmup_steps != 0, "0"),
        ("debiased_cka", cka and not objective.debiased_cka, "True"),
        ("cfa_probability", objective.cfa_weight > 0 and objective.cfa_probability != 1, "1"),
        ("cfa_start_step", objective.cfa_weight > 0 and objective.cfa_start_step != 0, "0"),
        ("cfa_mode", objective.cfa_weight > 0 and objective.cfa_mode != "input", "'input'"),
    )
    for name, refused, expected in unsupported:
        if refused:
            raise InvalidParameterError(
                f"objective.{name}: the batched step computes every term at every step (debiased "
                f"CKA, input-level CFA); expected {expected}, got {getattr(objective, name)!r}"
            )
