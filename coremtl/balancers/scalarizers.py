"""Loss weighting with a torchjd scalarizer, and the scalarizers that need nothing more.

The scalarizer computes ``S(L_1, ..., L_K)``, which is back-propagated; the returned weights are
``dS/dL_i`` (for Equal Weighting, the plain sum, they are all 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.nn import Parameter
from torchjd import scalarization

from coremtl.balancers.base import SharedRepresentation
from coremtl.balancers.torchjd_method import TorchjdBalancer


class ScalarizerBalancer(TorchjdBalancer):
    """Back-propagation of the torchjd scalarisation ``self.method(L_1, ..., L_K)``."""

    def backward(
        self,
        task_losses: Mapping[str, Tensor],
        shared: SharedRepresentation,
        shared_params: Sequence[Parameter],
        extra_loss: Tensor | None = None,
    ) -> dict[str, float]:
        values = torch.stack(self.ordered_losses(task_losses))
        if values.requires_grad:
            values.retain_grad()
        else:
            values.requires_grad_()
        with self.random_context():
            total = self.method(values)
        if extra_loss is not None:
            total = total + extra_loss
        total.backward()
        return self.weights_dict(values.grad)


class EqualWeighting(ScalarizerBalancer):
    """Equal Weighting, ``S(L) = sum_i L_i``: ``torchjd.scalarization.Sum``."""

    name = "ew"

    def build(self, num_tasks: int) -> scalarization.Scalarizer:
        return scalarization.Sum()


class RandomLossWeighting(ScalarizerBalancer):
    """Random loss weighting (Lin et al., "Reasonable Effectiveness of Random Weighting", TMLR
    2022): ``torchjd.scalarization.Random``; seeded."""

    name = "rlw"
    stochastic = True

    def build(self, num_tasks: int) -> scalarization.Scalarizer:
        return scalarization.Random()


class STCH(ScalarizerBalancer):
    """Smooth Tchebycheff scalarisation (Lin et al., ICML 2024): ``torchjd.scalarization.STCH``."""

    name = "stch"
    defaults: ClassVar[dict[str, Any]] = {"mu": 1.0}

    def build(self, num_tasks: int, mu: float) -> scalarization.Scalarizer:
        return scalarization.STCH(mu)


class GeometricLossStrategy(ScalarizerBalancer):
    """Geometric loss strategy, the geometric mean of the losses (Chennupati et al., CVPRW 2019):
    ``torchjd.scalarization.GeometricMean``."""

    name = "gls"

    def build(self, num_tasks: int) -> scalarization.Scalarizer:
        return scalarization.GeometricMean()
