"""Per-task training losses of the dense benchmarks (as in MTAN / LibMTL) and of CelebA.

- segmentation: cross-entropy over labelled pixels (label ``-1`` ignored);
- depth: ``sum_valid |d_hat - d| / #valid`` with valid ``d > 0``;
- normal: ``1 - <n_hat, n>`` averaged over valid pixels (truth not all-zero), ``n_hat`` unit;
- a CelebA attribute (:mod:`.attributes`): binary cross-entropy with logits,
  ``mean_i [softplus(y_hat_i) - y_i y_hat_i]`` for the labels ``y_i`` in ``{0, 1}`` of
  ``batch[<attribute name>]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch.nn.functional as F
from torch import Tensor

from scm.validation import InvalidParameterError

from .attributes import is_attribute_task


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


def attribute_loss(prediction: Tensor, batch: Mapping[str, Tensor], attribute: str) -> Tensor:
    """Binary cross-entropy of logits ``prediction (B,)`` against ``batch[attribute] (B,)``."""
    target = batch.get(attribute)
    if target is None or target.shape != prediction.shape:
        shape = None if target is None else tuple(target.shape)
        raise InvalidParameterError(
            f"batch[{attribute!r}]: expected labels of shape {tuple(prediction.shape)} (one per "
            f"sample), got {shape}"
        )
    return F.binary_cross_entropy_with_logits(prediction.float(), target.float())


def task_losses(
    predictions: Mapping[str, Tensor], batch: Mapping[str, Tensor], tasks: list[str]
) -> dict[str, Tensor]:
    losses = {}
    for task in tasks:
        if is_attribute_task(task):
            losses[task] = attribute_loss(predictions[task], batch, task)
        elif task in TASK_LOSSES:
            losses[task] = TASK_LOSSES[task](predictions[task], batch)
        else:
            raise InvalidParameterError(
                f"tasks: unknown task {task!r}; expected one of {list(TASK_LOSSES)} or a CelebA "
                "attribute"
            )
    return losses
