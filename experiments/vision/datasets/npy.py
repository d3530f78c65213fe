"""The LibMTL / MTAN ``.npy`` layout of NYUv2, Cityscapes and the rendered scenes.

``<root>/<split>/{image,label,depth,normal}/<i>.npy`` with

- ``image``: ``H x W x 3`` floats in ``[0, 1]`` (sRGB),
- ``label``: ``H x W`` integers in ``{-1, 0, ..., C-1}`` (``-1`` ignored),
- ``depth``: ``H x W`` (or ``H x W x 1``) metres, ``0`` where invalid,
- ``normal``: ``H x W x 3`` in ``[-1, 1]``, all-zero where invalid,
- optional ``albedo`` and ``shading`` (``H x W x 3``, rendered scenes only: the true
  decomposition).

Every file's header (shape, dtype, length) is checked when the dataset is built, so an unreadable,
truncated or wrongly sized file of any split (the test split included) stops the run before
training; values (ranges, NaN) are checked as each sample is read.

Augmentation (when asked) draws from a generator seeded by
``derive_seed(augment_seed, "augment", epoch, index)`` (:mod:`scm.seeds`), so it does not depend on
workers, batch order or RNG state (see :meth:`MultiTaskNpyDataset.set_epoch`).

Samples come out channels-first: ``image (3,H,W)``, ``segmentation (H,W) int64``,
``depth (1,H,W)``, ``normal (3,H,W)``, ``albedo``/``shading (3,H,W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

from .augment import augment as augment_sample

TASK_FOLDERS = {"segmentation": "label", "depth": "depth", "normal": "normal"}
TRUTH_FOLDERS = ("albedo", "shading")
RANGE_TOLERANCE = 1e-4


def _index_of(path: Path) -> int | None:
    return int(path.stem) if path.stem.isdigit() else None


def load_npy(path: Path) -> np.ndarray:
    """``np.load`` without pickles; a missing or unreadable file is an error naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"data: missing file {path}") from None
    except (ValueError, OSError, EOFError) as error:
        raise InvalidParameterError(f"data: corrupt file {path} ({error})") from None


def npy_shape(path: Path) -> tuple[int, ...]:
    """The shape in the header of the ``.npy`` file ``path``, without reading its data; a file
    whose header is unreadable, holds objects (pickles) or promises more bytes than the file has
    is an error naming it."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            data_offset = handle.tell()
    except FileNotFoundError:
        raise FileNotFoundError(f"data: missing file {path}") from None
    except (ValueError, OSError, EOFError) as error:
        raise InvalidParameterError(f"data: corrupt file {path} ({error})") from None
    if dtype.hasobject:
        raise InvalidParameterError(f"data: corrupt file {path} (holds Python objects)")
    expected = data_offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise InvalidParameterError(
            f"data: corrupt file {path} (truncated: {size} bytes, the header needs {expected})"
        )
    return tuple(shape)


class MultiTaskNpyDataset(Dataset):
    """Samples of one split, optionally restricted to ``positions`` and augmented.

    ``resolution`` (``[H, W]``), when given, is the expected image size; any field whose size
    differs from its image, a label outside ``{-1..num_classes-1}``, an image outside ``[0, 1]``, or
    an unreadable file raises :class:`InvalidParameterError` naming the file and what was expected
    (shapes and unreadable files of the selected samples when the dataset is built).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        tasks: Sequence[str],
        num_classes: int,
        resolution: Sequence[int] | None = None,
        positions: Sequence[int] | None = None,
        augment: bool = False,
        augment_seed: int = 0,
        inverse_depth: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root: no such folder {self.root}")
        self.folder = self.root / split
        if not self.folder.is_dir():
            raise FileNotFoundError(
                f"data.root: missing split folder {self.folder} (expected <root>/{split}/image/...)"
            )
        unknown = [t for t in tasks if t not in TASK_FOLDERS]
        if unknown:
            raise InvalidParameterError(f"tasks: unknown {unknown}; expected {list(TASK_FOLDERS)}")
        self.tasks = list(tasks)
        self.num_classes = int(num_classes)
        self.resolution = tuple(resolution) if resolution is not None else None
        self.augment = augment
        self.augment_seed = augment_seed
        self.inverse_depth = inverse_depth
        self.epoch = 0
        image_folder = self.folder / "image"
        if not image_folder.is_dir():
            raise FileNotFoundError(f"data: missing folder {image_folder}")
        indices = sorted(i for p in image_folder.glob("*.npy") if (i := _index_of(p)) is not None)
        if not indices:
            raise FileNotFoundError(f"data: no <i>.npy files in {image_folder}")
        folders = [TASK_FOLDERS[t] for t in self.tasks]
        self.truth = [f for f in TRUTH_FOLDERS if (self.folder / f).is_dir()]
        for name in folders + self.truth:
            for index in indices:
                path = self.folder / name / f"{index}.npy"
                if not path.is_file():
                    raise FileNotFoundError(
                        f"data: missing file {path} (every image needs its {name})"
                    )
        self.indices = indices if positions is None else [indices[p] for p in positions]
        for index in self.indices:
            self._check_headers(index)

    def set_epoch(self, epoch: int) -> None:
        """Augmentations of sample ``i`` in epoch ``e`` depend on ``(augment_seed, e, i)`` only."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, name: str, index: int) -> tuple[np.ndarray, Path]:
        path = self.folder / name / f"{index}.npy"
        return load_npy(path), path

    def _check_image_shape(self, shape: tuple[int, ...], path: Path) -> tuple[int, int]:
        if len(shape) != 3 or shape[2] != 3:
            raise InvalidParameterError(f"data: {path} has shape {shape}, expected (H, W, 3)")
        if self.resolution is not None and shape[:2] != self.resolution:
            raise InvalidParameterError(
                f"data: {path} has size {shape[:2]}, expected {self.resolution} (data.resolution)"
            )
        return shape[0], shape[1]

    @staticmethod
    def _check_field_shape(shape: tuple[int, ...], path: Path, expected: tuple[int, ...]) -> None:
        if shape != expected:
            raise InvalidParameterError(
                f"data: {path} has shape {shape}, expected {expected} (the image's size)"
            )

    def _check_headers(self, index: int) -> None:
        """Every file of sample ``index`` is readable and has its image's size."""
        path = self.folder / "image" / f"{index}.npy"
        height, width = self._check_image_shape(npy_shape(path), path)
        for task in self.tasks:
            path = self.folder / TASK_FOLDERS[task] / f"{index}.npy"
            shape = npy_shape(path)
            if task == "depth" and len(shape) == 3 and shape[2] == 1:
                shape = shape[:2]
            channels = (3,) if task == "normal" else ()
            self._check_field_shape(shape, path, (height, width, *channels))
        for name in self.truth:
            path = self.folder / name / f"{index}.npy"
            self._check_field_shape(npy_shape(path), path, (height, width, 3))

    def _check_image(self, image: np.ndarray, path: Path) -> tuple[int, int]:
        self._check_image_shape(image.shape, path)
        if (
            not np.all(np.isfinite(image))
            or image.min() < -RANGE_TOLERANCE
            or (image.max() > 1 + RANGE_TOLERANCE)
        ):
            raise InvalidParameterError(f"data: {path} has values outside [0, 1]")
        return image.shape[0], image.shape[1]

    def _check_field(self, array: np.ndarray, path: Path, shape: tuple[int, ...]) -> None:
        self._check_field_shape(array.shape, path, shape)
        if not np.all(np.isfinite(array)):
            raise InvalidParameterError(f"data: {path} contains NaN or infinity")

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        index = self.indices[position]
        image, path = self._load("image", index)
        height, width = self._check_image(image, path)
        sample = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()}
        for task in self.tasks:
            array, path = self._load(TASK_FOLDERS[task], index)
            if task == "segmentation":
                self._check_field(array, path, (height, width))
                if not np.issubdtype(array.dtype, np.integer):
                    if np.any(array != np.round(array)):
                        raise InvalidParameterError(f"data: {path} holds non-integer labels")
                low, high = int(array.min()), int(array.max())
                if low < -1 or high >= self.num_classes:
                    raise InvalidParameterError(
                        f"data: {path} has labels in [{low}, {high}], expected -1 (ignore) or "
                        f"0..{self.num_classes - 1} (data.num_classes = {self.num_classes})"
                    )
                sample[task] = torch.from_numpy(array.astype(np.int64))
            elif task == "depth":
                if array.ndim == 3 and array.shape[2] == 1:
                    array = array[..., 0]
                self._check_field(array, path, (height, width))
                if array.min() < 0:
                    raise InvalidParameterError(f"data: {path} has negative depth")
                sample[task] = torch.from_numpy(array.astype(np.float32))[None]
            else:
                self._check_field(array, path, (height, width, 3))
                sample[task] = torch.from_numpy(
                    np.ascontiguousarray(array.astype(np.float32).transpose(2, 0, 1))
                )
        for name in self.truth:
            array, path = self._load(name, index)
            self._check_field(array, path, (height, width, 3))
            sample[name] = torch.from_numpy(
                np.ascontiguousarray(array.astype(np.float32).transpose(2, 0, 1))
            )
        if self.augment:
            generator = torch.Generator().manual_seed(
                derive_seed(self.augment_seed, "augment", self.epoch, index)
            )
            sample = augment_sample(sample, generator, self.inverse_depth)
        return sample
