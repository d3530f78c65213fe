"""Rendered scenes: the vision-level SCM with known semantic and residual factors for every pixel.

Semantic factors (a ground plane and primitives of several classes, their positions and sizes) fix
segmentation, depth and normals by exact ray casting (:mod:`.geometry`); residual factors (albedo
palette, procedural texture, order-2 SH lighting, sensor noise; :mod:`.environments`,
:mod:`.appearance`) fix appearance only. Source and target environments share the semantic law and
differ in the residual one by a shift in ``[0, 1]``.
"""

from .config import DEFAULT_CLASSES, SHAPES, SceneClass, SceneConfig
from .dataset import RenderedScenes
from .environments import (
    ENVIRONMENTS,
    ResidualDistribution,
    hue_derangement,
    make_environment,
    permuted_environment,
)
from .renderer import FIELDS, SceneRenderer
from .writer import write_split

__all__ = [
    "DEFAULT_CLASSES",
    "ENVIRONMENTS",
    "FIELDS",
    "SHAPES",
    "RenderedScenes",
    "ResidualDistribution",
    "SceneClass",
    "SceneConfig",
    "SceneRenderer",
    "hue_derangement",
    "make_environment",
    "permuted_environment",
    "write_split",
]
