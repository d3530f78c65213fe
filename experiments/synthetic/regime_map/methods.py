"""The methods of the regime map (study 1): the gradient balancers, CORE-MTL and its ablations, and
how they are batched (:mod:`coremtl.batched`)."""

from __future__ import annotations

import dataclasses

import torch

from coremtl.batched import TermWeights
from coremtl.objective import CoreMTLObjective

BALANCERS = ("ew", "pcgrad", "mgda", "rlw", "alignedmtl", "upgrad", "cagrad")
"""The balancers compared (registry names, all batched in :mod:`coremtl.batched.balancing`).
IMTL-G is left out: model A has one shared parameter, so ``J = j`` is ``K x 1`` and torchjd's
IMTL-G (``w = G^+ d / 1^T G^+ d``) updates it by ``||j||^2 / sum_i j_i``, unbounded when the task
derivatives nearly cancel; the runs diverge."""

LOSS_BALANCERS = ("ew", "rlw")
"""The balancers among them that weight the losses (one backward pass per step)."""

VARIANTS = {
    "core-mtl": {},
    "cka only": {"cfa_weight": 0.0, "reconstruction_weight": 0.0},
    "w/o CKA": {"cka_weight": 0.0},
    "w/o CFA": {"cfa_weight": 0.0},
    "w/o rec": {"reconstruction_weight": 0.0},
    "core-mtl (conditional)": {"independence": "conditional"},
}
"""CORE-MTL and its variants: the changes each makes to ``Config.objective`` (terms switched off,
or the label-conditional CKA of S13); every variant balances the task losses by Equal Weighting."""

METHODS = (*BALANCERS, *VARIANTS)

HEADLINE = ("core-mtl", "cka only", "core-mtl (conditional)")
"""The variants compared with the best balancer (every variant is compared with EW)."""

GROUPS = (
    (*LOSS_BALANCERS, *VARIANTS),
    tuple(m for m in BALANCERS if m not in LOSS_BALANCERS),
)
"""Methods trained as one batch: the loss weightings (Equal Weighting, RLW) and the CORE-MTL
variants (one backward pass per step), and the Jacobian balancers (one pass per task)."""


def balancer_names(methods: tuple[str, ...], units: int) -> tuple[str, ...]:
    """The balancer of every model of a ``methods x units`` batch (CORE-MTL variants use EW)."""
    return tuple(m if m in BALANCERS else "ew" for m in methods for _ in range(units))


def variant_objective(config, method: str) -> CoreMTLObjective | None:
    """The objective of CORE-MTL variant ``method`` (``config.objective`` with the changes of
    :data:`VARIANTS`), or None for a balancer (no CORE-MTL terms)."""
    if method not in VARIANTS:
        return None
    return dataclasses.replace(config.objective, **VARIANTS[method])


def penalty_of(config, method: str) -> str:
    """The independence penalty of ``method``: ``"none"`` (a balancer, or a variant without the
    CKA term), ``"unconditional"`` or ``"conditional"``."""
    objective = variant_objective(config, method)
    if objective is None or objective.cka_weight == 0 or objective.independence == "none":
        return "none"
    return objective.independence


def method_weights(
    config, methods: tuple[str, ...], units: int, device="cpu", dtype=torch.float64
) -> TermWeights:
    """:class:`coremtl.batched.TermWeights` over ``methods x units`` models (method-major), on
    ``device``: each variant's objective (:func:`variant_objective`), none for the balancers."""
    objectives = [variant_objective(config, m) for m in methods for _ in range(units)]
    return TermWeights.per_model(objectives, dtype, device)
