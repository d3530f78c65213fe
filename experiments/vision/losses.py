"""Per-task training losses of the dense benchmarks (as in MTAN / LibMTL).

- segmentation: cross-entropy over labelled pixels (label ``-1`` ignored);
- depth: ``sum_valid |d_hat - d| / #valid`` with valid ``d > 0``;
- normal: ``1 - <n_hat, n>`` averaged over valid pixels (truth not all-zero), ``n_hat`` unit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def segmentation_loss(prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
    return F.cross_entropy(prediction.float(), batch["segmentation"], ignore_index=-1)


def depth_loss(prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
    target = batch["depth"]
    valid = (target > 0).to(prediction.dtype)
    return ((prediction - target).abs() * valid).sum() / valid.sum().clamp_min(1.0)


def normal_loss(prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
    target = batch["normal"]
    valid = (target.abs().sum(dim=1) > 0).to(prediction.dtype)
    cosine = (F.normalize(prediction.float(), dim=1) * target).sum(dim=1)
    return ((1.0 - cosine) * valid).sum() / valid.sum().clamp_min(1.0)


TASK_LOSSES: dict[str, Callable[[Tensor, Mapping[str, Tensor]], Tensor]] = {
    "segmentation": segmentation_loss,
    "depth": depth_loss,
    "normal": normal_loss,
}


def task_losses(
    predictions: Mapping[str, Tensor], batch: Mapping[str, Tensor], tasks: list[str]
) -> dict[str, Tensor]:
    return {t: TASK_LOSSES[t](predictions[t], batch) for t in tasks}


def finite_or_raise(losses: Mapping[str, Tensor], step: int) -> None:
    for name, value in losses.items():
        if not torch.isfinite(value).all():
            raise FloatingPointError(f"loss {name!r} is not finite at step {step}")
