"""The semantic factors of one scene: which primitives stand where, drawn from the seeded layout law.

Each sample's random stream is derived from ``(seed, split, index)`` only, never from the
environment, so the same index has the same layout (hence the same labels, depth and normals) in
the source and the target environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

from .config import SHAPES, SceneConfig

SEMANTIC_STREAM = 0
RESIDUAL_STREAM = 1


def sample_seed(seed: int, split: str, index: int, stream: int) -> int:
    """The seed of one factor stream (semantic or residual) of sample ``index``:
    ``derive_seed(seed, "scene", split, stream, index)`` (:mod:`scm.seeds`)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise InvalidParameterError(f"index: expected a non-negative integer, got {index!r}")
    return derive_seed(seed, "scene", split, stream, int(index))


@dataclass(frozen=True)
class Layout:
    """Primitives of one scene in the world frame (``y`` up, ground ``y = 0``), one row each.

    ``class_ids (M,)`` labels, ``shapes (M,)`` indices into :data:`SHAPES`, ``centres (M, 3)``
    the centre of each primitive, ``half_sizes (M, 3)`` its half-extents along its local axes
    (``(r, r, r)`` for a sphere, ``(a_x, h/2, a_z)`` for a box, ``(r, h/2, r)`` for a vertical
    cylinder), ``yaws (M,)`` its rotation about the vertical axis.
    """

    class_ids: np.ndarray
    shapes: np.ndarray
    centres: np.ndarray
    half_sizes: np.ndarray
    yaws: np.ndarray

    def __len__(self) -> int:
        return int(self.class_ids.shape[0])


def sample_layout(config: SceneConfig, rng: np.random.Generator) -> Layout:
    """Draw one layout from the semantic law of :class:`SceneConfig` (see its docstring)."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    choices = np.asarray(config.object_classes)
    class_ids = choices[rng.integers(0, choices.size, size=count)]
    half_tan = math.tan(math.radians(config.fov_deg) / 2)
    z = rng.uniform(config.near, config.far_objects, size=count)
    x = rng.uniform(-1.0, 1.0, size=count) * 0.8 * z * half_tan
    radius_draw = rng.uniform(size=(count, 2))
    height_draw = rng.uniform(size=count)
    yaws = rng.uniform(0.0, math.pi, size=count)
    shapes = np.empty(count, dtype=np.int64)
    centres = np.empty((count, 3))
    half_sizes = np.empty((count, 3))
    for row, class_id in enumerate(class_ids):
        scene_class = config.classes[class_id]
        low, high = scene_class.radius
        radii = low + (high - low) * radius_draw[row]
        height_low, height_high = scene_class.height
        height = height_low + (height_high - height_low) * height_draw[row]
        shapes[row] = SHAPES.index(scene_class.shape)
        if scene_class.shape == "sphere":
            half_sizes[row] = (radii[0], radii[0], radii[0])
        elif scene_class.shape == "box":
            half_sizes[row] = (radii[0], height / 2, radii[1])
        else:
            half_sizes[row] = (radii[0], height / 2, radii[0])
        centres[row] = (x[row], half_sizes[row, 1], z[row])
    return Layout(class_ids.astype(np.int64), shapes, centres, half_sizes, yaws)
