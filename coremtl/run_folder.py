"""The run folder's guard: nothing in it is lost or silently mixed with another run.

- A run is recognised by its manifest (:data:`MANIFEST`), a file only the trainer writes, which
  lists the files a run writes (:data:`RUN_FILES`). A fresh run refuses a folder whose manifest
  shows a run with results (a checkpoint, a logged step or epoch, final metrics) unless asked to
  overwrite it; overwriting removes exactly the listed files and the manifest. A run that
  stopped before logging anything holds no results and is replaced without asking. Files named
  like a run's in a folder without a manifest were not written by the toolkit: they are refused,
  never removed, overwrite or not.
- A resumed run needs ``checkpoints/last.pt`` and the configuration the run was started with:
  every setting that shapes the result (learning rate, schedule, epochs, model, terms, balancer,
  world size, ...) must be the one stored in ``config.json``. Only the settings listed in
  :data:`RESUMABLE_SETTINGS` (how the run is watched or interrupted, not what it computes) may
  differ.

Messages name the way the caller continues or replaces a run (:class:`FolderFlags`): the command
line's ``--resume`` / ``--overwrite``, :meth:`coremtl.trainer.Trainer.fit`'s arguments, or
:func:`coremtl.train`'s ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from scm.validation import InvalidParameterError, check_output_path

CONFIG_FILE = "config.json"
MANIFEST = "run_manifest.json"
LOG_FILES = ("metrics.jsonl", "epochs.jsonl")
RESULT_FILES = (
    "final_metrics.json",
    "last.pt",
    "best.pt",
    "checkpoints/last.pt",
    "checkpoints/best.pt",
)
RUN_FILES = (CONFIG_FILE, *LOG_FILES, "metrics.csv", *RESULT_FILES)
RESUMABLE_SETTINGS = frozenset(
    {"progress", "num_workers", "stop_after_steps", "checkpoint_every", "log_every", "probe_every"}
)


class FolderFlags(NamedTuple):
    """How a caller continues a run (``None``: it cannot) and replaces one, as its messages say."""

    resume: str | None
    overwrite: str


CLI_FLAGS = FolderFlags("--resume", "--overwrite")
TRAINER_FLAGS = FolderFlags("fit(resume=True)", "fit(overwrite=True)")


def write_manifest(output_dir: str | os.PathLike) -> Path:
    """Mark ``output_dir`` as a run folder: :data:`MANIFEST` listing :data:`RUN_FILES`."""
    path = Path(output_dir) / MANIFEST
    path.write_text(json.dumps({"written_by": "coremtl", "files": list(RUN_FILES)}, indent=2))
    return path


def _recorded_files(folder: Path) -> list[str]:
    """The files the manifest of ``folder`` lists (an unreadable manifest lists none)."""
    try:
        record = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, list):
        return []
    return [name for name in files if isinstance(name, str) and name in RUN_FILES]


def existing_run_files(output_dir: str | os.PathLike) -> list[str]:
    """The files of a run present in ``output_dir``: those its manifest lists (none without a
    manifest: such a folder holds no run of the toolkit)."""
    folder = Path(output_dir)
    if not (folder / MANIFEST).is_file():
        return []
    return [name for name in _recorded_files(folder) if (folder / name).exists()]


def holds_results(output_dir: str | os.PathLike) -> bool:
    """Whether the run in ``output_dir`` has something to lose: a checkpoint, final metrics, or a
    logged step or epoch."""
    found = set(existing_run_files(output_dir))
    folder = Path(output_dir)
    if found & set(RESULT_FILES):
        return True
    return any(name in found and (folder / name).stat().st_size > 0 for name in LOG_FILES)


def claim_fresh_folder(
    output_dir: str | os.PathLike, overwrite: bool = False, flags: FolderFlags = TRAINER_FLAGS
) -> None:
    """Make ``output_dir`` ready for a new run (module docstring): refuse a folder holding a run
    with results unless ``overwrite``, refuse files no run wrote, remove the earlier run's files.
    """
    folder = check_output_path(output_dir, "output_dir", folder=True)
    if not (folder / MANIFEST).is_file():
        clashing = [name for name in RUN_FILES if (folder / name).exists()]
        if clashing:
            raise InvalidParameterError(
                f"output_dir: {folder} holds {', '.join(clashing)}, which no run of this toolkit "
                f"wrote (there is no {MANIFEST}); they are left as they are: choose another folder"
            )
        return
    found = existing_run_files(folder)
    if holds_results(folder) and not overwrite:
        ways = [f"continue it with {flags.resume}"] if flags.resume else []
        ways += [f"replace it with {flags.overwrite}", "or choose another folder"]
        raise InvalidParameterError(
            f"output_dir: {folder} already holds a run ({', '.join(found)}); {', '.join(ways)}"
        )
    for name in found:
        (folder / name).unlink()
    (folder / MANIFEST).unlink()


def require_checkpoint(path: str | os.PathLike, flags: FolderFlags = TRAINER_FLAGS) -> Path:
    """``path`` if it exists; a resume without a checkpoint is refused rather than restarted."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"resume: no checkpoint at {path}; start the run without {flags.resume or 'resume'}"
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
