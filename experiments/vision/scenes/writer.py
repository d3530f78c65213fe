"""Write a split of rendered scenes in the LibMTL / MTAN ``.npy`` layout, with the true intrinsics.

``<root>/<split>/{image,label,depth,normal,albedo,shading}/<i>.npy`` for ``i = 0..n-1``:

- ``image``: ``float32 (H, W, 3)`` sRGB in ``[0, 1]``;
- ``label``: ``int64 (H, W)`` in ``{-1, 0..C-1}`` (-1: sky, or the ground when it is not a class);
- ``depth``: ``float32 (H, W)`` camera ``z`` in metres, 0 where invalid (sky);
- ``normal``: ``float32 (H, W, 3)`` unit camera-frame normals (x right, y down, z forward) in
  ``[-1, 1]``, all-zero where invalid;
- ``albedo``, ``shading``: ``float32 (H, W, 3)`` linear RGB, ``albedo * shading`` the noiseless
  linear image (on sky: the sky radiance and 1);

and ``<root>/meta.json`` with the generator parameters, class names, seed and, per split, the
environment it was rendered in.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from scm.validation import InvalidParameterError, check_positive_int

from .config import SceneConfig
from .environments import ResidualDistribution
from .renderer import SceneRenderer

FOLDERS = {
    "image": "image",
    "segmentation": "label",
    "depth": "depth",
    "normal": "normal",
    "albedo": "albedo",
    "shading": "shading",
}
DTYPES = {"label": np.int64}
META_FILE = "meta.json"


def _to_disk_layout(name: str, values: np.ndarray) -> np.ndarray:
    """Channels-first batch entry to the on-disk ``(H, W[, 3])`` array of its documented dtype."""
    if values.ndim == 3:
        values = values.transpose(1, 2, 0)
        if values.shape[2] == 1:
            values = values[..., 0]
    return np.ascontiguousarray(values, dtype=DTYPES.get(name, np.float32))


def generator_metadata(config: SceneConfig) -> dict:
    """The JSON description of the semantic law and camera (shared by every split of a root)."""
    description = dataclasses.asdict(config)
    description.pop("object_classes")
    description["resolution"] = list(config.resolution)
    return {
        "generator": "coremtl rendered scenes (experiments.vision.scenes)",
        "config": json.loads(json.dumps(description)),
        "class_names": list(config.class_names),
        "num_classes": config.num_classes,
        "seed": config.seed,
        "conventions": {
            "camera_frame": "x right, y down, z forward",
            "depth": "camera z in metres, 0 invalid",
            "label": "-1 ignore (sky, or the ground when it is not a class)",
            "image": "sRGB in [0, 1]",
            "albedo_shading": "linear RGB; albedo * shading = noiseless linear image",
            "sh_lighting": "coremtl.lighting, Ramamoorthi & Hanrahan (2001) normalisation",
        },
        "dtypes": {
            folder: np.dtype(DTYPES.get(folder, np.float32)).name for folder in FOLDERS.values()
        },
        "splits": {},
    }


def _check_root(root: Path, split: str, metadata: dict, overwrite: bool) -> dict:
    meta_path = root / META_FILE
    if meta_path.is_file():
        existing = json.loads(meta_path.read_text())
        if existing.get("config") != metadata["config"]:
            raise InvalidParameterError(
                f"root: {meta_path} describes another generator configuration; write to a new "
                "root or use the same resolution, classes and seed"
            )
        metadata["splits"] = existing.get("splits", {})
    folder = root / split
    present = [folder / name for name in FOLDERS.values() if any((folder / name).glob("*.npy"))]
    if present and not overwrite:
        raise InvalidParameterError(
            f"root: split folder {folder} already holds samples; pass overwrite=True (--overwrite)"
        )
    for path in present:
        for old in path.glob("*.npy"):
            old.unlink()
    return metadata


def write_split(
    root: str | Path,
    split: str,
    n: int,
    environment: ResidualDistribution,
    config: SceneConfig | None = None,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> Path:
    """Render samples ``0..n-1`` of ``split`` in ``environment`` and write them under ``root``
    (module docstring); return the split folder."""
    from tqdm import tqdm

    n = check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(split, str) or not split or "/" in split or split.startswith("."):
        raise InvalidParameterError(f"split: expected a plain folder name, got {split!r}")
    renderer = SceneRenderer(config, device=device)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InvalidParameterError(f"root: {root} exists and is not a folder")
    metadata = _check_root(root, split, generator_metadata(renderer.config), overwrite)
    folder = root / split
    for name in FOLDERS.values():
        (folder / name).mkdir(parents=True, exist_ok=True)
    with tqdm(total=n, desc=f"render {split}", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            indices = list(range(start, min(start + batch_size, n)))
            batch = renderer.render(indices, split, environment)
            for key, values in batch.items():
                name = FOLDERS[key]
                array = values.cpu().numpy()
                for offset, index in enumerate(indices):
                    np.save(folder / name / f"{index}.npy", _to_disk_layout(name, array[offset]))
            bar.update(len(indices))
    metadata["splits"][split] = {"n": n, "environment": dataclasses.asdict(environment)}
    (root / META_FILE).write_text(json.dumps(metadata, indent=2))
    return folder
