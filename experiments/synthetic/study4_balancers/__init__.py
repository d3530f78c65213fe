"""Study 4: why balancers cannot fix psi (docs/THEORY.md S3 and S4, claim C1).

Scalar setting S with K tasks (:mod:`.setting`), full-batch training on ``n`` source samples,
every balancer through ``coremtl.balancers``, in three parts:

A. heads at a fixed angle (:mod:`.heads`, S3): every balancer's heads converge to S3's closed-form
   heads, checked by a certified distance and a Bonferroni test in standard errors;
B. profile dynamics (:mod:`.profile`, S4): with the heads reset to least squares before every
   step, psi drifts by at most ``eta T max(sum |lambda_t|) max|dR*/dpsi|``;
C. joint training (:mod:`.joint`): heads and psi from one initialisation, the psi trajectory, the
   final psi and the OOD gap it leaves.

:mod:`.study` registers the predictions of S3 and S4 and states the verdict; :mod:`.plots` draws
the figures from the result.
"""

from experiments.synthetic.study4_balancers.heads import (
    agrees_with_closed_form,
    fixed_psi_heads,
    head_quantile,
)
from experiments.synthetic.study4_balancers.joint import joint_training
from experiments.synthetic.study4_balancers.profile import profile_derivative_max, profile_drift
from experiments.synthetic.study4_balancers.setting import CONFIGS, Config, study_scm
from experiments.synthetic.study4_balancers.study import STUDY

__all__ = [
    "CONFIGS",
    "STUDY",
    "Config",
    "agrees_with_closed_form",
    "fixed_psi_heads",
    "head_quantile",
    "joint_training",
    "profile_derivative_max",
    "profile_drift",
    "study_scm",
]
