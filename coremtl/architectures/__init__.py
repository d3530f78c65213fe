"""Baseline multi-task architectures, each returning :class:`coremtl.forward.Forward`.

Every model exposes ``heads`` (one module per task) and ``shared_parameters()`` (the parameters
upstream of ``Forward.shared``), which the trainer and the gradient balancers use. Rep-MTL and
MT-CRL regularisers follow the trainer's objective interface ``terms(model, batch, forward, step,
task_losses_fn=...) -> dict[str, Tensor]``.
"""

from coremtl.architectures.mlp import mlp
from coremtl.architectures.mtan import MTAN, split_stage
from coremtl.architectures.mtcrl import MTCRL, MTCRLOptions, MTCRLRegularizer
from coremtl.architectures.repmtl import RepMTLRegularizer
from coremtl.architectures.shared_bottom import SharedBottom
from coremtl.architectures.single_task import SingleTaskModels

__all__ = [
    "MTAN",
    "MTCRL",
    "MTCRLOptions",
    "MTCRLRegularizer",
    "RepMTLRegularizer",
    "SharedBottom",
    "SingleTaskModels",
    "mlp",
    "split_stage",
]
