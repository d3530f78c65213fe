r"""Study 11: the OOD gap of setting S in closed form against Monte Carlo (docs/THEORY.md S1, S2).

Setting S (docs/THEORY.md section 3) with ``k`` factors, one task, equal residual means
(``mu_S = mu_T = 0``), a Haar mixing ``G`` and the encoder ``Zhat_s = [R(psi) G^T x]_s``. One seeded
draw fixes ``Sigma_s``, a residual shape ``A`` (``tr A = k``), ``beta`` and ``G``; the residual
variance ``v`` scales the source residual covariance, ``Sigma_S = v A``. A cell is
``(psi, v, delta, direction)``: the target covariance ``Sigma_T = Sigma_S + D`` with
``||D||_F = delta`` (:func:`scm.generate.shifted_covariance`) along

- ``random:r``: ``D = delta M_r / ||M_r||_F``, ``M_r = B_r B_r^T`` for Gaussian ``B_r`` (the same
  ``M_r`` for every ``psi``, ``v`` and ``delta``);
- ``worst``: ``D = delta w w^T / ||w||^2``, S2's maximiser for the cell's head ``w``;
- ``orthogonal``: ``D = delta u u^T`` with a unit ``u`` orthogonal to ``w`` (S2's shift that costs
  nothing; ``k >= 2``).

The head ``yhat = w^T Zhat_s + b`` is fixed before any sampling: the source-optimal head at each
``psi`` (:func:`scm.closed_form.optimal_heads`, S3) or the one given in the config. Per cell
(:mod:`~.cells`):

- S1's gap ``R_T - R_S = s^2 w^T D w + (s w^T mu_T + b)^2 - (s w^T mu_S + b)^2``
  (:func:`scm.closed_form.ood_gap_formula`) and S2's bound ``s^2 ||w||^2 delta``
  (:func:`scm.closed_form.worst_case_gap`), with ``s = sin psi``;
- the Monte Carlo gap: the mean of ``l_T(i) - l_S(i)`` over ``n`` pairs, where
  ``l_e = (Y - w^T Zhat_s - b)^2`` on observations ``x`` of environment ``e`` drawn by
  :func:`scm.sampling.sample`, encoded by :func:`scm.encoder.encode`. The pairs use common random
  numbers: source and target draws share the standard normals ``[u, xi, e]``, so ``Z_s`` and the
  noise are the same in both and only ``Z_r = L_e xi`` differs. Its standard error is
  ``sd(l_T - l_S) / sqrt(n)`` (paired); the standard error that independent samples of the same
  size would give, ``sqrt(var l_S / n + var l_T / n)``, is recorded beside it.

The rule (:func:`~.setting.rule`, written into the result before any sampling) and its three
predictions (:func:`~.finding.predictions`): with ``N`` cells and ``z = Phi^{-1}(1 - 0.025 / N)``
(Bonferroni), every cell has ``|MC - S1| <= z SE + r`` (P1), every non-worst direction
``MC - bound <= z SE + r`` (P2) and every worst direction ``|MC - bound| <= z SE + r`` (P3), with
``r = 1e-9 (R_S + R_T)`` (:data:`proofs.montecarlo.FLOAT64_ROUNDOFF`) for float64 round-off. The
claim holds if all three hold and fails otherwise; by the union bound a run whose closed forms
are right fails with probability at most 0.05.

``psi = pi/2`` is left out of the default grid: there ``Zhat_s = Z_r`` carries nothing about ``Y``,
the source-optimal head is 0, every gap is 0 and the worst direction is undefined.

Modules: :mod:`~.setting` (configuration, checks, rule), :mod:`~.cells` (closed forms and Monte
Carlo per cell), :mod:`~.finding` (the rule applied, predictions, finding), :mod:`~.plot`.
"""

from __future__ import annotations

from experiments.study import HOLDS, Study
from experiments.synthetic.study11_closed_form.cells import measure
from experiments.synthetic.study11_closed_form.finding import conclude, predictions, summarise
from experiments.synthetic.study11_closed_form.plot import plot
from experiments.synthetic.study11_closed_form.setting import CONFIGS, Config, register, rule

STUDY = Study(
    number=11,
    name="The OOD gap in closed form against Monte Carlo",
    statements=("S1", "S2"),
    claim="the OOD gap of a representation mixed by psi is S1's closed form, and at most S2's "
    "worst-case bound s^2 ||w||^2 ||D||_F, which the worst shift attains",
    expected=HOLDS,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
    register=register,
)

__all__ = ["CONFIGS", "STUDY", "Config", "rule"]
