"""Single-task references for ``Delta_m``: one single-task run per task, and the reference file.

VISION.md compares a multi-task run with single-task models trained by the toolkit on the same
backbone and data: ``Delta_m % = mean_k (-1)^{l_k} (M_k - M_stl,k) / M_stl,k * 100``
(:func:`experiments.vision.metrics.delta_m`). ``coremtl train --config FILE
--single-task-references`` trains, for each task ``t`` of ``data.tasks``, the config with
``data.tasks: [t]``, ``model.kind: single`` (the same encoder, weights and head as the multi-task
model; :func:`~.model.build.build_model`), Equal Weighting, the same data, schedule and seed, in
``<run.output_dir>/single_task/<t>/`` (a complete run directory). The test metrics of each run's
checkpoint selected on validation (``test_at_selected``) are merged into one JSON mapping
``{"<task>/<metric>": value, ...}`` written to ``<run.output_dir>/single_task_reference.json``.

A multi-task run reads that file through ``run.single_task_reference_file``; inline values in
``run.single_task_reference`` are applied on top of it (:func:`single_task_reference`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scm.validation import InvalidParameterError

from .config import VisionConfig, from_dict

REFERENCE_FILE = "single_task_reference.json"
RUNS_FOLDER = "single_task"


def single_task_config(config: VisionConfig, task: str) -> VisionConfig:
    """``config`` restricted to ``task``: a ``single`` model, Equal Weighting, its own folder.

    The selection metric is kept when it is one of ``task``'s metrics (``"<task>/..."``) and
    replaced by ``"delta_m"`` otherwise. For CelebA the attribute list is ``[task]`` as well.
    """
    if task not in config.data.tasks:
        raise InvalidParameterError(f"data.tasks: {task!r} is not among {config.data.tasks}")
    data = config.to_dict()
    data["data"]["tasks"] = [task]
    if "celeba" in data["data"] and config.data.dataset == "celeba":
        data["data"]["celeba"]["attributes"] = [task]
    data["model"]["kind"] = "single"
    data["model"]["skip_connection"] = False
    data["training"]["balancer"] = "ew"
    data["training"]["balancer_options"] = {}
    if not data["training"]["selection_metric"].startswith(f"{task}/"):
        data["training"]["selection_metric"] = "delta_m"
    data["run"]["output_dir"] = str(Path(config.run.output_dir) / RUNS_FOLDER / task)
    data["run"]["single_task_reference"] = {}
    data["run"]["single_task_reference_file"] = None
    return from_dict(VisionConfig, data)


def train_single_task_references(
    config: VisionConfig, resume: bool = False
) -> tuple[Path, dict[str, float]]:
    """Train one single-task run per task of ``config``; write and return the merged reference.

    With ``resume``, a task whose folder holds ``checkpoints/last.pt`` continues from it; the
    others start afresh. Only the main process writes the file.
    """
    from coremtl.distributed import barrier, is_main_process

    from .training import build_run, train

    reference: dict[str, float] = {}
    for task in config.data.tasks:
        task_config = single_task_config(config, task)
        last = Path(task_config.run.output_dir) / "checkpoints" / "last.pt"
        run = build_run(task_config)
        report = train(run, resume=resume and last.is_file())
        reference.update({k: float(v) for k, v in report.get("test_at_selected", {}).items()})
    path = Path(config.run.output_dir) / REFERENCE_FILE
    if is_main_process():
        if not reference:
            raise InvalidParameterError(
                f"training.epochs: the single-task runs of {config.data.tasks} selected no "
                "checkpoint, so there is no reference to write"
            )
        write_reference_file(path, reference)
    barrier()
    return path, reference


def write_reference_file(path: str | Path, reference: dict[str, float]) -> Path:
    """Write ``reference`` as a JSON mapping ``metric -> value`` (keys sorted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(reference.items())), indent=2) + "\n")
    return path


def read_reference_file(path: str | Path) -> dict[str, float]:
    """The ``metric -> value`` mapping of a reference file, checked (finite numbers only)."""
    key = "run.single_task_reference_file"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{key}: no such file {path} (write it with coremtl train --config FILE "
            "--single-task-references)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidParameterError(f"{key}: {path} is not valid JSON ({error})") from None
    if not isinstance(data, dict) or not data:
        raise InvalidParameterError(
            f"{key}: {path} should hold a non-empty JSON mapping of metric names to numbers"
        )
    reference = {}
    for name, value in data.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise InvalidParameterError(
                f"{key}: {path}: {name!r} should be a finite number, got {value!r}"
            )
        reference[name] = float(value)
    return reference


def single_task_reference(config: VisionConfig) -> dict[str, float]:
    """The reference of ``config``: its file's metrics updated with the inline values."""
    reference: dict[str, float] = {}
    if config.run.single_task_reference_file is not None:
        reference.update(read_reference_file(config.run.single_task_reference_file))
    reference.update(config.run.single_task_reference)
    return reference
