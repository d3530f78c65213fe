"""Study 5: what the CKA penalty sees (docs/THEORY.md S6, claim C4).

Scalar setting S (``Sigma_s = 1``, ``Sigma_S = v``, zero means) with the angle-parametrised model
(:mod:`experiments.synthetic.angle_model`) and the exact tied decoder. From several initial angles
``psi_0``, full-batch gradient descent (plain steps, so a flat objective does not move psi)
minimises, on ``n`` source samples,

- ``cka``: the debiased linear CKA of the streams alone (``CoreMTLObjective``'s CKA term),
- ``task``: the squared task losses alone (reference),
- ``cka+task``, ``cka+task+rec`` (plus the L1 reconstruction term) and ``cka+task+rec+cfa`` (plus
  the input-level counterfactual swap term),

and the study reports the angle each reaches. Population CKA
``CKA(psi) = c^2 s^2 (v - 1)^2 / ((c^2 + s^2 v)(s^2 + c^2 v))`` is flat (zero) at ``v = 1``
(``Sigma_S = Sigma_s``): there CKA alone cannot move psi; away from it, CKA is zero at both
``psi = 0`` and ``psi = pi/2`` (the streams swapped), so it picks whichever is nearer. With the
exact decoder the reconstruction term is identically zero, and the swap adds no pull on psi in
expectation (study 7), so the task loss is the anchor that breaks the tie.

The claim tested is C4's use of CKA in the method's sense: minimising the streams' CKA moves the
encoder to the disentangled angle ``psi = 0``. The registered predictions are S6's account of
where it does not (blind at ``v = 1``, the task loss as the anchor, the swapped solution from
``psi_0 > pi/4``); when they hold the claim holds only as stated here.

:mod:`.training` holds the setting and the runs, :mod:`.study` the summary, the registered
predictions and the verdict, :mod:`.plots` the figure.
"""

from experiments.synthetic.study5_cka.study import STUDY
from experiments.synthetic.study5_cka.training import (
    CONFIGS,
    OBJECTIVES,
    Config,
    study_scm,
    train_angle,
)

__all__ = ["CONFIGS", "OBJECTIVES", "STUDY", "Config", "study_scm", "train_angle"]
