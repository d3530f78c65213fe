"""The single-task reference of ``Delta_m``: its JSON file, and the reference a config names.

The reference is a JSON mapping ``{"<task>/<metric>": value, ...}`` of finite numbers, as
measured (:data:`REFERENCE_FILE` in the output folder of ``coremtl train --config FILE
--single-task-references``, :mod:`.single_task`). Precedence (:func:`resolve_reference`): a file
given as ``run.single_task_reference_file`` wins. Inline values (``run.single_task_reference``,
e.g. the paper's ResNet-50 row in ``nyuv2.yaml``, labelled by ``run.single_task_reference_label``)
are the reference only when no file is given; with a file they are ignored (and said to be),
unless ``run.single_task_reference_mix: true`` asks them to fill the metrics the file lacks. Every
value's source (``file: <path>`` or the inline label) is printed by ``coremtl train`` and recorded
in ``final_metrics.json``. ``Delta_m`` divides by each reference value, so a value of 0 is
handled where it would be divided by: a 0 in a file is left out of the reference, and the run says
so (:meth:`Reference.describe`) and records it (:meth:`Reference.record`); an inline 0 is refused
by the config. The file itself keeps what was measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from scm.validation import InvalidParameterError

from .config import VisionConfig

REFERENCE_FILE = "single_task_reference.json"
ZERO_LEFT_OUT = "0: Delta_m divides by it"


def zero_metrics(reference: dict[str, float]) -> list[str]:
    """The metrics whose reference value is 0 (``Delta_m`` cannot divide by them), sorted."""
    return sorted(name for name, value in reference.items() if value == 0)


def write_reference_file(path: str | Path, reference: dict[str, float]) -> Path:
    """Write ``reference`` as measured, a JSON mapping ``metric -> value`` (keys sorted)."""
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


@dataclass(frozen=True)
class Reference:
    """The single-task reference of a run: each metric's value and where it comes from."""

    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    ignored_inline: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    """Metrics whose reference value is 0: left out of ``Delta_m``, which divides by them."""

    def describe(self) -> str:
        """One line: which metrics come from which source, and any inline values ignored."""
        zeros = (
            f"; {', '.join(self.left_out)} left out (0 in the reference, Delta_m divides by it)"
            if self.left_out
            else ""
        )
        if not self.values:
            return (
                "Delta_m reference: none (selection on delta_m uses the first epoch's metrics)"
                + zeros
            )
        groups: dict[str, list[str]] = {}
        for name in sorted(self.values):
            groups.setdefault(self.sources[name], []).append(name)
        text = "; ".join(f"{', '.join(names)} from {source}" for source, names in groups.items())
        if self.ignored_inline:
            text += (
                f"; inline {', '.join(self.ignored_inline)} ignored (the file wins; "
                "run.single_task_reference_mix=true fills missing metrics from them)"
            )
        return f"Delta_m reference: {text}{zeros}"

    def record(self) -> dict[str, dict[str, float | str]]:
        """``{metric: {"value": ..., "source": ...}}`` for ``final_metrics.json``; a metric left
        out also has ``"left_out": "0: Delta_m divides by it"``."""
        used = {
            name: {"value": value, "source": self.sources[name]}
            for name, value in self.values.items()
        }
        left = {
            name: {"value": 0.0, "source": self.sources[name], "left_out": ZERO_LEFT_OUT}
            for name in self.left_out
        }
        return dict(sorted({**used, **left}.items()))


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
    left_out = tuple(zero_metrics(values))
    values = {name: value for name, value in values.items() if name not in left_out}
    if run.single_task_reference_mix:
        values.update({name: inline[name] for name in extra})
        sources.update(dict.fromkeys(extra, label))
        ignored = sorted(name for name in inline if name not in extra)
    else:
        ignored = sorted(inline)
    return Reference(values, sources, tuple(ignored), left_out)


def single_task_reference(config: VisionConfig) -> dict[str, float]:
    """The reference values of ``config`` (:func:`resolve_reference`)."""
    return resolve_reference(config).values
