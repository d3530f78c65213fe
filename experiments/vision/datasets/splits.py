"""The three splits of a run, and the seeded carving of a validation split out of the training
files (never the test split)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from scm.validation import InvalidParameterError, check_seed


@dataclass
class Splits:
    """Training, validation (model selection) and test data of one run."""

    train: Dataset
    val: Dataset
    test: Dataset


def carve_validation(num_samples: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split positions ``0..num_samples-1`` into (train, validation) by a seeded permutation.

    The validation part holds ``max(1, round(fraction * n))`` positions and the training part keeps
    at least one; both are returned sorted.
    """
    if not 0.0 < fraction < 1.0:
        raise InvalidParameterError(f"val_fraction: expected a number in (0, 1), got {fraction!r}")
    if num_samples < 2:
        raise InvalidParameterError(
            f"training split: expected at least 2 samples to carve a validation split, "
            f"got {num_samples}"
        )
    seed = check_seed(seed, "split_seed")
    num_val = min(num_samples - 1, max(1, round(fraction * num_samples)))
    order = np.random.default_rng(seed).permutation(num_samples)
    return sorted(order[num_val:].tolist()), sorted(order[:num_val].tolist())
