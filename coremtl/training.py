"""``coremtl.train``: :func:`coremtl.preset.build` a method on the user's backbone and tasks, then
fit it on their data with :class:`coremtl.trainer.Trainer` and return the metrics.

Its data, validation and test data are checked alike before anything is built
(:func:`coremtl.data_check.check_data`); the batch must hold enough samples for the debiased CKA
(4) and, with the label-conditional CKA, for the label columns it partials out
(:func:`coremtl.label_matrix.label_columns`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from coremtl.label_matrix import label_columns
from coremtl.names import canonical_method
from coremtl.preset import BUILD_ARGUMENTS_OF_TRAIN, Result, build
from coremtl.tasks import Task, check_tasks, score
from scm.validation import InvalidParameterError, check_positive_int, check_seed


def _sample_shape(data, input_key: str) -> tuple[int, ...]:
    if isinstance(data, Mapping):
        return tuple(data[input_key].shape[1:])
    return tuple(data[0][input_key].shape)


def _example_inputs(data, input_key: str) -> Tensor:
    if isinstance(data, Mapping):
        return data[input_key][:2]
    return data[0][input_key].unsqueeze(0)


def train(
    method: str,
    backbone: nn.Module,
    tasks: Sequence[Task],
    data,
    val_data=None,
    test_data=None,
    epochs: int = 6,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    output_dir=None,
    trainer_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Result:
    """Build ``method`` (:func:`build`, ``options`` passed on) and train it on ``data`` (a
    mapping of equally long tensors with the inputs under ``"x"`` and each task's labels under its
    ``target``, or a dataset of such dicts) for ``epochs`` epochs of AdamW at ``learning_rate``;
    ``val_data`` and ``test_data`` are scored after every epoch. All three are checked alike
    before anything is built (:mod:`coremtl.data_check`, labels as in :mod:`coremtl.task_labels`).
    The other trainer settings are :class:`coremtl.trainer.TrainerConfig`'s defaults (cosine
    decay to zero, clipping at norm 1, weight decay 1e-4) unless ``trainer_options`` names them
    (``input_key`` also names the inputs of the three data sets). Nothing is written unless
    ``output_dir`` is given (then the trainer's logs and checkpoints go there; a folder holding an
    earlier run with results is refused unless ``overwrite=True``)."""
    from coremtl.data_check import check_data
    from coremtl.devices import check_device
    from coremtl.run_folder import FolderFlags
    from coremtl.sampler import num_samples
    from coremtl.trainer import Trainer, TrainerConfig

    method = canonical_method(method)
    open_options = set(inspect.signature(build).parameters) - set(BUILD_ARGUMENTS_OF_TRAIN)
    unknown_options = sorted(set(options) - open_options)
    if unknown_options:
        raise InvalidParameterError(
            f"{unknown_options[0]}: not an argument of train or build (build's options: "
            f"{', '.join(sorted(open_options))})"
        )
    check_positive_int(batch_size, "batch_size")
    if method == "core-mtl" and batch_size < 4:
        raise InvalidParameterError(
            f"batch_size: the debiased CKA of CORE-MTL needs at least 4 samples, got {batch_size!r}"
        )
    objective = options.get("objective")
    if method == "core-mtl" and getattr(objective, "independence", None) == "conditional":
        needed = label_columns(objective.label_tasks or check_tasks(tasks)) + 4
        if batch_size < needed:
            raise InvalidParameterError(
                f"batch_size: the conditional CKA partials out up to {needed - 4} label columns "
                f"and needs 4 samples beyond them, so at least {needed}; got {batch_size}"
            )
    check_device(device, "device", available=True)
    if trainer_options is not None and not isinstance(trainer_options, Mapping):
        raise InvalidParameterError(
            f"trainer_options: expected a mapping of TrainerConfig fields, got "
            f"{type(trainer_options).__name__}"
        )
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": check_seed(seed),
        "device": device,
        "progress": False,
    }
    extra = dict(trainer_options or {})
    allowed = {f.name for f in dataclasses.fields(TrainerConfig)} - {*settings, "task_start_epoch"}
    unknown = sorted(set(extra) - allowed)
    if unknown:
        raise InvalidParameterError(
            f"trainer_options: {', '.join(unknown)} not among the TrainerConfig fields that "
            f"train leaves open ({', '.join(sorted(allowed))})"
        )
    config = TrainerConfig(**settings, **extra)
    tasks = check_tasks(tasks)
    key = config.input_key
    data = check_data(data, tasks, "data", key)
    splits = {"val_data": val_data, "test_data": test_data}
    checked = {
        name: check_data(split, tasks, name, key)
        for name, split in splits.items()
        if split is not None
    }
    shape = _sample_shape(data, key)
    for name, split in checked.items():
        if _sample_shape(split, key) != shape:
            raise InvalidParameterError(
                f"{name}[{key!r}]: expected samples of shape {shape} like data's, got "
                f"{_sample_shape(split, key)}"
            )
    if config.selection_metric is not None and "val_data" not in checked:
        raise InvalidParameterError(
            "trainer_options: a selection_metric is chosen on val_data, which is not given"
        )
    preset = build(
        method,
        backbone,
        tasks,
        _example_inputs(data, key),
        epochs,
        steps_per_epoch=num_samples(data) // batch_size,
        seed=seed,
        **options,
    )
    config = dataclasses.replace(config, task_start_epoch=preset.task_start_epoch)

    def scorer(name: str):
        if name not in checked:
            return None
        return lambda model: score(model, checked[name], preset.tasks, input_key=key, device=device)

    trainer = Trainer(
        preset.model,
        preset.task_losses,
        preset.balancer,
        config,
        output_dir,
        objective=preset.term_sources,
        validate=scorer("val_data"),
        test=scorer("test_data"),
        run_info={"method": method, "tasks": [dataclasses.asdict(t) for t in preset.tasks]},
    )
    trainer.folder_flags = FolderFlags(None, "overwrite=True")
    trainer.fit(data, overwrite=overwrite)
    last = trainer.history[-1] if trainer.history else {}
    return Result(preset, last.get("val", {}), last.get("test", {}), trainer.history)
