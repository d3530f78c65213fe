"""Task heads that adapt to what they read: vectors ``(B, C)`` or feature maps ``(B, C, h, w)``.

- :class:`PooledHead` (classification, regression): ``yhat = W pool(Z) + b`` with ``pool`` the
  global average over positions for maps and the identity for vectors;
- :class:`DenseHead` (dense tasks, maps only): ``conv1x1(ReLU(conv3x3(Z)))``, resized bilinearly
  from ``h x w`` to the input's ``H x W``.

:func:`task_head` picks one for a :class:`coremtl.tasks.Task`; a dense task on vector features is
refused with one line, since a vector carries no layout to predict a map from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from coremtl.tasks import Task
from scm.validation import InvalidParameterError


class PooledHead(nn.Module):
    """``Linear(in_channels, outputs)`` on vectors, or on maps averaged over positions."""

    def __init__(self, in_channels: int, outputs: int):
        super().__init__()
        self.linear = nn.Linear(in_channels, outputs)

    def forward(self, features: Tensor) -> Tensor:
        pooled = features.flatten(2).mean(dim=2) if features.ndim > 2 else features
        return self.linear(pooled)


class DenseHead(nn.Module):
    """``conv1x1(ReLU(conv3x3(Z)))`` upsampled bilinearly to ``output_size`` (H, W)."""

    def __init__(
        self, in_channels: int, outputs: int, output_size: Sequence[int], hidden: int = 32
    ):
        super().__init__()
        self.output_size = tuple(output_size)
        self.network = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, outputs, kernel_size=1),
        )

    def forward(self, features: Tensor) -> Tensor:
        out = self.network(features)
        if tuple(out.shape[-2:]) == self.output_size:
            return out
        return F.interpolate(out, size=self.output_size, mode="bilinear", align_corners=False)


def task_head(task: Task, in_channels: int, maps: bool, input_shape: Sequence[int]) -> nn.Module:
    """The head of ``task`` on ``in_channels`` features (maps or vectors) of inputs whose
    per-sample shape is ``input_shape`` (``(C, H, W)`` for images)."""
    if task.kind != "dense":
        return PooledHead(in_channels, task.outputs)
    if not maps:
        raise InvalidParameterError(
            f"tasks[{task.name!r}]: a dense task needs a backbone producing feature maps "
            f"(B, C, h, w); this backbone produces vectors (B, {in_channels})"
        )
    if len(input_shape) != 3:
        raise InvalidParameterError(
            f"tasks[{task.name!r}]: a dense task needs image inputs (B, C, H, W), got inputs of "
            f"per-sample shape {tuple(input_shape)}"
        )
    return DenseHead(in_channels, task.outputs, input_shape[1:])


def task_heads(
    tasks: Sequence[Task], in_channels: int, maps: bool, input_shape: Sequence[int]
) -> nn.ModuleDict:
    """One :func:`task_head` per task, keyed by name."""
    heads: Mapping[str, nn.Module] = {
        task.name: task_head(task, in_channels, maps, input_shape) for task in tasks
    }
    return nn.ModuleDict(dict(heads))
