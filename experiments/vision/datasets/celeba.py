"""CelebA in its official layout: aligned faces and their 40 binary attributes.

CelebA (Liu, Luo, Wang and Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015) as
distributed by its authors, under ``<root>``:

- ``img_align_celeba/<file>.jpg``: the aligned and cropped faces (JPEG, 178 x 218);
- ``list_attr_celeba.txt``: line 1 the number of images ``N``; line 2 the attribute names (40,
  separated by spaces); then ``N`` lines ``<file> <v_1> ... <v_40>``, ``v_j`` in ``{-1, 1}``
  (``1``: the face has attribute ``j``), fields separated by runs of spaces;
- ``list_eval_partition.txt``: ``N`` lines ``<file> <p>``, ``p`` = ``0`` (train), ``1``
  (validation) or ``2`` (test), and no header.

:func:`read_celeba_index` parses and cross-checks the two lists (every malformed line, repeated
file, count that disagrees with line 1, file listed in one list only, or image absent from
``img_align_celeba/`` is an error naming the file, and the line where there is one).
:class:`CelebADataset` serves one partition, restricted to chosen attributes, as

- ``image``: ``(3, H, W)`` float32 in ``[0, 1]``: the largest centred window of the face with
  the aspect ratio ``H : W``, resized to ``(H, W)`` by PIL's bilinear filter (antialiased when
  shrinking), so faces are never stretched;
- ``attributes``: ``(K,)`` float32 in ``{0, 1}``, ``(v + 1) / 2`` for the chosen attributes, in the
  chosen order;
- ``<name>`` for each chosen attribute: its label alone, a float32 scalar (the target of the task
  ``<name>``, as the dense datasets keep each task's target under the task's name).

Augmentation (training, when asked): a horizontal flip with probability 1/2, drawn from a
generator seeded by ``derive_seed(augment_seed, "augment", epoch, row)``; the 40 attributes do
not change under mirroring, so labels are left as they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

from ..attributes import ATTRIBUTES_KEY

IMAGE_FOLDER = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
TRAIN, VALIDATION, TEST = 0, 1, 2
PARTITION_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test"}
_ATTRIBUTE_VALUES = frozenset({"1", "-1"})
_PARTITION_VALUES = {"0": TRAIN, "1": VALIDATION, "2": TEST}


def _read_lines(path: Path) -> list[str]:
    """The lines of a text file without trailing blank lines; missing or undecodable: an error."""
    if not path.is_file():
        raise FileNotFoundError(f"data: missing CelebA file {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InvalidParameterError(f"data: {path} is not a text file ({error})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _first_repeat(files: Sequence[str]) -> int | None:
    seen: set[str] = set()
    for position, name in enumerate(files):
        if name in seen:
            return position
        seen.add(name)
    return None


def read_attribute_file(path: str | Path) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """``(names, files, labels)`` of ``list_attr_celeba.txt``; ``labels`` is ``(N, len(names))``
    int8 in ``{-1, 1}``, row ``i`` for ``files[i]``."""
    path = Path(path)
    lines = _read_lines(path)
    if len(lines) < 2:
        raise InvalidParameterError(
            f"data: {path} has {len(lines)} line(s); expected the image count on line 1 and the "
            "attribute names on line 2"
        )
    count_fields = lines[0].split()
    if len(count_fields) != 1 or not count_fields[0].isdigit():
        raise InvalidParameterError(
            f"data: {path}, line 1: expected the number of images, got {lines[0]!r}"
        )
    count = int(count_fields[0])
    names = tuple(lines[1].split())
    if not names:
        raise InvalidParameterError(f"data: {path}, line 2: expected the attribute names, got none")
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise InvalidParameterError(f"data: {path}, line 2: repeated attribute names {repeated}")
    body = lines[2:]
    if len(body) != count:
        raise InvalidParameterError(
            f"data: {path}: line 1 announces {count} images, the file lists {len(body)}"
        )
    files: list[str] = []
    rows: list[list[str]] = []
    for offset, line in enumerate(body):
        fields = line.split()
        if len(fields) != len(names) + 1 or not _ATTRIBUTE_VALUES.issuperset(fields[1:]):
            raise InvalidParameterError(
                f"data: {path}, line {offset + 3}: expected '<file> <{len(names)} values, each -1 "
                f"or 1>', got {line!r}"
            )
        files.append(fields[0])
        rows.append(fields[1:])
    repeat = _first_repeat(files)
    if repeat is not None:
        raise InvalidParameterError(
            f"data: {path}, line {repeat + 3}: {files[repeat]!r} is listed a second time"
        )
    labels = np.array(rows, dtype=np.int8).reshape(count, len(names))
    return names, files, labels


def read_partition_file(path: str | Path) -> dict[str, int]:
    """The partition (``0`` train, ``1`` validation, ``2`` test) of every file of
    ``list_eval_partition.txt``."""
    path = Path(path)
    partitions: dict[str, int] = {}
    for offset, line in enumerate(_read_lines(path)):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in _PARTITION_VALUES:
            raise InvalidParameterError(
                f"data: {path}, line {offset + 1}: expected '<file> <0, 1 or 2>', got {line!r}"
            )
        if fields[0] in partitions:
            raise InvalidParameterError(
                f"data: {path}, line {offset + 1}: {fields[0]!r} is listed a second time"
            )
        partitions[fields[0]] = _PARTITION_VALUES[fields[1]]
    if not partitions:
        raise InvalidParameterError(f"data: {path} lists no image")
    return partitions


@dataclass(frozen=True)
class CelebAIndex:
    """The parsed, cross-checked lists of one CelebA root; row ``i`` describes ``files[i]``."""

    root: Path
    names: tuple[str, ...]
    files: tuple[str, ...]
    labels: np.ndarray
    partitions: np.ndarray

    def rows(self, partition: int) -> np.ndarray:
        """Rows of ``partition`` in the order of ``list_attr_celeba.txt``."""
        return np.flatnonzero(self.partitions == partition)

    def columns(self, attributes: Sequence[str]) -> list[int]:
        """Label columns of ``attributes``; a name absent from the file's line 2 is an error."""
        unknown = [name for name in attributes if name not in self.names]
        if unknown:
            raise InvalidParameterError(
                f"data.celeba.attributes: {unknown} not among the attributes on line 2 of "
                f"{self.root / ATTRIBUTE_FILE} ({list(self.names)})"
            )
        return [self.names.index(name) for name in attributes]


def read_celeba_index(root: str | Path) -> CelebAIndex:
    """Parse ``<root>``'s attribute and partition lists and check them against each other and
    against the images present in ``<root>/img_align_celeba``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: no such folder {root}")
    image_folder = root / IMAGE_FOLDER
    if not image_folder.is_dir():
        raise FileNotFoundError(f"data: missing CelebA image folder {image_folder}")
    names, files, labels = read_attribute_file(root / ATTRIBUTE_FILE)
    partition_of = read_partition_file(root / PARTITION_FILE)
    unlisted = [name for name in files if name not in partition_of]
    if unlisted:
        raise InvalidParameterError(
            f"data: {len(unlisted)} image(s) of {root / ATTRIBUTE_FILE} are missing from "
            f"{root / PARTITION_FILE}, first {unlisted[0]!r}"
        )
    if len(partition_of) != len(files):
        listed = set(files)
        extra = next(name for name in partition_of if name not in listed)
        raise InvalidParameterError(
            f"data: {root / PARTITION_FILE} lists {len(partition_of)} images, "
            f"{root / ATTRIBUTE_FILE} {len(files)}; {extra!r} has no attributes"
        )
    present = {entry.name for entry in os.scandir(image_folder)}
    missing = [name for name in files if name not in present]
    if missing:
        raise FileNotFoundError(
            f"data: {len(missing)} listed image(s) missing from {image_folder}, first "
            f"{image_folder / missing[0]}"
        )
    partitions = np.array([partition_of[name] for name in files], dtype=np.int8)
    return CelebAIndex(root, names, tuple(files), labels, partitions)


def centred_box(width: int, height: int, aspect: float) -> tuple[float, float, float, float]:
    """The largest centred ``(left, top, right, bottom)`` window of a ``width x height`` image
    whose height-to-width ratio is ``aspect``."""
    if height > aspect * width:
        crop = aspect * width
        top = (height - crop) / 2.0
        return 0.0, top, float(width), top + crop
    crop = height / aspect
    left = (width - crop) / 2.0
    return left, 0.0, left + crop, float(height)


def load_face(path: Path, height: int, width: int) -> torch.Tensor:
    """The JPEG at ``path`` as ``(3, height, width)`` float32 in ``[0, 1]`` (centred window of the
    target aspect ratio, bilinear resize)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"data: missing image {path}") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidParameterError(f"data: {path} is not a readable JPEG ({error})") from None
    box = centred_box(rgb.width, rgb.height, height / width)
    resized = rgb.resize((width, height), Image.Resampling.BILINEAR, box=box)
    pixels = torch.from_numpy(np.array(resized, dtype=np.uint8))
    return pixels.permute(2, 0, 1).float().div(255.0).contiguous()


class CelebADataset(Dataset):
    """The faces of one partition of ``index`` with the labels of ``attributes``.

    ``positions`` (indices into the partition's rows, in file order) restricts it, e.g. to a
    validation part carved from the training partition; ``resolution`` is ``[H, W]``.
    """

    def __init__(
        self,
        index: CelebAIndex,
        partition: int,
        attributes: Sequence[str],
        resolution: Sequence[int],
        positions: Sequence[int] | None = None,
        augment: bool = False,
        augment_seed: int = 0,
    ) -> None:
        if partition not in PARTITION_NAMES:
            raise InvalidParameterError(
                f"partition: expected one of {sorted(PARTITION_NAMES)}, got {partition!r}"
            )
        if len(resolution) != 2 or not all(int(r) > 0 for r in resolution):
            raise InvalidParameterError(
                f"data.resolution: expected [height, width], positive, got {resolution!r}"
            )
        if not attributes:
            raise InvalidParameterError("data.celeba.attributes: expected at least one attribute")
        columns = index.columns(attributes)
        rows = index.rows(partition)
        if positions is not None:
            rows = rows[np.asarray(positions, dtype=np.int64)]
        if len(rows) == 0:
            raise InvalidParameterError(
                f"data: {index.root / PARTITION_FILE} puts no image in partition {partition} "
                f"({PARTITION_NAMES[partition]})"
            )
        self.root = index.root
        self.partition = partition
        self.attributes = list(attributes)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.rows = rows
        self.files = [index.files[row] for row in rows]
        self.labels = torch.from_numpy((index.labels[np.ix_(rows, columns)] > 0).astype(np.float32))
        self.augment = augment
        self.augment_seed = augment_seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Flips of sample ``i`` in epoch ``e`` depend on ``(augment_seed, e, row)`` only."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        path = self.root / IMAGE_FOLDER / self.files[position]
        image = load_face(path, *self.resolution)
        if self.augment:
            seed = derive_seed(self.augment_seed, "augment", self.epoch, int(self.rows[position]))
            if float(torch.rand((), generator=torch.Generator().manual_seed(seed))) < 0.5:
                image = image.flip(-1)
        labels = self.labels[position].clone()
        sample = {"image": image, ATTRIBUTES_KEY: labels}
        sample.update(zip(self.attributes, labels.unbind(), strict=True))
        return sample
