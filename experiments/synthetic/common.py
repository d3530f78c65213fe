"""Pieces shared by the synthetic studies: run modes, seeds, summaries over seeds, JSON values.

Every study module exposes ``NAME`` (a short title), ``STATEMENTS`` (the docs/THEORY.md ids it checks),
``CONFIGS`` (one frozen dataclass per mode in :data:`MODES`), ``run(config, seed, device,
progress) -> dict`` and ``plot(result, directory) -> list[Path]``. ``run`` returns JSON values only
and always holds ``finding`` (one line with the numbers) and ``verdict`` (one of
:data:`VERDICTS`); ``plot`` reads nothing but that dict, so figures can be redrawn from the
results file alone.

Error bands: over seeds, ``mean +- std`` with the sample standard deviation
(:func:`experiments.stats.mean_std`, re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np

from experiments.stats import mean_std as mean_std
from scm.validation import InvalidParameterError

MODES = ("smoke", "fast", "full")
VERDICTS = (
    "agrees",
    "agrees only as qualified",
    "theory agrees; CORE-MTL advantage contradicted",
    "contradicts",
    "measured",
)


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`."""
    if mode not in MODES:
        raise InvalidParameterError(f"mode: expected one of {MODES}, got {mode!r}")
    return mode


def seeds_for(base: int, count: int) -> list[int]:
    """``count`` consecutive seeds from ``base``: the seeds a study averages over."""
    return [int(base) + index for index in range(count)]


def band_text(summary: dict[str, float], digits: int = 3) -> str:
    """``"m +- s"`` of a :func:`mean_std` summary."""
    return f"{summary['mean']:.{digits}g} +- {summary['std']:.{digits}g}"


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and dataclasses turned into JSON values.

    Non-finite floats become ``None`` so the file stays valid JSON.
    """
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def linear_fit(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares line ``y = slope x + intercept`` and Pearson's ``r``."""
    x_array, y_array = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_array.size < 2 or np.ptp(x_array) == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "r": float("nan")}
    slope, intercept = np.polyfit(x_array, y_array, 1)
    r = float(np.corrcoef(x_array, y_array)[0, 1]) if np.ptp(y_array) > 0 else float("nan")
    return {"slope": float(slope), "intercept": float(intercept), "r": r}


def torch_setup(device: str, seed: int):
    """Seed torch's global generator and return the ``torch.device``."""
    import torch

    torch.manual_seed(seed)
    return torch.device(device)
