"""GTA5 as the source (training) set of the GTA5 -> Cityscapes shift.

On-disk format under ``data.root``::

    images/<stem>.png   RGB frames (any size; 8-bit)
    labels/<stem>.png   single-channel (mode ``L``, ``P`` or ``I``) Cityscapes label ids 0..33,
                        255 for void
    depth/<stem>.npy    H x W (or H x W x 1) depth in any unit proportional to metres; 0 or +inf
                        where there is no valid depth (e.g. sky)

Images, labels and depth are paired by file stem; a stem present in one folder and missing from
another, a file that cannot be decoded, a label id outside ``{0..33, 255}`` or fields of different
sizes raise an error naming the file.

**Labels** (Cordts et al., CVPR 2016, label table of ``cityscapesScripts``): every Cityscapes id
takes its *category*, the 7 classes of the MTAN / LibMTL Cityscapes ``.npy`` (Liu et al., CVPR
2019): ``0 flat`` (road, sidewalk, parking, rail track), ``1 construction`` (building, wall,
fence, guard rail, bridge, tunnel), ``2 object`` (pole, pole group, traffic light, traffic sign),
``3 nature`` (vegetation, terrain), ``4 sky``, ``5 human`` (person, rider), ``6 vehicle`` (car,
truck, bus, caravan, trailer, train, motorcycle, bicycle). The void category (ids 0..6: unlabeled,
ego vehicle, rectification border, out of roi, static, dynamic, ground) and 255 become ``-1``.

**Resizing** to ``data.resolution``: bilinear for the image (PIL, whose support widens with the
shrink factor, so downsampling is anti-aliased); nearest for labels and depth, both through the
same source-pixel grid ``src(i) = min(floor((i + 1/2) n_in / n_out), n_in - 1)``, so they stay
aligned.

**Depth scale.** The LibMTL / MTAN Cityscapes ``depth`` is the dataset's disparity, i.e. an
*inverse* depth ``c / d`` with an unstated constant ``c`` (the MTAN author's answer in
lorenmt/mtan issues 15 and 25), while GTA5 depth is a distance. Training on raw GTA5 depth and
testing on Cityscapes therefore scores a different quantity (a mistake of the reference
implementation). Each valid GTA5 depth ``d`` (``d > 0``, finite, and ``d <= max_depth`` when
``max_depth > 0``) is first put in the target's representation ``r(d) = 1 / d``
(``target_depth: inverse``) or ``r(d) = d`` (``target_depth: depth``), then multiplied by one
global factor ``s``; invalid pixels stay 0:

- ``depth_scaling: factor``: ``s = depth_factor`` as given;
- ``depth_scaling: median`` (default): ``s = median{D_T} / median{r(D_G)}``, the pooled medians of
  the valid target depths ``D_T`` of ``<target_root>/train/depth`` and of the valid GTA5 values of
  the GTA5 *training* positions, both at ``data.resolution``, over at most ``median_files`` files
  of each, evenly spaced. It is computed once per run from training data only (never the test
  split). For an inverse target ``T = c / d_metres`` and GTA5 depth ``k d_metres``, the factor
  estimates ``c k`` exactly when both sets share a median distance, which the matching assumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from scm.validation import InvalidParameterError

from .npy import load_npy

if TYPE_CHECKING:
    from ..config import DataConfig
    from .splits import Splits

VOID_ID = 255
NUM_CITYSCAPES_IDS = 34
CATEGORY_NAMES = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
CITYSCAPES_ID_CATEGORY = (
    (-1,) * 7  # 0-6: unlabeled, ego vehicle, rectification border, out of roi, static, dynamic,
    # ground (void)
    + (0,) * 4  # 7-10: road, sidewalk, parking, rail track
    + (1,) * 6  # 11-16: building, wall, fence, guard rail, bridge, tunnel
    + (2,) * 4  # 17-20: pole, polegroup, traffic light, traffic sign
    + (3,) * 2  # 21-22: vegetation, terrain
    + (4,)  # 23: sky
    + (5,) * 2  # 24-25: person, rider
    + (6,) * 8  # 26-33: car, truck, bus, caravan, trailer, train, motorcycle, bicycle
)
_NOT_AN_ID = -2
TASKS = ("segmentation", "depth")
FOLDERS = {"image": ("images", ".png"), "label": ("labels", ".png"), "depth": ("depth", ".npy")}


def _lookup_table() -> np.ndarray:
    table = np.full(256, _NOT_AN_ID, dtype=np.int64)
    table[:NUM_CITYSCAPES_IDS] = CITYSCAPES_ID_CATEGORY
    table[VOID_ID] = -1
    return table


LOOKUP = _lookup_table()


def map_cityscapes_ids(ids: np.ndarray, path: Path | str = "labels") -> np.ndarray:
    """Cityscapes label ids (0..33, 255 void) -> the 7 categories (``-1`` for void)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise InvalidParameterError(f"data: {path} holds non-integer label ids ({ids.dtype})")
    outside = (ids < 0) | (ids > 255)
    mapped = LOOKUP[np.clip(ids, 0, 255)]
    bad = outside | (mapped == _NOT_AN_ID)
    if np.any(bad):
        values = sorted(int(v) for v in np.unique(ids[bad])[:8])
        raise InvalidParameterError(
            f"data: {path} has label ids {values}, expected Cityscapes ids 0..33 or 255 (void)"
        )
    return mapped


def nearest_grid(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output pixel: ``min(floor((i + 1/2) n_in / n_out), n_in - 1)``."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out
    return np.minimum(centres.astype(np.int64), size_in - 1)


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows = nearest_grid(array.shape[0], size[0])
    cols = nearest_grid(array.shape[1], size[1])
    return array[rows[:, None], cols[None, :]]


@dataclass(frozen=True)
class GTA5Files:
    stem: str
    image: Path
    label: Path
    depth: Path | None


def pair_files(root: str | Path, with_depth: bool) -> list[GTA5Files]:
    """Files of ``root`` paired by stem, sorted by stem; every unpaired file is an error."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: no such folder {root} (expected the GTA5 folder)")
    kinds = ["image", "label"] + (["depth"] if with_depth else [])
    stems: dict[str, set[str]] = {}
    for kind in kinds:
        folder, suffix = FOLDERS[kind]
        if not (root / folder).is_dir():
            raise FileNotFoundError(
                f"data: missing folder {root / folder} (expected <root>/{folder}/*{suffix})"
            )
        stems[kind] = {p.stem for p in (root / folder).glob(f"*{suffix}")}
    if not stems["image"]:
        raise FileNotFoundError(f"data: no *.png files in {root / 'images'}")
    everything = set().union(*stems.values())
    for kind in kinds:
        missing = sorted(everything - stems[kind])
        if missing:
            folder, suffix = FOLDERS[kind]
            others = [k for k in kinds if missing[0] in stems[k]]
            raise FileNotFoundError(
                f"data: missing file {root / folder / (missing[0] + suffix)} "
                f"({len(missing)} stem(s) of {others} have no {kind})"
            )
    return [
        GTA5Files(
            stem=stem,
            image=root / "images" / f"{stem}.png",
            label=root / "labels" / f"{stem}.png",
            depth=root / "depth" / f"{stem}.npy" if with_depth else None,
        )
        for stem in sorted(everything)
    ]


def _open_png(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"data: missing file {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidParameterError(f"data: corrupt file {path} ({error})") from None
    return image


def load_label_ids(path: Path) -> np.ndarray:
    image = _open_png(path)
    if image.mode not in ("L", "P", "I", "I;16"):
        raise InvalidParameterError(
            f"data: {path} has mode {image.mode}, expected a single-channel image of Cityscapes "
            "label ids (L, P or I), not a colour-coded label"
        )
    return np.asarray(image).astype(np.int64)


def load_depth(path: Path) -> np.ndarray:
    array = load_npy(path)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise InvalidParameterError(
            f"data: {path} has shape {array.shape} ({array.dtype}), expected numeric (H, W)"
        )
    array = array.astype(np.float64)
    if np.isnan(array).any() or (array < 0).any():
        raise InvalidParameterError(
            f"data: {path} has NaN or negative depth (expected >= 0, 0 or +inf invalid)"
        )
    return array


class GTA5Dataset(Dataset):
    """GTA5 samples at ``resolution`` in the pipeline's sample format (see the module docstring).

    ``depth_scale`` is the factor ``s`` and ``target_depth`` the representation ``r`` of the
    module docstring; ``max_depth > 0`` marks raw depths above it invalid.
    """

    def __init__(
        self,
        files: Sequence[GTA5Files],
        tasks: Sequence[str],
        resolution: Sequence[int],
        depth_scale: float = 1.0,
        target_depth: str = "inverse",
        max_depth: float = 0.0,
    ) -> None:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise InvalidParameterError(
                f"data.tasks: GTA5 has {list(TASKS)} only, got {list(tasks)}"
            )
        if target_depth not in ("inverse", "depth"):
            raise InvalidParameterError(
                f"data.gta5.target_depth: expected 'inverse' or 'depth', got {target_depth!r}"
            )
        if "depth" in tasks and any(f.depth is None for f in files):
            raise InvalidParameterError("data.tasks: depth asked but the files carry no depth")
        self.files = list(files)
        self.tasks = list(tasks)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.depth_scale = float(depth_scale)
        self.target_depth = target_depth
        self.max_depth = float(max_depth)

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, positions: Sequence[int], depth_scale: float | None = None) -> GTA5Dataset:
        return GTA5Dataset(
            [self.files[p] for p in positions],
            self.tasks,
            self.resolution,
            self.depth_scale if depth_scale is None else depth_scale,
            self.target_depth,
            self.max_depth,
        )

    def _check_size(self, path: Path, size: tuple[int, int], image_size: tuple[int, int]) -> None:
        if size != image_size:
            raise InvalidParameterError(
                f"data: {path} has size {size}, expected {image_size} (the size of its image)"
            )

    def represented_depth(self, position: int, image_size: tuple[int, int] | None = None):
        """``r(d)`` at ``resolution`` (0 where invalid), before the factor ``s``."""
        files = self.files[position]
        raw = load_depth(files.depth)
        if image_size is not None:
            self._check_size(files.depth, raw.shape, image_size)
        raw = resize_nearest(raw, self.resolution)
        valid = (raw > 0) & np.isfinite(raw)
        if self.max_depth > 0:
            valid &= raw <= self.max_depth
        out = np.zeros_like(raw)
        out[valid] = 1.0 / raw[valid] if self.target_depth == "inverse" else raw[valid]
        return out

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        files = self.files[position]
        picture = _open_png(files.image).convert("RGB")
        image_size = (picture.height, picture.width)
        height, width = self.resolution
        resized = picture.resize((width, height), Image.Resampling.BILINEAR)
        image = np.asarray(resized, dtype=np.float32) / 255.0
        sample = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))}
        if "segmentation" in self.tasks:
            ids = load_label_ids(files.label)
            self._check_size(files.label, ids.shape, image_size)
            labels = map_cityscapes_ids(resize_nearest(ids, self.resolution), files.label)
            sample["segmentation"] = torch.from_numpy(labels)
        if "depth" in self.tasks:
            depth = self.represented_depth(position, image_size) * self.depth_scale
            sample["depth"] = torch.from_numpy(depth.astype(np.float32))[None]
        return sample


def evenly_spaced(count: int, limit: int) -> list[int]:
    """At most ``limit`` evenly spaced positions of ``0..count-1`` (all if ``count <= limit``)."""
    if count <= limit:
        return list(range(count))
    return sorted(set(np.rint(np.linspace(0, count - 1, limit)).astype(int).tolist()))


def median_depth_scale(
    source: GTA5Dataset, target_root: str | Path, resolution: Sequence[int], max_files: int
) -> float:
    """``s = median{D_T} / median{r(D_G)}`` over valid pixels (see the module docstring)."""
    from .npy import MultiTaskNpyDataset

    target = MultiTaskNpyDataset(target_root, "train", ["depth"], 2, resolution=resolution)
    target_values = [
        target[p]["depth"].numpy().ravel() for p in evenly_spaced(len(target), max_files)
    ]
    target_valid = np.concatenate(target_values)
    target_valid = target_valid[target_valid > 0]
    source_values = [
        source.represented_depth(p).ravel() for p in evenly_spaced(len(source), max_files)
    ]
    source_valid = np.concatenate(source_values)
    source_valid = source_valid[source_valid > 0]
    if target_valid.size == 0:
        raise InvalidParameterError(
            f"data.gta5.target_root: no valid (> 0) depth in {Path(target_root) / 'train/depth'}"
        )
    if source_valid.size == 0:
        raise InvalidParameterError(
            "data.gta5.depth_scaling: no valid GTA5 depth in the files used for the median "
            "(all 0, infinite or above data.gta5.max_depth)"
        )
    return float(np.median(target_valid) / np.median(source_valid))


def gta5_splits(config: DataConfig, seed: int) -> Splits:
    """Train and validate on GTA5 (validation carved from GTA5), test on ``<target_root>/val``."""
    from .npy import MultiTaskNpyDataset
    from .scenes_memory import AugmentedDataset
    from .splits import Splits, carve_validation

    options = config.gta5
    if options.target_root is None:
        raise InvalidParameterError(
            "data.gta5.target_root: expected the Cityscapes .npy folder (the test domain)"
        )
    if config.num_classes != len(CATEGORY_NAMES):
        raise InvalidParameterError(
            f"data.num_classes: GTA5 labels map to the {len(CATEGORY_NAMES)} Cityscapes "
            f"categories {list(CATEGORY_NAMES)}, got {config.num_classes}"
        )
    with_depth = "depth" in config.tasks
    everything = GTA5Dataset(
        pair_files(config.root, with_depth),
        config.tasks,
        config.resolution,
        target_depth=options.target_depth,
        max_depth=options.max_depth,
    )
    train_positions, val_positions = carve_validation(
        len(everything), config.val_fraction, config.split_seed
    )
    test = MultiTaskNpyDataset(
        options.target_root, "val", config.tasks, config.num_classes, config.resolution
    )
    scale = options.depth_factor
    if with_depth and options.depth_scaling == "median":
        scale = median_depth_scale(
            everything.subset(train_positions),
            options.target_root,
            config.resolution,
            options.median_files,
        )
    train: Dataset = everything.subset(train_positions, scale)
    if config.augment:
        train = AugmentedDataset(train, seed, config.inverse_depth)
    return Splits(train=train, val=everything.subset(val_positions, scale), test=test)
