"""The rendered scenes (``experiments.vision.scenes``) rendered in memory as a split of a run."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

from ..config import DataConfig
from .augment import augment


class AugmentedDataset(Dataset):
    """Applies the standard augmentation with a generator seeded by
    ``derive_seed(seed, "augment", epoch, index)``.

    :meth:`__getitems__` fetches a whole batch from the wrapped dataset at once (through its own
    ``__getitems__`` when it has one, as :class:`~experiments.vision.scenes.RenderedScenes` and
    ``torch.utils.data.Subset`` do, so the scenes of a batch are rendered together) and augments
    each sample with its own generator: sample ``i`` is the same whatever the batch.
    """

    def __init__(self, dataset: Dataset, seed: int, inverse_depth: bool = False) -> None:
        self.dataset = dataset
        self.seed = seed
        self.inverse_depth = inverse_depth
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def _generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.seed, "augment", self.epoch, index))

    def __getitem__(self, index: int):
        return augment(self.dataset[index], self._generator(index), self.inverse_depth)

    def __getitems__(self, indices: Sequence[int]) -> list:
        indices = list(indices)
        fetch = getattr(self.dataset, "__getitems__", None)
        samples = fetch(indices) if callable(fetch) else [self.dataset[i] for i in indices]
        return [
            augment(sample, self._generator(index), self.inverse_depth)
            for index, sample in zip(indices, samples, strict=True)
        ]


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
