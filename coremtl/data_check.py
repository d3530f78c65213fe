"""The one check of the data a set of tasks is trained or scored on: training, validation and test
data alike (:func:`coremtl.train`, :func:`coremtl.evaluate`).

Data is a mapping of equally long tensors (the inputs under ``input_key``, each task's labels
under its ``target``; other entries are kept as they are) or a dataset (any object with
``len`` and indexing, e.g. a ``torch.utils.data.Dataset``) of such dicts for one sample each. It
must hold at least one sample. Inputs are floating-point ``(B, ...)`` and finite; float64,
float16 and bfloat16 are converted to float32 (the library's layers), integer and boolean inputs
(e.g. ``uint8`` images) are refused, since their scale is the user's to choose. Labels follow
:mod:`coremtl.task_labels`. A mapping is checked whole, once; a dataset's first sample is checked at
once and every sample as it is loaded (:class:`CheckedDataset`), so a bad sample is named when
it is reached, before it enters a loss or a metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from coremtl.task_labels import check_labels
from scm.validation import InvalidParameterError

FLOAT_INPUTS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _inputs(value: object, where: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise InvalidParameterError(
            f"{where}: expected a tensor of inputs, got {type(value).__name__}"
        )
    if value.dtype not in FLOAT_INPUTS:
        raise InvalidParameterError(
            f"{where}: expected floating-point inputs, got {value.dtype} (convert them, e.g. "
            "x.float() / 255 for uint8 images)"
        )
    if not bool(torch.isfinite(value).all()):
        raise InvalidParameterError(f"{where}: expected finite inputs, found NaN or infinity")
    return value.float()


def _check_dense_inputs(tasks: Sequence, inputs: Tensor, where: str) -> None:
    dense = [task.name for task in tasks if task.kind == "dense"]
    if dense and inputs.ndim != 4:
        raise InvalidParameterError(
            f"{where}: dense task(s) {dense} need image inputs (B, C, H, W), got shape "
            f"{tuple(inputs.shape)}"
        )


def _check_sample(sample: object, tasks: Sequence, name: str, input_key: str) -> dict:
    """One sample (a dict without the batch dimension) checked and converted."""
    if not isinstance(sample, Mapping):
        raise InvalidParameterError(
            f"{name}: expected samples that are dicts of tensors, got {type(sample).__name__}"
        )
    missing = [key for key in (input_key, *(task.key for task in tasks)) if key not in sample]
    if missing:
        raise InvalidParameterError(
            f"{name}: its samples lack {', '.join(map(repr, missing))} (keys: {sorted(sample)})"
        )
    checked = dict(sample)
    inputs = _inputs(torch.as_tensor(sample[input_key]), f"{name}[{input_key!r}]")
    _check_dense_inputs(tasks, inputs.unsqueeze(0), f"{name}[{input_key!r}]")
    checked[input_key] = inputs
    for task in tasks:
        labels = torch.as_tensor(sample[task.key]).unsqueeze(0)
        where = f"{name}[{task.key!r}]"
        checked[task.key] = check_labels(task, labels, where, tuple(inputs.shape[-2:]))[0]
    return checked


class CheckedDataset(torch.utils.data.Dataset):
    """``dataset`` whose samples are checked and converted as they are loaded; other attributes
    (``set_epoch``, ``indices``, ...) are the dataset's own."""

    def __init__(self, dataset: Any, tasks: Sequence, name: str, input_key: str) -> None:
        self.dataset = dataset
        self.tasks = tuple(tasks)
        self.name = name
        self.input_key = input_key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        where = f"{self.name} sample {index}"
        return _check_sample(self.dataset[index], self.tasks, where, self.input_key)

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "dataset":
            raise AttributeError(attribute)
        return getattr(self.dataset, attribute)


def _check_mapping(data: Mapping, tasks: Sequence, name: str, input_key: str) -> dict:
    for key, value in data.items():
        if not isinstance(value, Tensor) or value.ndim == 0:
            shown = type(value).__name__ if not isinstance(value, Tensor) else "a 0-d tensor"
            raise InvalidParameterError(
                f"{name}[{key!r}]: expected a tensor with one row per sample, got {shown}"
            )
    missing = [key for key in (input_key, *(task.key for task in tasks)) if key not in data]
    if missing:
        raise InvalidParameterError(
            f"{name}: lacks {', '.join(map(repr, missing))} (keys: {sorted(data)}); expected the "
            f"inputs under {input_key!r} and each task's labels under its name or target"
        )
    sizes = {key: int(value.shape[0]) for key, value in data.items()}
    if len(set(sizes.values())) != 1:
        raise InvalidParameterError(f"{name}: expected equally long tensors, got lengths {sizes}")
    if sizes[input_key] == 0:
        raise InvalidParameterError(f"{name}: expected at least one sample, got none")
    checked = dict(data)
    inputs = _inputs(data[input_key], f"{name}[{input_key!r}]")
    _check_dense_inputs(tasks, inputs, f"{name}[{input_key!r}]")
    checked[input_key] = inputs
    for task in tasks:
        where = f"{name}[{task.key!r}]"
        checked[task.key] = check_labels(task, data[task.key], where, tuple(inputs.shape[-2:]))
    return checked


def check_data(data: object, tasks: Sequence, name: str = "data", input_key: str = "x"):
    """``data`` checked for ``tasks`` (module docstring) under the argument name ``name``: a
    mapping comes back as a new dict with converted inputs and labels, a dataset as a
    :class:`CheckedDataset`. Raises :class:`~scm.validation.InvalidParameterError` naming
    ``name``, the entry and what was expected."""
    if isinstance(data, Mapping):
        return _check_mapping(data, tasks, name, input_key)
    if isinstance(data, (Tensor, str, bytes)) or not (
        hasattr(data, "__len__") and hasattr(data, "__getitem__")
    ):
        raise InvalidParameterError(
            f"{name}: expected a mapping of equally long tensors (inputs under {input_key!r}, "
            f"labels under each task's name) or a dataset of such dicts, got {type(data).__name__}"
        )
    if len(data) == 0:
        raise InvalidParameterError(f"{name}: expected at least one sample, got an empty dataset")
    checked = CheckedDataset(data, tasks, name, input_key)
    checked[0]
    return checked
