"""Study 7: does the counterfactual swap give a gradient on psi in setting S? (docs/THEORY.md, open question)

Scalar setting S (``k = 1``, ``Sigma_s = 1``, ``Z_r ~ N(mu, v)``, ``Y = beta Z_s + eps``), encoder
``F = R(psi) G^T x``, head ``yhat = w Zhat_s + b``, exact linear decoder ``G R(psi)^T``. The orthogonal
``G`` cancels between encoder and decoder, so the derivation takes ``G = I``. For a pair ``(i, j)``
with ``j = pi(i)`` from a derangement, the swapped semantic coordinate that the head reads is

- ``task`` (no swap, the reference): ``u = Zhat_s(i)``;
- ``tied`` (decoder differentiated): ``R(psi) R(psi)^T = I`` so ``u = Zhat_s(i)`` again;
- ``input`` (the method's input-level CFA, decoder output detached; ``phi`` a frozen copy of
  ``psi``): ``u = cos(psi - phi) Zhat_s(i; phi) + sin(psi - phi) Zhat_r(j; phi)``;
- ``feature`` (the method's feature-level CFA): the edited features are detached, ``u`` is a
  constant, so the gradient on psi is identically 0;

and the swap loss is ``(Y_i - w u - b)^2``. sympy differentiates it in ``psi`` (then ``phi = psi``)
and takes the Gaussian expectation. Autograd through :class:`coremtl.objective.CoreMTLObjective`
on a :func:`experiments.synthetic.angle_model.angle_model` measures the same gradient on samples.

Modules: :mod:`~.derivation` (sympy: the per-sample and expected gradients), :mod:`~.gradients`
(the setting, autograd against the derivation on sampled batches), :mod:`~.finding` (summary,
predictions, finding), :mod:`~.plot` (figure).
"""

from __future__ import annotations

from experiments.study import FAILS, Study
from experiments.synthetic.study7_swap.derivation import expected_gradient
from experiments.synthetic.study7_swap.finding import conclude, predictions, summarise
from experiments.synthetic.study7_swap.gradients import CONFIGS, Config, measure
from experiments.synthetic.study7_swap.plot import plot

STUDY = Study(
    number=7,
    name="Counterfactual swap gradient on psi",
    statements=("S9",),
    claim="the counterfactual swap of residuals pulls the encoder's angle psi towards 0 beyond "
    "what the task loss does",
    expected=FAILS,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
)


__all__ = ["CONFIGS", "STUDY", "Config", "expected_gradient"]
