"""The loss terms a baseline adds to the task losses, chosen by ``model.kind``.

:func:`build_regularizers` returns the objects the trainer must add for a config; each has the
objective interface ``terms(model, batch, forward, step, task_losses_fn, generator) -> dict[str,
Tensor]`` (as :class:`coremtl.objective.CoreMTLObjective`), and the trainer adds the weighted terms
it returns to the balanced task losses (weight 1):

- ``kind: rep-mtl``: :class:`coremtl.architectures.repmtl.RepMTLRegularizer` (Wang, Li & Xu, ICCV
  2025), ``tsr_weight L_TSR + csa_weight L_CSA`` from the task saliencies ``dL_t / dF`` on the
  shared encoder maps, weights from ``method.repmtl``;
- ``kind: mt-crl``: :class:`coremtl.architectures.mtcrl.MTCRLRegularizer` (Hu et al., NeurIPS 2022),
  ``decorrelation_weight L_dis + invariance_weight L_inv + sparsity_weight L_sparse``, weights from
  ``method.mtcrl``, wrapped by :class:`EnvironmentOptionalMTCRL`;
- every other kind: none (the CORE-MTL terms come from the objective, not from here).

Environments for MT-CRL's invariance term. ``L_inv`` compares the routing gradients of the
environments present in a batch, read from per-sample integer labels ``batch["environment"]``.
NYUv2 and Cityscapes define no environments, and the rendered scenes train on the source
environment alone, so by default the batches carry no such labels: the invariance term is then
skipped (with one notice per run on the main process) and MT-CRL trains with its
decorrelation and sparsity terms. A dataset whose batches carry ``environment`` (e.g. a training
set mixing rendered source and target scenes) gets the full regulariser; a batch holding a single
environment gives ``L_inv = 0``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from coremtl.architectures.mtcrl import MTCRLRegularizer
from coremtl.architectures.repmtl import RepMTLRegularizer
from coremtl.distributed import is_main_process
from coremtl.forward import Forward
from coremtl.objective import TaskLossesFn
from coremtl.trainer import TermSource

from .config import VisionConfig

ENVIRONMENT_KEY = "environment"


class EnvironmentOptionalMTCRL:
    """The MT-CRL terms, with the invariance term only on batches that carry environment labels.

    Batches with ``batch["environment"]`` get :class:`MTCRLRegularizer` with every weight; batches
    without it get the same regulariser with ``invariance_weight = 0``, and the first such batch
    prints one notice to standard error (main process only).
    """

    def __init__(
        self,
        decorrelation_weight: float = 1.0,
        invariance_weight: float = 1.0,
        sparsity_weight: float = 0.01,
    ) -> None:
        self.full = MTCRLRegularizer(
            decorrelation_weight, invariance_weight, sparsity_weight, ENVIRONMENT_KEY
        )
        self.without_environments = MTCRLRegularizer(
            decorrelation_weight, 0.0, sparsity_weight, ENVIRONMENT_KEY
        )
        self.noticed = False

    def terms(
        self,
        model: nn.Module,
        batch: Mapping[str, Tensor],
        forward: Forward,
        step: int,
        task_losses_fn: TaskLossesFn | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        if ENVIRONMENT_KEY in batch or self.full.invariance_weight == 0:
            return self.full.terms(model, batch, forward, step, task_losses_fn, generator)
        if not self.noticed:
            self.noticed = True
            if is_main_process():
                print(
                    f"MT-CRL: the batches carry no {ENVIRONMENT_KEY!r} labels, so the invariance "
                    "term is skipped (decorrelation and sparsity terms kept)",
                    file=sys.stderr,
                )
        return self.without_environments.terms(
            model, batch, forward, step, task_losses_fn, generator
        )


def build_regularizers(config: VisionConfig) -> list[TermSource]:
    """The regularisers the trainer must add for ``config`` (empty for most kinds)."""
    kind = config.model.kind
    if kind == "rep-mtl":
        options = config.method.repmtl
        return [RepMTLRegularizer(options.tsr_weight, options.csa_weight, options.temperature)]
    if kind == "mt-crl":
        options = config.method.mtcrl
        return [
            EnvironmentOptionalMTCRL(
                options.decorrelation_weight, options.invariance_weight, options.sparsity_weight
            )
        ]
    return []
