"""A task as a user states it (name, kind, number of outputs), its loss and its metrics.

Kinds and what they mean for a prediction ``yhat`` and the batch entry ``y = batch[task.target]``:

- ``classification``: ``outputs >= 2`` logits ``(B, outputs)`` against integer labels ``(B,)``
  (cross-entropy; accuracy), or ``outputs = 1``: one logit against labels in ``{0, 1}`` (binary
  cross-entropy; accuracy at logit 0);
- ``regression``: ``(B, outputs)`` against ``(B, outputs)`` or, for one output, ``(B,)`` (mean
  squared error; MSE);
- ``dense``: maps ``(B, outputs, H, W)`` at the input's resolution; against integer labels
  ``(B, H, W)`` (per-pixel cross-entropy, pixels labelled ``-1`` ignored; pixel accuracy) or
  against real maps ``(B, outputs, H, W)`` (``(B, H, W)`` for one output; MSE).

The metrics are torchmetrics' (accumulated over batches), named ``<task>/accuracy`` or
``<task>/mse``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scm.validation import InvalidParameterError

TASK_KINDS = ("classification", "regression", "dense")
IGNORE_LABEL = -1


@dataclass(frozen=True)
class Task:
    """One task: ``name`` (its head and, unless ``target`` says otherwise, its batch key),
    ``kind`` (one of :data:`TASK_KINDS`) and ``outputs`` (classes, or real outputs)."""

    name: str
    kind: str
    outputs: int
    target: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidParameterError(
                f"task name: expected a non-empty string, got {self.name!r}"
            )
        if self.kind not in TASK_KINDS:
            raise InvalidParameterError(
                f"tasks[{self.name!r}].kind: expected one of {TASK_KINDS}, got {self.kind!r}"
            )
        if isinstance(self.outputs, bool) or not isinstance(self.outputs, int) or self.outputs < 1:
            raise InvalidParameterError(
                f"tasks[{self.name!r}].outputs: expected a positive integer, got {self.outputs!r}"
            )

    @property
    def key(self) -> str:
        """The batch entry holding this task's labels."""
        return self.target or self.name


def check_tasks(tasks: Sequence[Task]) -> tuple[Task, ...]:
    """The tasks as a tuple; an error unless they are :class:`Task` objects with distinct names."""
    tasks = tuple(tasks)
    if not tasks or not all(isinstance(task, Task) for task in tasks):
        raise InvalidParameterError(f"tasks: expected a non-empty list of Task, got {tasks!r}")
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"tasks: expected distinct names, got {names}")
    return tasks


def task_loss(task: Task):
    """``loss(prediction, batch) -> scalar`` for ``task`` (the trainer's per-task loss)."""

    def loss(prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        target = batch[task.key]
        prediction = prediction.float()
        if task.kind == "classification":
            if task.outputs == 1:
                return F.binary_cross_entropy_with_logits(prediction[:, 0], target.float())
            return F.cross_entropy(prediction, target.long())
        if task.kind == "dense" and not target.is_floating_point():
            return F.cross_entropy(prediction, target.long(), ignore_index=IGNORE_LABEL)
        return F.mse_loss(prediction, target.float().reshape(prediction.shape))

    return loss


def _metric(task: Task, dense_labels: bool) -> tuple[str, nn.Module]:
    from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy
    from torchmetrics.regression import MeanSquaredError

    if task.kind == "classification" and task.outputs == 1:
        return "accuracy", BinaryAccuracy(threshold=0.5)
    if task.kind == "classification" or dense_labels:
        classes = max(task.outputs, 2)
        return "accuracy", MulticlassAccuracy(classes, average="micro", ignore_index=IGNORE_LABEL)
    return "mse", MeanSquaredError()


def batches(data, batch_size: int) -> Iterator[Mapping[str, Tensor]]:
    """Consecutive batches of a mapping of equally long tensors or of a dataset of dicts."""
    if isinstance(data, Mapping):
        size = len(next(iter(data.values())))
        for start in range(0, size, batch_size):
            yield {key: value[start : start + batch_size] for key, value in data.items()}
        return
    yield from torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data,
    tasks: Sequence[Task],
    batch_size: int = 256,
    input_key: str = "x",
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """``{<task>/<metric>: value}`` of ``model`` (in eval mode) over the whole of ``data``."""
    was_training = model.training
    model.eval()
    metrics: dict[str, tuple[str, nn.Module]] = {}
    for batch in batches(data, batch_size):
        predictions = model(batch[input_key].to(device)).predictions
        for task in tasks:
            target = batch[task.key].to(device)
            if task.name not in metrics:
                name, metric = _metric(
                    task, task.kind == "dense" and not target.is_floating_point()
                )
                metrics[task.name] = (name, metric.to(device))
            name, metric = metrics[task.name]
            prediction = predictions[task.name].float()
            if name == "accuracy" and task.outputs == 1:
                metric.update(torch.sigmoid(prediction[:, 0]), target.long())
            elif name == "accuracy":
                metric.update(prediction, target.long())
            else:
                metric.update(prediction, target.float().reshape(prediction.shape))
    model.train(was_training)
    return {f"{task}/{name}": float(metric.compute()) for task, (name, metric) in metrics.items()}
