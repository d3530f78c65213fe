"""Atomic, code-free checkpoints and the random-number-generator states they carry.

- Saving writes ``torch.save`` output to a temporary file in the destination folder, flushes it to
  disk and ``os.replace``-s it over the destination, so a crash never leaves a partial checkpoint.
- Loading uses ``torch.load(weights_only=True)`` only: tensors, numbers, strings, lists, tuples and
  dicts; a file that would need to import or run code is refused with
  :class:`UnsafeCheckpointError`; an empty, truncated or foreign file is refused with
  :class:`CorruptCheckpointError`, and a state of another model with
  :class:`CheckpointMismatchError` (:func:`load_module_state`), each in one line naming the file.
- A save that was killed leaves its temporary file behind; the next save into the same folder
  removes such leftovers of the same destination.
- RNG states of python, numpy and torch (CPU and every CUDA device) are stored as tensors and
  lists so that they pass the ``weights_only`` loader.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class UnsafeCheckpointError(ValueError):
    """A checkpoint file holds objects that the weights-only loader refuses to build."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file is empty, truncated or not written by ``torch.save``."""


class CheckpointMismatchError(ValueError):
    """A checkpoint holds the state of another model (missing, unexpected or reshaped entries)."""


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed saves to ``path`` left in its folder."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f"{_temporary_prefix(path)}*.tmp"))
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return stale


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(
        prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``; refuse anything needing code,
    and say in one line when the file is empty, truncated or not a checkpoint at all."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"checkpoint {path}: the file is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        raise CorruptCheckpointError(
            f"checkpoint {path}: not a checkpoint written by torch.save "
            "(truncated, corrupt or another format)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UnsafeCheckpointError(
            f"checkpoint {path}: refused, it holds objects the weights-only loader does not "
            f"allow ({first_line})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise CorruptCheckpointError(
            f"checkpoint {path}: cannot be read, truncated or corrupt ({first_line})"
        ) from None
    if not isinstance(state, dict):
        raise CorruptCheckpointError(
            f"checkpoint {path}: expected a dictionary of states, got {type(state).__name__}"
        )
    return state


def load_module_state(
    module: nn.Module, state: Any, source: str | os.PathLike, key: str = "model"
) -> None:
    """``module.load_state_dict(state)``, with a state of another model reported in one line
    naming ``source`` and the first missing, unexpected or reshaped entries."""
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f"checkpoint {source}: {key!r} is not a state dictionary")
    own = module.state_dict()
    missing = [name for name in own if name not in state]
    unexpected = [name for name in state if name not in own]
    reshaped = [
        f"{name} {tuple(state[name].shape)} vs {tuple(own[name].shape)}"
        for name in own
        if name in state
        and isinstance(state[name], torch.Tensor)
        and tuple(state[name].shape) != tuple(own[name].shape)
    ]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape", reshaped)):
        if names:
            shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint {source}: {key!r} is the state of another model ({'; '.join(problems)})"
        )
    module.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch RNG states as tensors, lists and numbers."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002 (the global state third-party code draws from)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))  # noqa: NPY002 (the global state third-party code draws from)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
