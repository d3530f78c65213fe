"""A task as a user states it (name, kind, number of outputs), its loss and its metrics.

Kinds, for a prediction ``yhat`` and the labels ``y = batch[task.target]`` in the convention of
:mod:`coremtl.task_labels` (checked where the data enters, :mod:`coremtl.data_check`):

- ``classification``: ``outputs >= 2`` logits ``(B, outputs)`` against classes ``(B,)``
  (cross-entropy; accuracy), or ``outputs = 1``: one logit against labels in ``{0, 1}`` (binary
  cross-entropy; accuracy at logit 0);
- ``regression``: ``(B, outputs)`` against ``(B, outputs)`` (mean squared error; MSE);
- ``dense``: maps ``(B, outputs, H, W)`` at the input's resolution; against per-pixel classes
  ``(B, H, W)`` (per-pixel cross-entropy; pixel accuracy and the mean intersection over union
  of the classes, mIoU) or against real maps (MSE).

Class labels equal to :data:`~coremtl.task_labels.IGNORE_LABEL` (``-1``) are left out of the loss
and of the accuracy alike: the loss is the mean over the other samples (pixels),
``L = sum_{i valid} l_i / max(1, #valid)``, so a batch with no valid label gives a loss of exactly
0 and no gradient, never NaN. The metrics are torchmetrics' (accumulated over batches), named
``<task>/accuracy``, ``<task>/miou`` (dense classes: ``mean_c TP_c / (TP_c + FP_c + FN_c)`` over
the classes present in the labels or the predictions) or ``<task>/mse``; an accuracy over a split
whose labels are all ignored is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coremtl.task_labels import IGNORE_LABEL, binary_labels, class_labels
from scm.validation import InvalidParameterError, check_positive_int

TASK_KINDS = ("classification", "regression", "dense")
__all__ = ["IGNORE_LABEL", "TASK_KINDS", "Task", "check_tasks", "evaluate", "score", "task_loss"]


@dataclass(frozen=True)
class Task:
    """One task: ``name`` (its head and, unless ``target`` says otherwise, its batch key),
    ``kind`` (one of :data:`TASK_KINDS`) and ``outputs`` (classes, or real outputs)."""

    name: str
    kind: str
    outputs: int
    target: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            raise InvalidParameterError(
                f"task name: expected a non-empty string without '.' (it names a module), "
                f"got {self.name!r}"
            )
        if self.kind not in TASK_KINDS:
            raise InvalidParameterError(
                f"tasks[{self.name!r}].kind: expected one of {TASK_KINDS}, got {self.kind!r}"
            )
        if isinstance(self.outputs, bool) or not isinstance(self.outputs, int) or self.outputs < 1:
            raise InvalidParameterError(
                f"tasks[{self.name!r}].outputs: expected a positive integer, got {self.outputs!r}"
            )
        if self.target is not None and (not isinstance(self.target, str) or not self.target):
            raise InvalidParameterError(
                f"tasks[{self.name!r}].target: expected a batch key (a non-empty string) or "
                f"None, got {self.target!r}"
            )

    @property
    def key(self) -> str:
        """The batch entry holding this task's labels."""
        return self.target or self.name


def check_tasks(tasks: Sequence[Task]) -> tuple[Task, ...]:
    """The tasks as a tuple; an error unless they are :class:`Task` objects with distinct names."""
    if isinstance(tasks, Task):
        tasks = (tasks,)
    if not isinstance(tasks, Sequence) or isinstance(tasks, str):
        raise InvalidParameterError(
            f"tasks: expected a non-empty list of Task, got {type(tasks).__name__}"
        )
    tasks = tuple(tasks)
    if not tasks or not all(isinstance(task, Task) for task in tasks):
        raise InvalidParameterError(f"tasks: expected a non-empty list of Task, got {tasks!r}")
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"tasks: expected distinct names, got {names}")
    return tasks


def _mean_over_valid(losses: Tensor, valid: Tensor) -> Tensor:
    """``sum_{i valid} l_i / max(1, #valid)``: 0 with no gradient when nothing is valid."""
    return (losses * valid).sum() / valid.sum().clamp_min(1)


def task_loss(task: Task):
    """``loss(prediction, batch) -> scalar`` for ``task`` (the trainer's per-task loss)."""

    def loss(prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        target = batch[task.key]
        prediction = prediction.float()
        if binary_labels(task):
            valid = target != IGNORE_LABEL
            losses = F.binary_cross_entropy_with_logits(
                prediction[:, 0], target.clamp_min(0).float(), reduction="none"
            )
            return _mean_over_valid(losses, valid)
        if class_labels(task, target):
            target = target.long()
            losses = F.cross_entropy(
                prediction, target, ignore_index=IGNORE_LABEL, reduction="none"
            )
            return _mean_over_valid(losses, target != IGNORE_LABEL)
        return F.mse_loss(prediction, target.float().reshape(prediction.shape))

    return loss


def _metric(task: Task, classes: bool) -> tuple[str, nn.Module]:
    from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy
    from torchmetrics.regression import MeanSquaredError

    if binary_labels(task):
        return "accuracy", BinaryAccuracy(threshold=0.5, ignore_index=IGNORE_LABEL)
    if classes:
        return "accuracy", MulticlassAccuracy(
            task.outputs, average="micro", ignore_index=IGNORE_LABEL
        )
    return "mse", MeanSquaredError()


def batches(data, batch_size: int) -> Iterator[Mapping[str, Tensor]]:
    """Consecutive batches of a mapping of equally long tensors or of a dataset of dicts."""
    if isinstance(data, Mapping):
        size = len(next(iter(data.values())))
        for start in range(0, size, batch_size):
            yield {key: value[start : start + batch_size] for key, value in data.items()}
        return
    yield from torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)


def evaluate(
    model: nn.Module,
    data,
    tasks: Sequence[Task],
    batch_size: int = 256,
    input_key: str = "x",
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """``{<task>/<metric>: value}`` of ``model`` (in eval mode) over the whole of ``data``,
    checked as training data is (:func:`coremtl.data_check.check_data`)."""
    from coremtl.data_check import check_data
    from coremtl.devices import check_device

    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model: expected an nn.Module, got {type(model).__name__}")
    tasks = check_tasks(tasks)
    check_positive_int(batch_size, "batch_size")
    check_device(device, "device", available=True)
    return score(
        model, check_data(data, tasks, "data", input_key), tasks, batch_size, input_key, device
    )


def _first_predictions(
    model: nn.Module, inputs: Tensor, tasks: Sequence[Task], input_key: str
) -> Mapping[str, Tensor]:
    """The model's predictions on the first batch, with one line when the model cannot take the
    inputs or does not predict every task."""
    try:
        forward = model(inputs)
    except (RuntimeError, TypeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidParameterError(
            f"data[{input_key!r}]: the model cannot take inputs of shape "
            f"{tuple(inputs.shape)} ({first})"
        ) from None
    predictions = getattr(forward, "predictions", None)
    if not isinstance(predictions, Mapping):
        raise InvalidParameterError(
            f"model: expected a model returning coremtl.forward.Forward, got "
            f"{type(forward).__name__}"
        )
    missing = [task.name for task in tasks if task.name not in predictions]
    if missing:
        raise InvalidParameterError(
            f"tasks: the model predicts {sorted(predictions)}, not {missing}"
        )
    return predictions


@torch.no_grad()
def score(
    model: nn.Module,
    data,
    tasks: Sequence[Task],
    batch_size: int = 256,
    input_key: str = "x",
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """:func:`evaluate` on data already checked (:func:`coremtl.data_check.check_data`)."""
    was_training = model.training
    model.eval()
    metrics: dict[str, tuple[str, nn.Module, Tensor]] = {}
    overlaps: dict[str, nn.Module] = {}
    try:
        for index, batch in enumerate(batches(data, batch_size)):
            inputs = batch[input_key].to(device)
            if index == 0:
                predictions = _first_predictions(model, inputs, tasks, input_key)
            else:
                predictions = model(inputs).predictions
            for task in tasks:
                target = batch[task.key].to(device)
                if task.name not in metrics:
                    name, metric = _metric(task, class_labels(task, target))
                    metrics[task.name] = (name, metric.to(device), torch.zeros((), device=device))
                name, metric, counted = metrics[task.name]
                prediction = predictions[task.name].float()
                if name == "accuracy":
                    counted += (target != IGNORE_LABEL).sum()
                if name == "accuracy" and task.kind == "dense":
                    if task.name not in overlaps:
                        overlaps[task.name] = _overlap(task).to(device)
                    overlaps[task.name].update(prediction, target)
                if name == "accuracy" and task.outputs == 1:
                    metric.update(torch.sigmoid(prediction[:, 0]), target)
                elif name == "accuracy":
                    metric.update(prediction, target)
                else:
                    metric.update(prediction, target.float().reshape(prediction.shape))
    finally:
        model.train(was_training)
    scores = {
        f"{task}/{name}": float(metric.compute()) if name != "accuracy" or counted else math.nan
        for task, (name, metric, counted) in metrics.items()
    }
    for task, metric in overlaps.items():
        scores[f"{task}/miou"] = float(metric.compute()) if metrics[task][2] else math.nan
    return scores


def _overlap(task: Task) -> nn.Module:
    """The mIoU of a dense classification task, ignoring :data:`IGNORE_LABEL` pixels and the
    classes absent from both labels and predictions."""
    from torchmetrics.classification import MulticlassJaccardIndex

    return MulticlassJaccardIndex(task.outputs, average="macro", ignore_index=IGNORE_LABEL)
