"""Fitting the library's layers to a user's backbone (for :mod:`coremtl.preset`).

- :func:`feature_shape`: what the backbone produces on an example batch (vectors ``(B, C)`` or
  maps ``(B, C, h, w)``), probed in eval mode without gradients;
- :func:`grounding_decoder`: the grounding decoder of the streams, soft (:func:`soft_decoder`:
  :class:`coremtl.grounding.ConvDecoder` with its upsampling stages computed from the input and
  feature sizes for maps, an :class:`coremtl.grounding.MLPDecoder` reshaped to the input for
  vectors) or hard (:func:`coremtl.hard_grounding.hard_decoder`: the Lambertian renderer, its
  normals from the surface-normal task's head when there is one);
- :func:`library_heads`: the library's task heads (:mod:`coremtl.heads`) as a heads factory,
  ``width -> heads``, the default of every builder below;
- :func:`mtan_on`: MTAN over the stages of an ``nn.Sequential`` backbone, the stage widths probed;
- :func:`mtcrl_on`: MT-CRL's disentangled modules on the backbone features (:func:`mtcrl_modules`).

What cannot be fitted is refused in one line naming the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from coremtl.architectures.mtcrl import MTCRLOptions
from coremtl.heads import task_heads
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

GROUNDINGS = ("soft", "hard", "none")
HeadsFactory = Callable[[int], nn.Module]
"""Builds the task heads on features of the given number of channels."""


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


def library_heads(tasks: Sequence[Task], maps: bool, input_shape: Sequence[int]) -> HeadsFactory:
    """The library's heads of ``tasks`` (:func:`coremtl.heads.task_heads`) as a heads factory."""

    def make(width: int) -> nn.Module:
        return task_heads(tasks, width, maps, input_shape)

    return make


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


def grounding_decoder(
    grounding: str,
    tasks: Sequence[Task],
    heads: nn.ModuleDict,
    semantic: int,
    residual: int,
    maps: bool,
    size: Sequence[int],
    example: Tensor,
) -> nn.Module | None:
    """The decoder of ``grounding`` (one of :data:`GROUNDINGS`; ``None`` for ``"none"``) from
    streams of the given widths (maps of spatial ``size``, or vectors) to inputs like
    ``example``; hard grounding shares the normal task's head among ``heads``."""
    from coremtl.hard_grounding import hard_decoder

    if grounding not in GROUNDINGS:
        raise InvalidParameterError(f"grounding: expected one of {GROUNDINGS}, got {grounding!r}")
    input_shape = tuple(example.shape[1:])
    if grounding == "hard":
        return hard_decoder(tasks, heads, semantic, residual, maps, input_shape, example)
    return soft_decoder(grounding, semantic, residual, maps, size, input_shape)


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

    if grounding not in ("soft", "none"):
        raise InvalidParameterError(f"grounding: expected 'soft' or 'none' here, got {grounding!r}")
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
    backbone: nn.Module,
    tasks: Sequence[Task],
    example: Tensor,
    input_shape: Sequence[int],
    make_heads: HeadsFactory | None = None,
) -> nn.Module:
    """MTAN over the stages of ``backbone``; each stage's ``u_j`` and ``p_j`` probed on ``example``
    to size the attention and choose its mode (maps where both are maps, vectors otherwise). The
    heads are ``make_heads(width)`` (default: :func:`coremtl.heads.task_heads` of ``tasks``)."""
    from coremtl.architectures.mtan import MTAN, split_stage

    stages = list(backbone) if isinstance(backbone, nn.Sequential) else []
    if not stages or not all(isinstance(s, nn.Sequential) and len(s) >= 2 for s in stages):
        raise InvalidParameterError(
            "backbone: MTAN attends over stages; expected an nn.Sequential whose children are "
            "nn.Sequential stages of at least two modules each"
        )
    channels, modes, current = [], [], example[:2]
    for index, stage in enumerate(stages):
        body, block = split_stage(stage)
        previous = current
        u = probe(body, current)
        current = probe(block, u)
        shapes = [tuple(t.shape) for t in (previous, u, current)]
        if u.ndim not in (2, 4) or current.ndim not in (2, 4):
            raise InvalidParameterError(
                f"backbone: MTAN stage {index} gives {shapes[1]} then {shapes[2]}; its attention "
                "needs vectors (B, C) or maps (B, C, h, w)"
            )
        if (index > 0 and previous.ndim == 2 and u.ndim == 4) or (u.ndim, current.ndim) == (2, 4):
            raise InvalidParameterError(
                f"backbone: MTAN stage {index} turns vectors into maps ({' -> '.join(map(str, shapes))}); "
                "attention masks of vectors cannot follow it"
            )
        channels.append((u.shape[1], current.shape[1]))
        modes.append(u.ndim == 4 and current.ndim == 4)
    maps = current.ndim == 4
    heads = (make_heads or library_heads(tasks, maps, input_shape))(current.shape[1])
    return MTAN(stages, channels, heads, maps=modes)


def mtcrl_width(channels: int, options: MTCRLOptions) -> int:
    """The channels of each MT-CRL module: ``options.width``, or ``max(1, channels // modules)``."""
    return options.width or max(1, channels // options.modules)


def mtcrl_modules(
    channels: int, maps: bool, count: int, width: int | None = None
) -> list[nn.Module]:
    """``count`` modules of ``width`` channels each (default ``max(1, channels // count)``) on
    ``channels`` features: 3x3 convolution, batch norm, ReLU on maps; linear and ReLU on vectors."""
    width = width or max(1, channels // count)

    def module() -> nn.Module:
        if maps:
            return nn.Sequential(
                nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )
        return nn.Sequential(nn.Linear(channels, width), nn.ReLU())

    return [module() for _ in range(count)]


def mtcrl_on(
    backbone: nn.Module,
    tasks: Sequence[Task],
    channels: int,
    maps: bool,
    input_shape: Sequence[int],
    options: MTCRLOptions | None = None,
    make_heads: HeadsFactory | None = None,
) -> nn.Module:
    """MT-CRL with ``options.modules`` modules (:func:`mtcrl_modules`) on the backbone features,
    its routing and gates as ``options`` say (default :class:`MTCRLOptions`); heads as in
    :func:`mtan_on`."""
    from coremtl.architectures.mtcrl import MTCRL

    options = options or MTCRLOptions()
    width = mtcrl_width(channels, options)
    modules = mtcrl_modules(channels, maps, options.modules, width)
    heads = (make_heads or library_heads(tasks, maps, input_shape))(options.modules * width)
    return MTCRL(backbone, modules, heads, routing=options.routing, gates=options.gates)
