"""The methods of the regime map (study 1): the gradient balancers, CORE-MTL and its ablations, and
how they are batched (:mod:`coremtl.batched`)."""

from __future__ import annotations

BALANCERS = ("ew", "pcgrad", "mgda", "rlw", "alignedmtl", "upgrad", "cagrad")
"""The balancers compared (registry names, all batched in :mod:`coremtl.batched.balancing`).
IMTL-G is left out: model A has one shared parameter, so ``J = j`` is ``K x 1`` and torchjd's
IMTL-G (``w = G^+ d / 1^T G^+ d``) updates it by ``||j||^2 / sum_i j_i``, unbounded when the task
derivatives nearly cancel; the runs diverge."""

LOSS_BALANCERS = ("ew", "rlw")
"""The balancers among them that weight the losses (one backward pass per step)."""

VARIANTS = {
    "core-mtl": (1.0, 1.0, 1.0),
    "cka only": (1.0, 0.0, 0.0),
    "w/o CKA": (0.0, 1.0, 1.0),
    "w/o CFA": (1.0, 0.0, 1.0),
    "w/o rec": (1.0, 1.0, 0.0),
}
"""CORE-MTL's variants: which of its terms (CKA, CFA, reconstruction) each switches on, scaled by
the configuration's weights; every variant balances the task losses by Equal Weighting."""

METHODS = (*BALANCERS, *VARIANTS)

HEADLINE = ("core-mtl", "cka only")
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


def method_weights(config, methods: tuple[str, ...], units: int, device="cpu", dtype=None):
    """:class:`coremtl.batched.TermWeights` over ``methods x units`` models (method-major), on
    ``device``: each variant's switches times the configuration's ``cka_weight``, ``cfa_weight``
    and ``reconstruction_weight``; 0 for the balancers."""
    import torch

    from coremtl.batched import TermWeights

    scale = (config.cka_weight, config.cfa_weight, config.reconstruction_weight)
    rows = [
        [VARIANTS[m][i] * scale[i] if m in VARIANTS else 0.0 for m in methods] for i in range(3)
    ]
    tensors = [
        torch.tensor(r, dtype=torch.float64, device=device).repeat_interleave(units) for r in rows
    ]
    if dtype is not None:
        tensors = [t.to(dtype) for t in tensors]
    return TermWeights(*tensors)
