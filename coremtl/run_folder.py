"""The run folder's guard: nothing in it is lost or silently mixed with another run.

- A fresh run refuses a folder that already holds a run (its configuration, logs, checkpoints or
  final metrics), unless asked to overwrite it; overwriting removes exactly those files.
- A resumed run needs ``checkpoints/last.pt`` and the configuration the run was started with:
  every setting that shapes the result (learning rate, schedule, epochs, model, terms, balancer,
  world size, ...) must be the one stored in ``config.json``. Only the settings listed in
  :data:`RESUMABLE_SETTINGS` (how the run is watched or interrupted, not what it computes) may
  differ.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scm.validation import InvalidParameterError

CONFIG_FILE = "config.json"
RUN_FILES = (
    CONFIG_FILE,
    "metrics.jsonl",
    "epochs.jsonl",
    "metrics.csv",
    "final_metrics.json",
    "last.pt",
    "best.pt",
    "checkpoints/last.pt",
    "checkpoints/best.pt",
)
RESUMABLE_SETTINGS = frozenset(
    {"progress", "num_workers", "stop_after_steps", "checkpoint_every", "log_every", "probe_every"}
)


def existing_run_files(output_dir: str | os.PathLike) -> list[str]:
    """The files of :data:`RUN_FILES` present in ``output_dir``."""
    folder = Path(output_dir)
    return [name for name in RUN_FILES if (folder / name).exists()]


def claim_fresh_folder(output_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Make ``output_dir`` ready for a new run: refuse one that holds a run unless ``overwrite``,
    in which case the earlier run's files are removed."""
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(f"output_dir: {folder} is a file, expected a folder")
    found = existing_run_files(folder)
    if not found:
        return
    if not overwrite:
        raise InvalidParameterError(
            f"output_dir: {folder} already holds a run ({', '.join(found)}); continue it with "
            "resume (--resume), replace it with overwrite (--overwrite), or choose another folder"
        )
    for name in found:
        (folder / name).unlink()


def require_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` if it exists; a resume without a checkpoint is refused rather than restarted."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"resume: no checkpoint at {path}; start the run without resume (--resume)"
        )
    return path


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def configuration_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ (or exist on one side only), settings of
    :data:`RESUMABLE_SETTINGS` excepted, each as ``key: stored -> current``."""
    old = _flatten(json.loads(json.dumps(stored, default=str)))
    new = _flatten(json.loads(json.dumps(current, default=str)))
    missing = object()
    differences = []
    for key in sorted(set(old) | set(new)):
        if key.rsplit(".", 1)[-1] in RESUMABLE_SETTINGS:
            continue
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            shown_before = "(absent)" if before is missing else repr(before)
            shown_after = "(absent)" if after is missing else repr(after)
            differences.append(f"{key}: {shown_before} -> {shown_after}")
    return differences


def check_resumable(output_dir: str | os.PathLike, current: Mapping[str, Any]) -> None:
    """Refuse to resume the run in ``output_dir`` with a configuration other than its own."""
    path = Path(output_dir) / CONFIG_FILE
    if not path.is_file():
        raise InvalidParameterError(
            f"resume: {path} is missing, so the run's configuration cannot be checked"
        )
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidParameterError(f"resume: {path} is not valid JSON ({error.msg})") from None
    differences = configuration_differences(stored, current)
    if differences:
        shown = "; ".join(differences[:4]) + (
            f" (+{len(differences) - 4} more)" if len(differences) > 4 else ""
        )
        raise InvalidParameterError(
            f"resume: the configuration differs from the run's own {path} ({shown}); resume "
            "with the same settings, or start a new run in another folder"
        )
