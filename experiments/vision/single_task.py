"""Single-task references for ``Delta_m``: one single-task run per task, and the reference file.

docs/VISION.md compares a multi-task run with single-task models trained by the toolkit on the same
backbone and data: ``Delta_m % = mean_k (-1)^{l_k} (M_k - M_stl,k) / M_stl,k * 100``
(:func:`experiments.vision.metrics.delta_m`). ``coremtl train --config FILE
--single-task-references`` trains, for each task ``t`` of ``data.tasks``, the config with
``data.tasks: [t]``, ``model.kind: single-task`` (the same encoder, weights and head as the multi-task
model; :func:`~.model.build.build_model`), Equal Weighting, the same data, schedule and seed, in
``<run.output_dir>/single_task/<t>/`` (a complete run directory). The test metrics of each run's
checkpoint selected on validation (``test_at_selected``) are merged into one JSON mapping
``{"<task>/<metric>": value, ...}`` written to ``<run.output_dir>/single_task_reference.json``.

A multi-task run reads that file through ``run.single_task_reference_file``; the precedence of
that file over inline values, and the sources recorded for every value, are in :mod:`.reference`.
"""

from __future__ import annotations

from pathlib import Path

from scm.validation import InvalidParameterError, check_output_path

from .config import VisionConfig, from_dict
from .reference import (
    REFERENCE_FILE,
    Reference,
    read_reference_file,
    resolve_reference,
    single_task_reference,
    write_reference_file,
    zero_metrics,
)
from .training import build_run, train

__all__ = [
    "REFERENCE_FILE",
    "RUNS_FOLDER",
    "Reference",
    "read_reference_file",
    "resolve_reference",
    "single_task_config",
    "single_task_reference",
    "train_single_task_references",
    "write_reference_file",
    "zero_metrics",
]

RUNS_FOLDER = "single_task"


def single_task_config(config: VisionConfig, task: str) -> VisionConfig:
    """``config`` restricted to ``task``: a ``single-task`` model, Equal Weighting, its own folder.

    The selection metric is kept when it is one of ``task``'s metrics (``"<task>/..."``) and
    replaced by ``"delta_m"`` otherwise. For CelebA the attribute list is ``[task]`` as well.
    """
    if task not in config.data.tasks:
        raise InvalidParameterError(f"data.tasks: {task!r} is not among {config.data.tasks}")
    data = config.to_dict()
    data["data"]["tasks"] = [task]
    if "celeba" in data["data"] and config.data.dataset == "celeba":
        data["data"]["celeba"]["attributes"] = [task]
    data["model"]["kind"] = "single-task"
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
    config: VisionConfig, resume: bool = False, overwrite: bool = False
) -> tuple[Path, dict[str, float]]:
    """Train one single-task run per task of ``config``; write and return the merged reference,
    every value as measured (a 0 is written too, and named: :mod:`.reference` leaves it out of
    ``Delta_m``).

    With ``resume``, a task whose folder holds ``checkpoints/last.pt`` continues from it; the
    others start afresh. With ``overwrite``, earlier single-task runs are replaced. Only the main
    process writes the file.
    """
    from coremtl.distributed import barrier, is_main_process

    path = Path(config.run.output_dir) / REFERENCE_FILE
    if is_main_process():
        check_output_path(path, "run.output_dir")
    reference: dict[str, float] = {}
    for task in config.data.tasks:
        task_config = single_task_config(config, task)
        last = Path(task_config.run.output_dir) / "checkpoints" / "last.pt"
        run = build_run(task_config)
        report = train(run, resume=resume and last.is_file(), overwrite=overwrite)
        reference.update({k: float(v) for k, v in report.get("test_at_selected", {}).items()})
    if is_main_process():
        if not reference:
            raise InvalidParameterError(
                f"training.epochs: the single-task runs of {config.data.tasks} selected no "
                "checkpoint, so there is no reference to write"
            )
        write_reference_file(path, reference)
        zeros = zero_metrics(reference)
        if zeros:
            print(
                f"{path}: {', '.join(zeros)} measured as 0, written as measured; a multi-task run "
                "leaves them out of Delta_m (it divides by them) and records that",
                flush=True,
            )
    barrier()
    return path, reference
