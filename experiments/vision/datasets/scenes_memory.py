"""The rendered scenes (``experiments.vision.scenes``) rendered in memory as a split of a run."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from scm.validation import InvalidParameterError

from ..config import DataConfig
from .augment import augment


class AugmentedDataset(Dataset):
    """Applies the standard augmentation with a generator seeded by ``(seed, epoch, index)``."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) % (2**63))
        return augment(self.dataset[index], generator)


def scene_dataset(config: DataConfig, environment: str, size: int, seed: int) -> Dataset:
    """``size`` scenes of ``environment`` at ``data.resolution``; checks ``data.num_classes``."""
    from ..scenes import RenderedScenes

    split = "train" if environment == "source" and seed == config.scenes.seed else "test"
    dataset = RenderedScenes(
        size,
        split=split,
        environment=environment,
        shift=config.scenes.shift,
        resolution=config.resolution,
        seed=seed,
    )
    if dataset.num_classes != config.num_classes:
        raise InvalidParameterError(
            f"data.num_classes: the rendered scenes have {dataset.num_classes} classes "
            f"{list(dataset.class_names)}, got {config.num_classes}"
        )
    return dataset
