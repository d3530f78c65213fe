"""The single-task reference of ``Delta_m``: its JSON file, and the reference a config names.

The reference is a JSON mapping ``{"<task>/<metric>": value, ...}`` of finite, non-zero numbers
(:data:`REFERENCE_FILE` in the output folder of ``coremtl train --config FILE
--single-task-references``, :mod:`.single_task`). Precedence (:func:`resolve_reference`): a file
given as ``run.single_task_reference_file`` wins. Inline values (``run.single_task_reference``,
e.g. the paper's ResNet-50 row in ``nyuv2.yaml``, labelled by ``run.single_task_reference_label``)
are the reference only when no file is given; with a file they are ignored (and said to be),
unless ``run.single_task_reference_mix: true`` asks them to fill the metrics the file lacks. Every
value's source (``file: <path>`` or the inline label) is printed by ``coremtl train`` and recorded
in ``final_metrics.json``. A zero value is refused when the file is written and read (and inline,
by the config): ``Delta_m`` divides by it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from scm.validation import InvalidParameterError

from .config import VisionConfig

REFERENCE_FILE = "single_task_reference.json"


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
