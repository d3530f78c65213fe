"""The batch's task labels as one matrix, for partialling them out of the streams (S13).

:func:`label_matrix` turns each task's labels into per-sample columns by its kind
(:mod:`coremtl.tasks`):

- ``classification`` with ``outputs >= 2``: the one-hot code of the class (``outputs`` columns);
  with ``outputs = 1``: the label in ``{0, 1}`` (one column);
- ``regression``: the values (``outputs`` columns);
- ``dense`` with integer maps ``(B, H, W)``: the per-image class histogram, the fraction of the
  labelled pixels (label ``-1`` ignored) in each of the ``outputs`` classes;
- ``dense`` with real maps ``(B, outputs, H, W)`` (or ``(B, H, W)`` for one output): the per-image
  mean of each output.

For a discrete label the one-hot code makes "partialled out linearly" exact: the conditional mean
of any feature given the class is linear in it. The columns are float64; collinear ones (a one-hot
code, histograms summing to one) are left to the rank-revealing step of
:func:`coremtl.cka.label_complement`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from coremtl.tasks import IGNORE_LABEL, Task
from scm.validation import InvalidParameterError


def _classes(values: Tensor, task: Task, ignore: bool) -> Tensor:
    labels = values.long()
    if values.is_floating_point() and not bool((labels == values).all()):
        raise InvalidParameterError(
            f"batch[{task.key!r}]: expected integer class labels for task {task.name!r}"
        )
    valid = labels != IGNORE_LABEL if ignore else torch.ones_like(labels, dtype=torch.bool)
    chosen = labels[valid]
    if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= task.outputs):
        raise InvalidParameterError(
            f"batch[{task.key!r}]: expected classes in 0..{task.outputs - 1} for task "
            f"{task.name!r}, got {int(chosen.min())}..{int(chosen.max())}"
        )
    return F.one_hot(torch.where(valid, labels, 0), task.outputs).to(torch.float64) * valid[
        ..., None
    ].to(torch.float64)


def _columns(values: Tensor, task: Task, batch_size: int) -> Tensor:
    shape = tuple(values.shape)
    if shape[:1] != (batch_size,):
        raise InvalidParameterError(
            f"batch[{task.key!r}]: expected {batch_size} labels for task {task.name!r}, got "
            f"shape {shape}"
        )
    if task.kind == "classification":
        if task.outputs == 1:
            return values.reshape(batch_size, 1).to(torch.float64)
        return _classes(values.reshape(batch_size), task, ignore=False)
    if task.kind == "regression":
        return values.reshape(batch_size, task.outputs).to(torch.float64)
    if values.ndim == 3 and not values.is_floating_point():
        counts = _classes(values, task, ignore=True).sum(dim=(1, 2))
        return counts / counts.sum(dim=1, keepdim=True).clamp(min=1.0)
    maps = values[:, None] if values.ndim == 3 else values
    if maps.ndim != 4 or maps.shape[1] != task.outputs:
        raise InvalidParameterError(
            f"batch[{task.key!r}]: expected dense labels (B, H, W) of classes or maps "
            f"(B, {task.outputs}, H, W) for task {task.name!r}, got shape {shape}"
        )
    return maps.to(torch.float64).mean(dim=(2, 3))


def label_columns(tasks: Sequence[Task]) -> int:
    """How many columns :func:`label_matrix` gives ``tasks`` (``outputs`` each, one for a binary
    classification): a bound on the rank partialled out, so a batch needs this many plus 4."""
    return sum(
        1 if task.kind == "classification" and task.outputs == 1 else task.outputs for task in tasks
    )


def label_matrix(batch: Mapping[str, Tensor], tasks: Sequence[Task]) -> Tensor:
    """The ``(B, L)`` float64 matrix of the labels of ``tasks`` in ``batch`` (module docstring)."""
    if not tasks:
        raise InvalidParameterError(
            "label_tasks: the conditional independence penalty needs the tasks whose labels it "
            "partials out; got none"
        )
    blocks = []
    batch_size = None
    for task in tasks:
        if task.key not in batch:
            raise InvalidParameterError(
                f"batch: expected the labels of task {task.name!r} under {task.key!r}, got keys "
                f"{sorted(batch)}"
            )
        values = batch[task.key]
        batch_size = values.shape[0] if batch_size is None else batch_size
        blocks.append(_columns(values, task, batch_size))
    return torch.cat(blocks, dim=1)
