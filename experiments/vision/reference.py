"""The single-task reference of ``Delta_m``: its JSON file, and the reference a config names.

The reference is a JSON mapping ``{"<task>/<metric>": value, ...}`` of finite numbers
(:data:`REFERENCE_FILE` in the output folder of ``coremtl train --config FILE
--single-task-references``, :mod:`.single_task`). A run reads it through
``run.single_task_reference_file``; inline values in ``run.single_task_reference`` are applied on
top of it (:func:`single_task_reference`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scm.validation import InvalidParameterError

from .config import VisionConfig

REFERENCE_FILE = "single_task_reference.json"


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
