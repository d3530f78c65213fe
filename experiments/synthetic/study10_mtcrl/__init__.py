r"""Study 10: MT-CRL's claim (S12) with trained models on the multi-task SCM.

MT-CRL (Hu et al., "Improving Multi-Task Generalization via Regularizing Spurious Correlation",
NeurIPS 2022) says a shared multi-task model takes knowledge causal for one task but spurious for
another, and generalises worse when that correlation changes. S12 (docs/THEORY.md S12) makes it
precise: with ``K`` task-specific factors and a shared representation of width ``m < K``, the
source optimum reads other tasks' factors and its summed OOD gap is ``G = tr(P_m (Q_S - Q_T))``;
single-task models (and a shared width ``m >= K``) have gap 0.

SCM (:func:`scm.multitask.block_correlated_scm`): ``K = 3`` tasks with scalar factors,
``beta = (1, 0.8, 0.6)``, the source the equal mixture of two environments with exchangeable
correlation 0.3 and 0.9 (environment labels for MT-CRL), the target uncorrelated, a Haar mixing
``x = G z`` drawn per seed. Methods, all a linear encoder ``d -> m`` (an MLP with ``hidden > 0``)
and linear heads trained by :class:`coremtl.trainer.Trainer` (full batch, Adam, constant rate):
single-task (one encoder of width ``m`` per task), Equal Weighting at width ``m`` and at width
``K`` (the qualifier of S12), PCGrad, MT-CRL (two modules of width ``m / 2``; decorrelation,
invariance across the two source environments and sparsity; and without the invariance term, to
tell the two apart) and CORE-MTL (dual stream, heads on ``Z_s`` of width ``m``; CKA, input-level
CFA and reconstruction). Every hyperparameter is fixed before the run, the same for all methods,
and none is chosen with target data (:data:`~.setting.SELECTION`). Paired seeds: every method of a
seed sees the same SCM, training and evaluation samples, and starts from the same torch seed.

Registered before training: S12's closed forms for every seed (:func:`~.setting.register`) and
the two predictions of :func:`~.finding.predictions`. Measured per model
(:mod:`~.training`): the summed gap ``sum_t (mean_T l_t - mean_S l_t)`` of the squared error on
fresh source and target samples, and its weight on other tasks' factors. The verdict
(:func:`~.finding.conclude`) is on MT-CRL's claim: *fails* unless EW at width ``m`` has a larger
gap than single-task learning by more than 2 paired SE; *holds only as stated here* when EW at
width ``K`` has a smaller gap than at width ``m`` by more than 2 paired SE (the claim needs a
shared width below ``K``); *holds* otherwise.

Modules: :mod:`~.setting` (configuration, SCM, closed forms), :mod:`~.training` (models and
measurements), :mod:`~.finding` (summary, predictions, finding), :mod:`~.plot` (figure).
"""

from __future__ import annotations

from experiments.study import QUALIFIED, Study
from experiments.synthetic.study10_mtcrl.finding import conclude, predictions, summarise
from experiments.synthetic.study10_mtcrl.plot import plot
from experiments.synthetic.study10_mtcrl.setting import (
    CONFIGS,
    METHODS,
    SELECTION,
    Config,
    register,
    study_scm,
)
from experiments.synthetic.study10_mtcrl.training import measure

STUDY = Study(
    number=10,
    name="MT-CRL's claim: shared width vs other tasks' factors",
    statements=("S12",),
    claim="a shared multi-task model uses factors that are causal for one task but spurious for "
    "another, and so has a larger OOD gap than single-task learning (MT-CRL)",
    expected=QUALIFIED,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
    register=register,
)

__all__ = ["CONFIGS", "METHODS", "SELECTION", "STUDY", "Config", "study_scm"]
