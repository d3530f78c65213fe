"""Fitting the library's layers to a user's backbone (for :mod:`coremtl.preset`).

- :func:`feature_shape`: what the backbone produces on an example batch (vectors ``(B, C)`` or
  maps ``(B, C, h, w)``), probed in eval mode without gradients;
- :func:`soft_decoder`: the grounding decoder of the streams: :class:`coremtl.grounding.ConvDecoder`
  with its upsampling stages computed from the input and feature sizes for maps, an
  :class:`coremtl.grounding.MLPDecoder` reshaped to the input for vectors;
- :func:`mtan_on`: MTAN over the stages of an ``nn.Sequential`` backbone, the stage widths probed;
- :func:`mtcrl_on`: MT-CRL's disentangled modules on the backbone features.

What cannot be fitted is refused in one line naming the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from coremtl.heads import task_heads
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

GROUNDINGS = ("soft", "none")
MTCRL_MODULES = 4


def probe(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` in eval mode without gradients (batch-norm statistics untouched)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module(x)
    finally:
        module.train(was_training)


def feature_shape(backbone: nn.Module, example: Tensor) -> tuple[int, bool, tuple[int, ...]]:
    """``(channels, maps, spatial size)`` of the backbone's output on ``example``."""
    if not isinstance(example, Tensor) or example.ndim < 2:
        raise InvalidParameterError(
            f"example: expected a batch of inputs (B, ...), got {type(example).__name__}"
        )
    out = probe(backbone, example[:2])
    if not isinstance(out, Tensor) or out.ndim not in (2, 4):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InvalidParameterError(
            f"backbone: expected feature vectors (B, C) or maps (B, C, h, w), got {shape}"
        )
    return out.shape[1], out.ndim == 4, tuple(out.shape[2:])


def stream_widths(channels: int, streams: tuple[int, int] | None) -> tuple[int, int]:
    """``(semantic, residual)`` widths: ``streams`` checked, or half the channels each."""
    if streams is None:
        half = max(1, channels // 2)
        return half, half
    pair = isinstance(streams, (tuple, list)) and len(streams) == 2
    if not pair or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in streams
    ):
        raise InvalidParameterError(
            f"streams: expected (semantic, residual) positive integers, got {streams!r}"
        )
    return tuple(streams)


def soft_decoder(
    grounding: str,
    semantic: int,
    residual: int,
    maps: bool,
    size: Sequence[int],
    input_shape: Sequence[int],
) -> nn.Module | None:
    """The decoder of ``grounding`` (``"soft"``; ``None`` for ``"none"``) from streams of the
    given widths (maps of spatial ``size``, or vectors) to inputs of per-sample ``input_shape``."""
    from coremtl.grounding import ConvDecoder, MLPDecoder

    if grounding == "hard":
        raise InvalidParameterError(
            "grounding: 'hard' renders the image from predicted surface normals (a dense "
            "'normal' task and the physics decoder of the vision pipeline); the library preset "
            f"builds {GROUNDINGS}"
        )
    if grounding not in GROUNDINGS:
        raise InvalidParameterError(f"grounding: expected one of {GROUNDINGS}, got {grounding!r}")
    if grounding == "none":
        return None
    if not maps:
        outputs = math.prod(input_shape)
        hidden = (max(64, 2 * (semantic + residual)),)
        return MLPDecoder(semantic, residual, outputs, hidden, output_shape=input_shape)
    if len(input_shape) != 3:
        raise InvalidParameterError(
            f"grounding: the soft decoder of feature maps reconstructs images (B, C, H, W), got "
            f"inputs of per-sample shape {tuple(input_shape)}; use grounding='none'"
        )
    return ConvDecoder.for_sizes(semantic, residual, input_shape, size)


def mtan_on(
    backbone: nn.Module, tasks: Sequence[Task], example: Tensor, input_shape: Sequence[int]
) -> nn.Module:
    """MTAN over the stages of ``backbone``; each stage's ``(u, p)`` widths probed on ``example``."""
    from coremtl.architectures.mtan import MTAN, split_stage

    stages = list(backbone) if isinstance(backbone, nn.Sequential) else []
    if not stages or not all(isinstance(s, nn.Sequential) and len(s) >= 2 for s in stages):
        raise InvalidParameterError(
            "backbone: MTAN attends over stages; expected an nn.Sequential whose children are "
            "nn.Sequential stages of at least two modules each"
        )
    channels, current = [], example[:2]
    for stage in stages:
        body, block = split_stage(stage)
        u = probe(body, current)
        current = probe(block, u)
        channels.append((u.shape[1], current.shape[1]))
    maps = current.ndim == 4
    heads = task_heads(tasks, current.shape[1], maps, input_shape)
    return MTAN(stages, channels, heads, maps=maps)


def mtcrl_on(
    backbone: nn.Module,
    tasks: Sequence[Task],
    channels: int,
    maps: bool,
    input_shape: Sequence[int],
) -> nn.Module:
    """MT-CRL with :data:`MTCRL_MODULES` modules of ``channels // MTCRL_MODULES`` channels each
    (3x3 convolution, batch norm, ReLU on maps; linear and ReLU on vectors)."""
    from coremtl.architectures.mtcrl import MTCRL

    width = max(1, channels // MTCRL_MODULES)

    def module() -> nn.Module:
        if maps:
            return nn.Sequential(
                nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )
        return nn.Sequential(nn.Linear(channels, width), nn.ReLU())

    modules = [module() for _ in range(MTCRL_MODULES)]
    heads = task_heads(tasks, MTCRL_MODULES * width, maps, input_shape)
    return MTCRL(backbone, modules, heads)
