"""Tiny datasets in the exact LibMTL ``.npy`` layout, for tests, smoke runs and benchmarks.

Each image is a few axis-aligned rectangles of random classes on a background class; a class fixes
the colour (plus noise), the depth and the surface normal of its pixels, so the tasks are learnable.
A border of ignored label ``-1``, invalid depth ``0`` and invalid (all-zero) normals exercises the
masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_dataset(
    root: str | Path,
    num_train: int = 8,
    num_test: int = 4,
    height: int = 32,
    width: int = 48,
    num_classes: int = 13,
    with_normals: bool = True,
    seed: int = 0,
) -> Path:
    """Write ``<root>/{train,val}/{image,label,depth[,normal]}/<i>.npy``; return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0.1, 0.9, size=(num_classes, 3))
    depths = rng.uniform(1.0, 8.0, size=num_classes)
    normals = rng.normal(size=(num_classes, 3))
    normals[:, 2] = -np.abs(normals[:, 2]) - 0.5
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    for split, count in (("train", num_train), ("val", num_test)):
        folders = ["image", "label", "depth"] + (["normal"] if with_normals else [])
        for folder in folders:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            label = np.zeros((height, width), dtype=np.int64)
            for _ in range(3):
                top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
                h, w = rng.integers(height // 4, height // 2), rng.integers(width // 4, width // 2)
                label[top : top + h, left : left + w] = rng.integers(1, num_classes)
            label[0, :] = -1
            image = colours[np.maximum(label, 0)] + rng.normal(0.0, 0.03, size=(height, width, 3))
            depth = depths[np.maximum(label, 0)]
            normal = normals[np.maximum(label, 0)]
            depth[label < 0] = 0.0
            normal[label < 0] = 0.0
            np.save(
                root / split / "image" / f"{index}.npy", np.clip(image, 0, 1).astype(np.float32)
            )
            np.save(root / split / "label" / f"{index}.npy", label.astype(np.float32))
            np.save(root / split / "depth" / f"{index}.npy", depth.astype(np.float32))
            if with_normals:
                np.save(root / split / "normal" / f"{index}.npy", normal.astype(np.float32))
    return root
