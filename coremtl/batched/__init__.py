"""Many small multi-task models trained as one computation (docs/THEORY.md, setting S).

``M`` models of one architecture are held as stacked parameters (leading dimension ``M``): every
layer is one ``torch.bmm``/``baddbmm`` over the models, so a step costs one pass of batched kernels
instead of ``M`` Python-level passes. The models never interact: the loss summed over models has,
for each model, exactly the gradient that model would get alone, so an elementwise optimiser
(plain gradient descent, AdamW) on the stacked tensors takes the per-model steps.

- :mod:`coremtl.batched.stacked`: the stacked architectures (the setting-S angle encoder, the
  dual-stream MLP) and their per-model library modules;
- :mod:`coremtl.batched.balancing`: the balancers on per-model Gramians (Equal Weighting, RLW,
  PCGrad, MGDA, IMTL-G, Aligned-MTL, UPGrad, DualProj, CAGrad);
- :mod:`coremtl.batched.faces`: the exact batched solvers of the dual-cone projection (UPGrad,
  DualProj) and of CAGrad's inner problem;
- :mod:`coremtl.batched.term_weights`: the CORE-MTL weights per model, read from
  :class:`coremtl.objective.CoreMTLObjective`;
- :mod:`coremtl.batched.terms`: the CORE-MTL terms per model (positive part of the debiased linear
  CKA, the input-level counterfactual swap, reconstruction);
- :mod:`coremtl.batched.training`: the training loop;
- :mod:`coremtl.batched.draws`: the run's random numbers, step by step;
- :mod:`coremtl.batched.reference`: the per-model reference loop built from the library's own
  pieces that the batched loop must reproduce;
- :mod:`coremtl.batched.benchmark`: ``coremtl bench batched``.
"""

from coremtl.batched.draws import Draws
from coremtl.batched.reference import loop_reference
from coremtl.batched.stacked import StackedAngle, StackedMLP
from coremtl.batched.term_weights import TermWeights
from coremtl.batched.training import Settings, draws, train, train_objective

__all__ = [
    "Draws",
    "Settings",
    "StackedAngle",
    "StackedMLP",
    "TermWeights",
    "draws",
    "loop_reference",
    "train",
    "train_objective",
]
