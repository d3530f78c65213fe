"""Uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
Losses", CVPR 2018): ``S(L) = sum_i exp(-s_i) L_i + s_i`` with learnable log-variances ``s_i``
(``torchjd.scalarization.UW``), which the trainer's optimiser steps."""

from __future__ import annotations

from torch.nn import Parameter
from torchjd import scalarization

from coremtl.balancers.scalarizers import ScalarizerBalancer


class UncertaintyWeighting(ScalarizerBalancer):
    name = "uw"

    def build(self, num_tasks: int) -> scalarization.Scalarizer:
        return scalarization.UW(num_tasks)

    def parameters(self) -> list[Parameter]:
        return list(self.method.parameters())
