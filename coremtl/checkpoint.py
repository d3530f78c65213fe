"""Atomic, code-free checkpoints and the random-number-generator states they carry.

- Saving writes ``torch.save`` output to a temporary file in the destination folder, flushes it to
  disk and ``os.replace``-s it over the destination, so a crash never leaves a partial checkpoint.
- Loading uses ``torch.load(weights_only=True)`` only: tensors, numbers, strings, lists, tuples and
  dicts; a file that would need to import or run code is refused with
  :class:`UnsafeCheckpointError`.
- RNG states of python, numpy and torch (CPU and every CUDA device) are stored as tensors and
  lists so that they pass the ``weights_only`` loader.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class UnsafeCheckpointError(ValueError):
    """A checkpoint file holds objects that the weights-only loader refuses to build."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    """Load a checkpoint with ``torch.load(weights_only=True)``; refuse anything needing code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UnsafeCheckpointError(
            f"checkpoint {path}: refused, it holds objects the weights-only loader does not "
            f"allow ({first_line})"
        ) from None


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
