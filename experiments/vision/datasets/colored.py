"""Colored-Cityscapes: a shortcut stress test built from the Cityscapes ``.npy`` layout.

Every labelled pixel ``p`` of class ``y(p)`` is tinted towards the colour of its class::

    x'(p) = (1 - a) x(p) + a c_e[y(p)]      (y(p) >= 0)
    x'(p) = x(p)                            (y(p) = -1, ignored pixels)

in sRGB ``[0, 1]``, with ``a = data.colored.strength`` in ``[0, 1]``. The class-colour map
``c_e`` depends on the environment ``e``:

- ``source``: ``c[k]`` = the colour of hue ``k / C`` at full saturation and value (``C`` classes,
  evenly spaced hues, so the colours are as distinct as hue allows);
- ``target``: ``c[pi(k)]`` with ``pi`` a uniformly random derangement of the classes drawn from
  ``data.colored.seed`` (:func:`coremtl.counterfactual.derangement`): no class keeps its colour,
  so a model that reads the colour instead of the scene is wrong on every class.

Labels, depth and normals are those of the underlying Cityscapes sample, unchanged. Training and
validation use ``source`` colours on ``<root>/train``; the test split is ``<root>/val`` in
``target`` colours. The colour is applied before augmentation, so a crop or flip moves the tint
with its pixels.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from scm.validation import InvalidParameterError

if TYPE_CHECKING:
    from ..config import DataConfig
    from .splits import Splits

ENVIRONMENTS = ("source", "target")


def class_palette(num_classes: int) -> np.ndarray:
    """``C x 3`` colours: hue ``k / C``, saturation 1, value 1 (sRGB in ``[0, 1]``)."""
    if num_classes < 2:
        raise InvalidParameterError(f"num_classes: expected at least 2, got {num_classes}")
    return np.array([colorsys.hsv_to_rgb(k / num_classes, 1.0, 1.0) for k in range(num_classes)])


def colour_permutation(num_classes: int, environment: str, seed: int) -> np.ndarray:
    """Identity for ``source``; a seeded derangement of the classes for ``target``."""
    from coremtl.counterfactual import derangement

    if environment not in ENVIRONMENTS:
        raise InvalidParameterError(
            f"environment: expected one of {list(ENVIRONMENTS)}, got {environment!r}"
        )
    if environment == "source":
        return np.arange(num_classes)
    generator = torch.Generator().manual_seed(seed)
    return derangement(num_classes, generator).numpy()


def colour_map(num_classes: int, environment: str, seed: int) -> np.ndarray:
    """``c_e``: row ``k`` is the colour class ``k`` takes in ``environment``."""
    return class_palette(num_classes)[colour_permutation(num_classes, environment, seed)]


def tint(image: Tensor, labels: Tensor, colours: Tensor, strength: float) -> Tensor:
    """``(1 - a) x + a c[y]`` on labelled pixels; ``image (3,H,W)``, ``labels (H,W)``."""
    labelled = labels >= 0
    target = colours[labels.clamp(min=0)].permute(2, 0, 1).to(image.dtype)
    blended = (1.0 - strength) * image + strength * target
    return torch.where(labelled[None], blended, image)


class ColoredDataset(Dataset):
    """Wraps a dataset whose samples carry ``segmentation`` and tints their images.

    ``keep_segmentation=False`` drops the label after use (when segmentation is not a task).
    """

    def __init__(
        self,
        dataset: Dataset,
        colours: np.ndarray,
        strength: float,
        keep_segmentation: bool = True,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise InvalidParameterError(
                f"data.colored.strength: expected a number in [0, 1], got {strength!r}"
            )
        self.dataset = dataset
        self.colours = torch.as_tensor(np.asarray(colours), dtype=torch.float32)
        self.strength = float(strength)
        self.keep_segmentation = keep_segmentation

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = dict(self.dataset[index])
        labels = sample["segmentation"]
        if int(labels.max()) >= self.colours.shape[0]:
            raise InvalidParameterError(
                f"data: sample {index} has label {int(labels.max())}, but the colour map has "
                f"{self.colours.shape[0]} classes"
            )
        sample["image"] = tint(sample["image"], labels, self.colours, self.strength)
        if not self.keep_segmentation:
            del sample["segmentation"]
        return sample


def colored_splits(config: DataConfig, seed: int) -> Splits:
    """Source colours on ``<root>/train`` (train and carved validation), target on ``val``."""
    from .npy import MultiTaskNpyDataset
    from .scenes_memory import AugmentedDataset
    from .splits import Splits, carve_validation

    options = config.colored
    tasks: Sequence[str] = ["segmentation"] + [t for t in config.tasks if t != "segmentation"]
    keep = "segmentation" in config.tasks
    common = {
        "root": config.root,
        "tasks": tasks,
        "num_classes": config.num_classes,
        "resolution": config.resolution,
    }
    full_train = MultiTaskNpyDataset(split="train", **common)
    train_positions, val_positions = carve_validation(
        len(full_train), config.val_fraction, config.split_seed
    )
    source = colour_map(config.num_classes, "source", options.seed)
    target = colour_map(config.num_classes, "target", options.seed)

    def coloured(split: str, positions, colours) -> ColoredDataset:
        base = MultiTaskNpyDataset(split=split, positions=positions, **common)
        return ColoredDataset(base, colours, options.strength, keep_segmentation=keep)

    train: Dataset = coloured("train", train_positions, source)
    if config.augment:
        train = AugmentedDataset(train, seed, config.inverse_depth)
    return Splits(
        train=train,
        val=coloured("train", val_positions, source),
        test=coloured("val", None, target),
    )
