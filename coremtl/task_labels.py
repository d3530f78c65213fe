"""The one label convention of each task kind, checked once where data enters, read by the task
losses and the metrics alike (:mod:`coremtl.tasks`).

For a batch of ``B`` inputs (``H x W`` images for dense tasks) the labels of a task with
``outputs`` outputs are:

- ``classification``, ``outputs >= 2``: classes ``(B,)`` in ``[0, outputs)``;
- ``classification``, ``outputs = 1`` (binary, one logit): ``(B,)`` in ``{0, 1}``;
- ``regression``: real values ``(B, outputs)`` (``(B,)`` also for one output);
- ``dense``, ``outputs >= 2``: per-pixel classes ``(B, H, W)`` in ``[0, outputs)``, or real maps
  ``(B, outputs, H, W)``; ``dense``, ``outputs = 1``: a real map ``(B, H, W)`` or
  ``(B, 1, H, W)``.

Class labels may also be :data:`IGNORE_LABEL` (``-1``): that sample or pixel is left out of the
loss and of the accuracy. Class labels are returned as ``int64``: integer and boolean tensors as
they are, floating-point ones only when every value is a whole number (never truncated). Real
labels are returned as finite ``float32``, regression labels as ``(B, outputs)``. Anything else is
refused in one line naming where the labels came from, the task and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scm.validation import InvalidParameterError

IGNORE_LABEL = -1


def _describe(task) -> str:
    return f"task {task.name!r} ({task.kind}, {task.outputs} output{'s' * (task.outputs != 1)})"


def _classes(labels: Tensor, task, where: str, high: int) -> Tensor:
    """``labels`` as int64 classes in ``[0, high)`` or :data:`IGNORE_LABEL`, or raise."""
    expected = f"integer classes in [0, {high}) or {IGNORE_LABEL} (ignored)"
    if binary_labels(task):
        expected = f"binary labels 0 or 1, or {IGNORE_LABEL} (ignored)"
    if labels.is_complex():
        raise InvalidParameterError(f"{where}: {_describe(task)} expects {expected}, got complex")
    if labels.is_floating_point():
        whole = torch.isfinite(labels) & (labels == labels.round())
        if not bool(whole.all()):
            example = float(labels[~whole].flatten()[0])
            raise InvalidParameterError(
                f"{where}: {_describe(task)} expects {expected}, got the non-integral value "
                f"{example!r} (float labels are used only when every value is a whole number)"
            )
    labels = labels.long()
    valid = (labels == IGNORE_LABEL) | ((labels >= 0) & (labels < high))
    if labels.numel() and not bool(valid.all()):
        bad = labels[~valid]
        raise InvalidParameterError(
            f"{where}: {_describe(task)} expects {expected}, got values from "
            f"{int(bad.min())} to {int(bad.max())}"
        )
    return labels


def _real(labels: Tensor, task, where: str) -> Tensor:
    if labels.is_complex() or labels.dtype == torch.bool:
        raise InvalidParameterError(
            f"{where}: {_describe(task)} expects real values, got {labels.dtype}"
        )
    labels = labels.float()
    if not bool(torch.isfinite(labels).all()):
        raise InvalidParameterError(
            f"{where}: {_describe(task)} expects finite values, found NaN or infinity"
        )
    return labels


def _shape_error(task, where: str, expected: str, labels: Tensor) -> InvalidParameterError:
    return InvalidParameterError(
        f"{where}: {_describe(task)} expects labels of shape {expected}, got {tuple(labels.shape)}"
    )


def check_labels(task, labels: object, where: str, image_size: Sequence[int] = ()) -> Tensor:
    """``labels`` of ``task`` for a batch, in the convention of the module docstring, or raise
    naming ``where`` (e.g. ``"val_data['depth']"``). ``image_size`` is the inputs' ``(H, W)``,
    which dense labels must match."""
    if not isinstance(labels, Tensor):
        raise InvalidParameterError(
            f"{where}: expected a tensor of labels for {_describe(task)}, got "
            f"{type(labels).__name__}"
        )
    batch = labels.shape[0] if labels.ndim else 0
    if task.kind == "classification":
        if labels.ndim != 1:
            raise _shape_error(task, where, f"({batch},)", labels)
        return _classes(labels, task, where, task.outputs if task.outputs > 1 else 2)
    if task.kind == "regression":
        one = task.outputs == 1 and labels.ndim == 1
        if not one and (labels.ndim != 2 or labels.shape[1] != task.outputs):
            shown = f"({batch}, {task.outputs})" + (f" or ({batch},)" if task.outputs == 1 else "")
            raise _shape_error(task, where, shown, labels)
        return _real(labels, task, where).reshape(batch, task.outputs)
    size = tuple(image_size)
    maps = f"({batch}, {task.outputs}, {', '.join(map(str, size))})"
    pixels = f"({batch}, {', '.join(map(str, size))})"
    if labels.ndim == 4 and tuple(labels.shape[1:]) == (task.outputs, *size):
        return _real(labels, task, where)
    if labels.ndim == 3 and tuple(labels.shape[1:]) == size:
        if task.outputs == 1:
            return _real(labels, task, where)
        return _classes(labels, task, where, task.outputs)
    expected = f"{pixels} (classes) or {maps} (real maps)" if task.outputs > 1 else pixels
    raise _shape_error(task, where, expected, labels)


def binary_labels(task) -> bool:
    """Whether ``task`` is a binary classification (one logit against ``{0, 1}``)."""
    return task.kind == "classification" and task.outputs == 1


def class_labels(task, labels: Tensor) -> bool:
    """Whether checked ``labels`` of ``task`` are classes (as opposed to real values)."""
    return task.kind == "classification" or (
        task.kind == "dense" and not labels.is_floating_point()
    )
