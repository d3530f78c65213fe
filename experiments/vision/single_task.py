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

A multi-task run reads that file through ``run.single_task_reference_file``. Precedence
(:func:`resolve_reference`): the file wins. Inline values (``run.single_task_reference``, e.g. the
paper's ResNet-50 row in ``nyuv2.yaml``, labelled by ``run.single_task_reference_label``) are the
reference only when no file is given; with a file they are ignored (and said to be), unless
``run.single_task_reference_mix: true`` asks them to fill the metrics the file lacks. Every value's
source (``file: <path>`` or the inline label) is printed by ``coremtl train`` and recorded in
``final_metrics.json``. A zero reference value is refused when the file is written and read (and
inline, by the config): ``Delta_m`` divides by it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
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


def check_non_zero(reference: dict[str, float], where: str) -> None:
    """Raise naming the first metric whose reference value is 0 (``Delta_m`` divides by it)."""
    for name, value in reference.items():
        if value == 0:
            raise InvalidParameterError(
                f"{where}: {name!r} is 0, and Delta_m divides by the single-task value; "
                "train the single-task runs longer or leave that metric out"
            )


def write_reference_file(path: str | Path, reference: dict[str, float]) -> Path:
    """Write ``reference`` as a JSON mapping ``metric -> value`` (keys sorted); zeros refused."""
    path = Path(path)
    check_non_zero(reference, f"single-task reference {path}")
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
    check_non_zero(reference, f"{key}: {path}")
    return reference


@dataclass(frozen=True)
class Reference:
    """The single-task reference of a run: each metric's value and where it comes from."""

    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    ignored_inline: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: which metrics come from which source, and any inline values ignored."""
        if not self.values:
            return "Delta_m reference: none (selection on delta_m uses the first epoch's metrics)"
        groups: dict[str, list[str]] = {}
        for name in sorted(self.values):
            groups.setdefault(self.sources[name], []).append(name)
        text = "; ".join(f"{', '.join(names)} from {source}" for source, names in groups.items())
        if self.ignored_inline:
            text += (
                f"; inline {', '.join(self.ignored_inline)} ignored (the file wins; "
                "run.single_task_reference_mix=true fills missing metrics from them)"
            )
        return f"Delta_m reference: {text}"

    def record(self) -> dict[str, dict[str, float | str]]:
        """``{metric: {"value": ..., "source": ...}}`` for ``final_metrics.json``."""
        return {
            name: {"value": value, "source": self.sources[name]}
            for name, value in sorted(self.values.items())
        }


def resolve_reference(config: VisionConfig) -> Reference:
    """The reference of ``config`` by the precedence of the module docstring."""
    run = config.run
    inline = dict(run.single_task_reference)
    label = run.single_task_reference_label
    if run.single_task_reference_file is None:
        return Reference(inline, dict.fromkeys(inline, label))
    values = read_reference_file(run.single_task_reference_file)
    sources = dict.fromkeys(values, f"file: {run.single_task_reference_file}")
    extra = sorted(name for name in inline if name not in values)
    if run.single_task_reference_mix:
        values.update({name: inline[name] for name in extra})
        sources.update(dict.fromkeys(extra, label))
        ignored = sorted(name for name in inline if name not in extra)
    else:
        ignored = sorted(inline)
    return Reference(values, sources, tuple(ignored))


def single_task_reference(config: VisionConfig) -> dict[str, float]:
    """The reference values of ``config`` (:func:`resolve_reference`)."""
    return resolve_reference(config).values
