r"""MTAN: Multi-Task Attention Network (Liu, Johns & Davison, CVPR 2019, Section 3).

The shared network is a sequence of stages; stage ``j`` is split into a body and an output block,
``u_j = body_j(p_{j-1})`` and ``p_j = block_j(u_j)`` (``p_0 = x``). Each task ``t`` owns a soft
attention module per stage that selects features of the shared network:

    a_1^t = g_1^t(u_1),     a_j^t = g_j^t([u_j ; f_{j-1}(ahat_{j-1}^t)])   (j > 1),
    ahat_j^t = a_j^t * p_j,                                              (element-wise)
    yhat_t = head_t(ahat_L^t),

with ``g_j^t`` two 1x1 convolutions (BN, ReLU, then BN, sigmoid), so every mask ``a_j^t`` lies in
``(0, 1)``, and ``f_j`` a 3x3 convolution (BN, ReLU) followed by max pooling to the resolution of
``u_{j+1}``, shared by the tasks as in the authors' implementation. For vector stages (MLP
trunks) the 1x1 and 3x3 convolutions become linear layers and there is no pooling.

Stages of any shape. The paper's stages keep the resolution between ``u_j`` and ``p_j``; a user's
stage may not (its last module a pooling layer, a strided convolution, a global pool or a flatten).
Each stage's attention therefore works in the mode its shapes allow (``maps[j]``):

- ``u_j`` and ``p_j`` both maps: convolutional ``g_j^t``, its mask computed at the resolution of
  ``u_j`` and brought to that of ``p_j`` (max pooling down, bilinear up: values stay in ``(0, 1)``);
- ``p_j`` a vector (``u_j`` a map or a vector): linear ``g_j^t`` on the spatial mean of its inputs,
  a mask of ``p_j``'s width; the transfer ``f_j`` into such a stage pools its input likewise.

A stage that turns vectors back into maps is refused by :func:`coremtl.backbones.mtan_on`.

``Forward.shared`` is the concatenation of every ``u_j`` and ``p_j`` (each flattened per sample);
the attention branches read their inputs from views of it, so all dependence of the task losses on
the shared stages passes through this one tensor, as gradient aggregators require. It costs one
copy of the stage features. ``Forward.extras`` holds the masks ``a_j^t``
(``"attention/<task>/<j>"``), the last shared stage output ``p_L`` (``"features"``, what a probe
of the shared representation reads) and each task's attended features ``ahat_L^t``
(``"attended/<task>"``, what its head reads). The shared parameters are those of the stages; the
attention modules, ``f_j`` and heads are task-side.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coremtl.architectures.shared_bottom import as_heads
from coremtl.forward import Forward
from scm.validation import InvalidParameterError


def split_stage(stage: nn.Sequential) -> tuple[nn.Module, nn.Module]:
    """``(stage[:-1], stage[-1])``: the body giving ``u_j`` and the block giving ``p_j``."""
    if not isinstance(stage, nn.Sequential) or len(stage) < 2:
        raise InvalidParameterError("stage: expected an nn.Sequential with at least two modules")
    return stage[:-1], stage[-1]


def attention_module(
    in_channels: int, mid_channels: int, out_channels: int, maps: bool
) -> nn.Module:
    """``g``: (1x1 conv, BN, ReLU, 1x1 conv, BN, sigmoid), or its linear analogue for vectors."""
    if maps:
        return nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=1),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(),
            nn.Conv2d(mid_channels, out_channels, kernel_size=1),
            nn.BatchNorm2d(out_channels),
            nn.Sigmoid(),
        )
    return nn.Sequential(
        nn.Linear(in_channels, mid_channels),
        nn.ReLU(),
        nn.Linear(mid_channels, out_channels),
        nn.Sigmoid(),
    )


def transfer_module(in_channels: int, out_channels: int, maps: bool) -> nn.Module:
    """``f``: (3x3 conv, BN, ReLU), or (linear, ReLU) for vectors."""
    if maps:
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )
    return nn.Sequential(nn.Linear(in_channels, out_channels), nn.ReLU())


def match_resolution(features: Tensor, reference: Tensor) -> Tensor:
    """Max-pool (or, when the reference is larger, bilinearly resize) maps to ``reference``'s size."""
    if features.ndim != 4 or features.shape[-2:] == reference.shape[-2:]:
        return features
    height, width = reference.shape[-2:]
    if features.shape[-2] >= height and features.shape[-1] >= width:
        return F.adaptive_max_pool2d(features, (height, width))
    return F.interpolate(features, size=(height, width), mode="bilinear", align_corners=False)


def spatial_mean(features: Tensor) -> Tensor:
    """Vectors unchanged; maps ``(B, C, H, W)`` averaged over positions to ``(B, C)``."""
    return features.flatten(2).mean(dim=2) if features.ndim > 2 else features


class MTAN(nn.Module):
    """Shared ``stages`` with task-specific soft attention over each stage (Liu et al., 2019).

    ``stages[j]`` is an ``nn.Sequential`` split by :func:`split_stage`; ``stage_channels[j]`` is
    ``(channels of u_j, channels of p_j)`` (feature sizes for vectors); ``maps`` (one flag, or one
    per stage) selects convolutional attention for stages whose ``u_j`` and ``p_j`` are both
    ``(B, C, H, W)`` maps, linear attention on spatial means otherwise (module docstring).
    ``heads[t]`` takes ``ahat_L^t``.
    """

    def __init__(
        self,
        stages: Sequence[nn.Sequential],
        stage_channels: Sequence[tuple[int, int]],
        heads: Mapping[str, nn.Module],
        maps: bool | Sequence[bool] = False,
    ) -> None:
        super().__init__()
        if not stages or len(stages) != len(stage_channels):
            raise InvalidParameterError(
                f"stage_channels: expected one (u, p) pair per stage ({len(stages)}), "
                f"got {len(stage_channels)}"
            )
        for pair in stage_channels:
            if len(pair) != 2 or not all(isinstance(c, int) and c >= 1 for c in pair):
                raise InvalidParameterError(
                    f"stage_channels: expected pairs of positive integers, got {pair!r}"
                )
        modes = [bool(maps)] * len(stages) if isinstance(maps, bool) else list(maps)
        if len(modes) != len(stages):
            raise InvalidParameterError(
                f"maps: expected one flag per stage ({len(stages)}), got {len(modes)}"
            )
        self.heads = as_heads(heads)
        self.maps = modes
        self.stage_channels = [tuple(pair) for pair in stage_channels]
        self.stages = nn.ModuleList(stages)
        for stage in stages:
            split_stage(stage)
        self.attention = nn.ModuleDict(
            {
                task: nn.ModuleList(
                    attention_module(u if j == 0 else 2 * u, u, p, modes[j])
                    for j, (u, p) in enumerate(self.stage_channels)
                )
                for task in self.heads
            }
        )
        self.transfer = nn.ModuleList(
            transfer_module(p, u_next, modes[j + 1])
            for j, ((_, p), (u_next, _)) in enumerate(
                zip(self.stage_channels[:-1], self.stage_channels[1:], strict=True)
            )
        )

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.stages.parameters()

    def _mask(self, j: int, module: nn.Module, u: Tensor, p: Tensor, attended: Tensor | None):
        """``a_j^t`` from ``u_j`` and the previous attended features, shaped like ``p_j``."""
        if not self.maps[j]:
            inputs = spatial_mean(u)
            if attended is not None:
                transferred = self.transfer[j - 1](spatial_mean(attended))
                inputs = torch.cat([inputs, transferred], dim=1)
            return module(inputs)
        inputs = u
        if attended is not None:
            transferred = match_resolution(self.transfer[j - 1](attended), u)
            inputs = torch.cat([u, transferred], dim=1)
        return match_resolution(module(inputs), p)

    def forward(self, x: Tensor) -> Forward:
        features: list[Tensor] = []
        current = x
        for stage in self.stages:
            body, block = split_stage(stage)
            u = body(current)
            current = block(u)
            features.extend([u, current])
        shared = torch.cat([f.flatten(1) for f in features], dim=1)
        pieces = shared.split([math.prod(f.shape[1:]) for f in features], dim=1)
        views = [piece.view(f.shape) for piece, f in zip(pieces, features, strict=True)]
        predictions: dict[str, Tensor] = {}
        extras: dict[str, Tensor] = {"features": views[-1]}
        for task, modules in self.attention.items():
            attended: Tensor | None = None
            for j, module in enumerate(modules):
                u, p = views[2 * j], views[2 * j + 1]
                mask = self._mask(j, module, u, p, attended)
                extras[f"attention/{task}/{j}"] = mask
                attended = mask * p
            extras[f"attended/{task}"] = attended
            predictions[task] = self.heads[task](attended)
        return Forward(predictions=predictions, shared=shared, extras=extras)
