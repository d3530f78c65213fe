"""Input checks shared by every package: each failure names the parameter and what was expected."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np


class InvalidParameterError(ValueError):
    """A parameter does not meet its documented requirement; the message names it."""


class NonFiniteError(ValueError):
    """A loss, a gradient or an input batch holds NaN or infinity; the message names which."""


def as_finite_array(value: object, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a float64 array, checking finiteness and the number of dimensions."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidParameterError(f"{name}: expected a numeric array ({error})") from None
    if ndim is not None and array.ndim != ndim:
        raise InvalidParameterError(
            f"{name}: expected an array with {ndim} dimension(s), got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise InvalidParameterError(f"{name}: expected finite values, found NaN or infinity")
    return array


def check_shape(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Raise unless ``array.shape == shape``."""
    if array.shape != tuple(shape):
        raise InvalidParameterError(f"{name}: expected shape {tuple(shape)}, got {array.shape}")


def check_covariance(value: object, name: str, dim: int | None = None, atol: float = 1e-9):
    """Return ``value`` as a symmetric positive semi-definite matrix, or raise.

    Symmetry is checked to ``atol`` relative to the largest entry; positive semi-definiteness
    requires the smallest eigenvalue to be at least ``-atol * max(1, ||Sigma||_2)``, and the error
    reports that eigenvalue.
    """
    matrix = as_finite_array(value, name, ndim=2)
    if matrix.shape[0] != matrix.shape[1]:
        raise InvalidParameterError(f"{name}: expected a square matrix, got shape {matrix.shape}")
    if dim is not None and matrix.shape != (dim, dim):
        raise InvalidParameterError(f"{name}: expected shape ({dim}, {dim}), got {matrix.shape}")
    scale = max(1.0, float(np.max(np.abs(matrix))) if matrix.size else 1.0)
    asymmetry = float(np.max(np.abs(matrix - matrix.T))) if matrix.size else 0.0
    if asymmetry > atol * scale:
        raise InvalidParameterError(
            f"{name}: expected a symmetric matrix, max |S - S^T| = {asymmetry:.3g}"
        )
    matrix = 0.5 * (matrix + matrix.T)
    smallest = float(np.linalg.eigvalsh(matrix)[0]) if matrix.size else 0.0
    if smallest < -atol * max(1.0, float(np.linalg.norm(matrix, 2))):
        raise InvalidParameterError(
            f"{name}: expected a positive semi-definite matrix, smallest eigenvalue is {smallest:.6g}"
        )
    return matrix


def check_angle(psi: float, name: str = "psi") -> float:
    """Return ``psi`` as a float in ``[0, pi/2]``, or raise."""
    try:
        value = float(psi)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{name}: expected a number in [0, pi/2], got {psi!r}"
        ) from None
    if not math.isfinite(value) or value < 0.0 or value > math.pi / 2 + 1e-12:
        raise InvalidParameterError(f"{name}: expected an angle in [0, pi/2], got {value!r}")
    return min(value, math.pi / 2)


def check_orthogonal(value: object, name: str, dim: int | None = None, atol: float = 1e-8):
    """Return ``value`` as an orthogonal matrix (``G^T G = I``), or raise with the deviation."""
    matrix = as_finite_array(value, name, ndim=2)
    if matrix.shape[0] != matrix.shape[1] or (dim is not None and matrix.shape[0] != dim):
        expected = f"({dim}, {dim})" if dim is not None else "square"
        raise InvalidParameterError(f"{name}: expected shape {expected}, got {matrix.shape}")
    deviation = float(np.max(np.abs(matrix.T @ matrix - np.eye(matrix.shape[0]))))
    if deviation > atol:
        raise InvalidParameterError(
            f"{name}: expected an orthogonal matrix, max |G^T G - I| = {deviation:.3g}"
        )
    return matrix


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int >= 1, or raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{name}: expected a positive integer, got {value!r}")
    if value <= 0:
        raise InvalidParameterError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def _interval(low: float, high: float) -> str:
    """``[low, high]`` with an infinite end left open: ``[0.0, inf)``."""
    left = "(" if math.isinf(low) else "["
    right = ")" if math.isinf(high) else "]"
    return f"{left}{low}, {high}{right}"


def check_in_range(value: float, name: str, low: float, high: float) -> float:
    """Return ``value`` as a finite float in ``[low, high]`` (an infinite bound is not itself
    allowed), or raise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number < low or number > high:
        raise InvalidParameterError(
            f"{name}: expected a finite number in {_interval(low, high)}, got {number!r}"
        )
    return number


def check_non_negative(value: object, name: str) -> float:
    """Return ``value`` as a finite float ``>= 0``, or raise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{name}: expected a finite non-negative number, got {value!r}"
        ) from None
    if not math.isfinite(number) or number < 0.0:
        raise InvalidParameterError(
            f"{name}: expected a finite non-negative number, got {number!r}"
        )
    return number


MAX_SEED = 2**63 - 1
"""The largest seed: numpy, torch and :func:`scm.seeds.derive_seed` all take ``[0, 2**63)``."""


def check_seed(value: object, name: str = "seed") -> int:
    """Return ``value`` as an int in ``[0, 2**63)`` (what numpy and torch accept), or raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{name}: expected a non-negative integer seed, got {value!r}")
    if value < 0:
        raise InvalidParameterError(f"{name}: expected a non-negative integer seed, got {value}")
    if value > MAX_SEED:
        raise InvalidParameterError(f"{name}: expected a seed below 2**63, got {value}")
    return int(value)


OVERWRITE_RULE = (
    "Earlier results are never replaced silently: when an output exists, the command stops "
    "before running and names it; --overwrite replaces it."
)


def refuse_to_overwrite(paths: Iterable[Path], name: str, flag: str = "--overwrite") -> None:
    """Raise, naming ``name`` (the output option), the first existing path and ``flag``, when any
    of ``paths`` exists: no command replaces earlier results unless asked."""
    existing = [Path(path) for path in paths if Path(path).exists()]
    if existing:
        others = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise InvalidParameterError(
            f"{name}: {existing[0]}{others} already exists; pass {flag} to replace it"
        )


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (the current folder for a relative path)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_output_path(path: object, name: str, folder: bool = False) -> Path:
    """``path`` as a :class:`~pathlib.Path` a command can write to, checked before any work.

    An output file (``folder=False``) must not be a folder; an output folder must not be a
    file; what does not exist yet must be creatable: its nearest existing ancestor is a folder
    this process may write into. Raises naming ``name`` (the option or argument) and the path.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise InvalidParameterError(f"{name}: expected a file or folder path, got {path!r}")
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InvalidParameterError(f"{name}: {path} is a file, expected a folder")
    if not folder and path.is_dir():
        raise InvalidParameterError(f"{name}: {path} is a folder, expected a file")
    existing = _first_existing(path if folder else path.parent)
    if not existing.is_dir():
        raise InvalidParameterError(
            f"{name}: cannot create {path}: {existing} is a file, not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"{name}: cannot write {path}: {existing} is not writable")
    return path


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root ``S^{1/2} = V diag(sqrt(max(d, 0))) V^T`` of a PSD matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
