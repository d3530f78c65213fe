"""The three splits of a run: training, validation (carved from training) and test.

For the ``.npy`` layout the test split is ``<root>/val`` (the customary reported split of NYUv2 and
Cityscapes); the validation split used for model selection is a seeded fraction of
``<root>/train`` that training never sees. The rendered scenes without a ``root`` are rendered in
memory: training and validation from the source environment, test from ``scenes.test_environment``.
CelebA (:mod:`.celeba`) trains on the official partition 0, selects models on partition 1 (or on a
carved part of partition 0, ``data.celeba.validation: carved``) and reports on partition 2.
GTA5 -> Cityscapes (:mod:`.gta5`) trains and validates on GTA5 and tests on the Cityscapes
``<data.gta5.target_root>/val``; Cityscapes-C (:mod:`.cityscapes_c`) trains on clean Cityscapes and
tests on its corrupted ``val``; Colored-Cityscapes (:mod:`.colored`) trains on source class colours
and tests on permuted ones.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, Subset

from ..config import DataConfig
from .npy import MultiTaskNpyDataset
from .splits import Splits, carve_validation

__all__ = ["Splits", "build_splits"]


def _count_training_files(root: Path) -> int:
    probe = MultiTaskNpyDataset(root, "train", [], num_classes=2)
    return len(probe)


def build_splits(config: DataConfig, seed: int) -> Splits:
    if config.dataset == "celeba":
        return _celeba_splits(config, seed)
    if config.dataset == "gta5":
        from .gta5 import gta5_splits

        return gta5_splits(config, seed)
    if config.dataset == "cityscapes_c":
        from .cityscapes_c import cityscapes_c_splits

        return cityscapes_c_splits(config, clean=_npy_splits(config, seed))
    if config.dataset == "colored_cityscapes":
        from .colored import colored_splits

        return colored_splits(config, seed)
    if config.root is None:
        return _scene_splits(config, seed)
    return _npy_splits(config, seed)


def _npy_splits(config: DataConfig, seed: int) -> Splits:
    root = Path(config.root)
    train_positions, val_positions = carve_validation(
        _count_training_files(root), config.val_fraction, config.split_seed
    )
    common = {
        "root": root,
        "tasks": config.tasks,
        "num_classes": config.num_classes,
        "resolution": config.resolution,
    }
    return Splits(
        train=MultiTaskNpyDataset(
            split="train",
            positions=train_positions,
            augment=config.augment,
            augment_seed=seed,
            inverse_depth=config.inverse_depth,
            **common,
        ),
        val=MultiTaskNpyDataset(split="train", positions=val_positions, **common),
        test=MultiTaskNpyDataset(split="val", **common),
    )


def _scene_splits(config: DataConfig, seed: int) -> Splits:
    from .scenes_memory import AugmentedDataset, scene_dataset

    scenes = config.scenes
    train_full = scene_dataset(config, "source", scenes.train_size, scenes.seed)
    train_positions, val_positions = carve_validation(
        scenes.train_size, config.val_fraction, config.split_seed
    )
    test = scene_dataset(config, scenes.test_environment, scenes.test_size, scenes.seed + 1)
    train: Dataset = Subset(train_full, train_positions)
    if config.augment:
        train = AugmentedDataset(train, seed)
    return Splits(
        train=train,
        val=Subset(train_full, val_positions),
        test=test,
    )


def _celeba_splits(config: DataConfig, seed: int) -> Splits:
    from .celeba import TEST, TRAIN, VALIDATION, CelebADataset, read_celeba_index

    index = read_celeba_index(config.root)
    common = {
        "index": index,
        "attributes": config.celeba.attributes,
        "resolution": config.resolution,
    }
    train_positions = val_positions = None
    val_partition = VALIDATION
    if config.celeba.validation == "carved":
        train_positions, val_positions = carve_validation(
            len(index.rows(TRAIN)), config.val_fraction, config.split_seed
        )
        val_partition = TRAIN
    return Splits(
        train=CelebADataset(
            partition=TRAIN,
            positions=train_positions,
            augment=config.augment,
            augment_seed=seed,
            **common,
        ),
        val=CelebADataset(partition=val_partition, positions=val_positions, **common),
        test=CelebADataset(partition=TEST, **common),
    )
