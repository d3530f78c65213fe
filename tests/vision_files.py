"""Tiny data sets written in each data set's own on-disk format, for the vision tests: CelebA's
official files, GTA5's PNG frames and depth, the Cityscapes ``.npy`` layout, a Cityscapes-C tree,
and the ``data`` section of a config pointing at each out-of-distribution set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from experiments.vision.attributes import CELEBA_ATTRIBUTES
from experiments.vision.datasets.celeba import (
    ATTRIBUTE_FILE,
    IMAGE_FOLDER,
    PARTITION_FILE,
    TEST,
    TRAIN,
    VALIDATION,
)
from experiments.vision.datasets.cityscapes_c import write_corrupted_tree
from experiments.vision.datasets.synthetic import write_tiny_dataset

PARTITIONS = [TRAIN] * 8 + [VALIDATION] * 3 + [TEST] * 3
"""The CelebA partition of every written face: 8 training, 3 validation, 3 test."""
IMAGE_SIZE = (18, 22)
"""Width and height of the written faces: CelebA's 178 x 218 shape, scaled down."""
CITYSCAPES_SIZE = (16, 32)
"""Height and width of the written Cityscapes files."""
VALID_IDS = np.array([*range(34), 255])
"""The Cityscapes label ids a GTA5 frame may hold (255: void)."""


def write_celeba(
    root: Path,
    partitions: list[int] = PARTITIONS,
    seed: int = 0,
    newline: str = "\n",
    size: tuple[int, int] = IMAGE_SIZE,
) -> np.ndarray:
    """Write ``root/{img_align_celeba/*.jpg, list_attr_celeba.txt, list_eval_partition.txt}`` as
    CelebA ships them; return the ``(N, 40)`` labels in ``{-1, 1}``. Attribute ``j < 3`` of a face
    brightens colour channel ``j``, so the first attributes can be learnt from pixels."""
    rng = np.random.default_rng(seed)
    count = len(partitions)
    labels = rng.choice([-1, 1], size=(count, len(CELEBA_ATTRIBUTES)))
    files = [f"{i + 1:06d}.jpg" for i in range(count)]
    (root / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    for name, row in zip(files, labels, strict=True):
        pixels = rng.uniform(0.0, 0.3, size=(size[1], size[0], 3))
        pixels += 0.6 * (row[:3] > 0)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(root / IMAGE_FOLDER / name, "JPEG")
    lines = [str(count), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [
        f"{name} " + " ".join(f"{v:2d}" for v in row)
        for name, row in zip(files, labels, strict=True)
    ]
    (root / ATTRIBUTE_FILE).write_bytes((newline.join(lines) + newline).encode())
    entries = [f"{name} {p}" for name, p in zip(files, partitions, strict=True)]
    (root / PARTITION_FILE).write_bytes((newline.join(entries) + newline).encode())
    return labels


def write_gta5(
    root: Path,
    count: int = 6,
    size: tuple[int, int] = (24, 40),
    seed: int = 0,
    depth_of_id=None,
) -> Path:
    """``images/*.png`` (RGB), ``labels/*.png`` (mode L, Cityscapes ids), ``depth/*.npy``."""
    rng = np.random.default_rng(seed)
    for folder in ("images", "labels", "depth"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        stem = f"{i:05d}"
        image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        ids = rng.choice(VALID_IDS, size=size).astype(np.uint8)
        if depth_of_id is None:
            depth = rng.uniform(2.0, 80.0, size=size)
            depth[0, :3] = 0.0
            depth[1, :2] = np.inf
        else:
            depth = depth_of_id(ids)
        Image.fromarray(image).save(root / "images" / f"{stem}.png")
        Image.fromarray(ids, mode="L").save(root / "labels" / f"{stem}.png")
        np.save(root / "depth" / f"{stem}.npy", depth.astype(np.float32))
    return root


def write_cityscapes(root: Path, num_train: int = 6, num_test: int = 3, **kwargs) -> Path:
    """The Cityscapes ``.npy`` layout (7 classes, segmentation and depth, no normals)."""
    return write_tiny_dataset(
        root,
        num_train=num_train,
        num_test=num_test,
        height=kwargs.pop("height", CITYSCAPES_SIZE[0]),
        width=kwargs.pop("width", CITYSCAPES_SIZE[1]),
        num_classes=7,
        with_normals=False,
        **kwargs,
    )


def shift_corruption(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """A stand-in corruption: a seed-dependent brightness shift scaled by the severity."""
    offset = 10 * severity + seed % 7
    return np.clip(image.astype(np.int64) + offset, 0, 255).astype(np.uint8)


def ood_data_section(name: str, tmp_path: Path) -> dict:
    """The ``data`` section of out-of-distribution set ``name`` (``gta5``, ``cityscapes_c`` or
    ``colored_cityscapes``), its files written under ``tmp_path``."""
    city = write_cityscapes(tmp_path / "city", num_train=8, num_test=4)
    if name == "gta5":
        gta = write_gta5(tmp_path / "gta5", count=10, size=(20, 36))
        return {"dataset": "gta5", "root": str(gta), "gta5": {"target_root": str(city)}}
    if name == "cityscapes_c":
        tree = tmp_path / "tree"
        write_corrupted_tree(city, tree, ["shift"], severities=[2], corrupt=shift_corruption)
        return {
            "dataset": "cityscapes_c",
            "root": str(city),
            "corruption": {"root": str(tree), "name": "shift", "severity": 2},
        }
    return {"dataset": "colored_cityscapes", "root": str(city), "colored": {"seed": 1}}
