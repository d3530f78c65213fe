"""Capacity controls: hard parameter sharing on the same extra layers as a method, and the count
of the parameters on a model's prediction path.

A method that adds layers to the shared path (CORE-MTL's stream split, MT-CRL's modules, MTAN's
attention) may win by those layers rather than by its ingredient. :func:`capacity_trunk` gives the
backbone plus layers that match the method's, to be trained by Equal Weighting (or any balancer)
with no term, no gate and no stream:

- ``"core-mtl"``: the split's rows that feed the heads, ``W F + b`` with ``W`` of ``s`` rows
  (heads on ``Z_s``) or ``s + r`` rows (heads on ``[Z_s; Z_r]``), as a 1x1 convolution on maps or
  a linear layer on vectors; the heads read all its channels. The prediction path has exactly
  CORE-MTL's parameters.
- ``"mt-crl"``: the same ``M`` modules (:func:`coremtl.backbones.mtcrl_modules`), their outputs
  concatenated, no gates. The prediction path has MT-CRL's parameters less its ``T x M`` routing
  logits.
- ``"mtan"``: MTAN's extra layers are task-specific attention masks that multiply the shared
  features; no hard-sharing model has such layers, so an exact layer match is not meaningful. The
  control adds one shared block on the backbone output, ``C -> h -> C`` (1x1 convolutions with
  batch norm and ReLU on maps, linear layers and ReLU on vectors), whose width ``h`` makes its
  parameter count the nearest to that of MTAN's attention and transfer modules: equal to within
  half the parameters of one hidden unit (``(2C + 3) / 2`` on maps, ``(2C + 1) / 2`` on vectors).

:func:`prediction_path_parameters` counts the parameters a prediction depends on: everything but
a dual-stream model's decoder and, when its heads read ``Z_s`` alone, the split's residual rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from coremtl import backbones
from coremtl.architectures.mtcrl import MTCRLOptions
from coremtl.representation import BothStreamsModel, DualStreamModel, StreamSplit
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

CAPACITY_OF = ("core-mtl", "mt-crl", "mtan")


class ConcatenatedModules(nn.Module):
    """``[m_1(F); ...; m_M(F)]`` along the channels: MT-CRL's modules without gates."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.parallel = nn.ModuleList(modules)

    def forward(self, features: Tensor) -> Tensor:
        return torch.cat([module(features) for module in self.parallel], dim=1)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def prediction_path_parameters(model: nn.Module) -> int:
    """The number of parameters the predictions depend on (module docstring)."""
    total = parameter_count(model)
    if not isinstance(model, DualStreamModel):
        return total
    off_path = parameter_count(model.decoder) if model.decoder is not None else 0
    if not isinstance(model, BothStreamsModel) and isinstance(model.split, StreamSplit):
        weight, bias = model.split.projection.weight, model.split.projection.bias
        rows = model.split.residual_dim
        off_path += rows * (weight[0].numel() + (1 if bias is not None else 0))
    return total - off_path


def _bottleneck(channels: int, hidden: int, maps: bool) -> nn.Sequential:
    if maps:
        return nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, kernel_size=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
    return nn.Sequential(
        nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.ReLU()
    )


def matched_block(channels: int, maps: bool, target: int) -> nn.Sequential:
    """The ``C -> h -> C`` block whose parameter count is nearest to ``target``."""
    per_unit = 2 * channels + (3 if maps else 1)
    fixed = 3 * channels if maps else channels
    hidden = max(1, round((target - fixed) / per_unit))
    return _bottleneck(channels, hidden, maps)


def mtan_extra_parameters(
    backbone: nn.Module, tasks: Sequence[Task], example: Tensor, input_shape: Sequence[int]
) -> int:
    """The parameters MTAN adds to ``backbone``: its attention and transfer modules."""
    model = backbones.mtan_on(backbone, tasks, example, input_shape)
    return parameter_count(model.attention) + parameter_count(model.transfer)


def capacity_trunk(
    method: str,
    backbone: nn.Module,
    tasks: Sequence[Task],
    example: Tensor,
    streams: tuple[int, int] | None = None,
    heads_on: str = "semantic",
    mtcrl: MTCRLOptions | None = None,
) -> tuple[nn.Module, int]:
    """``(backbone + the extra layers of method, their output channels)`` (module docstring);
    ``backbone`` is used as given (pass a copy)."""
    if method not in CAPACITY_OF:
        raise InvalidParameterError(
            f"capacity_of: expected one of {', '.join(CAPACITY_OF)}, got {method!r}"
        )
    channels, maps, _ = backbones.feature_shape(backbone, example)
    if method == "core-mtl":
        semantic, residual = backbones.stream_widths(channels, streams)
        width = semantic + residual if heads_on == "both" else semantic
        layer = nn.Conv2d(channels, width, kernel_size=1) if maps else nn.Linear(channels, width)
        return nn.Sequential(backbone, layer), width
    if method == "mt-crl":
        options = mtcrl or MTCRLOptions()
        each = backbones.mtcrl_width(channels, options)
        modules = backbones.mtcrl_modules(channels, maps, options.modules, each)
        width = options.modules * each
        return nn.Sequential(backbone, ConcatenatedModules(modules)), width
    target = mtan_extra_parameters(backbone, tasks, example, tuple(example.shape[1:]))
    return nn.Sequential(backbone, matched_block(channels, maps, target)), channels
