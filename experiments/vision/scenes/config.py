"""Parameters of the scene generator that do not depend on the environment: classes, layout, camera.

Everything here is a *semantic* or fixed factor: it decides segmentation, depth and normals and is
shared by the source and the target environment (the residual, appearance-only factors live in
:mod:`.environments`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scm.validation import InvalidParameterError, check_positive_int

SHAPES = ("plane", "sphere", "box", "cylinder")


def _check_range(value: tuple[float, float], name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected a pair (low, high), got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high < low:
        raise InvalidParameterError(
            f"{name}: expected positive sizes with low <= high, got ({low}, {high})"
        )
    return low, high


@dataclass(frozen=True)
class SceneClass:
    """A semantic class: its name, its primitive and the uniform ranges of its size in metres.

    ``radius``: sphere radius, cylinder radius, or each half-width of a box (drawn independently
    along its two horizontal axes); ``height``: full height of a box or cylinder (unused for a
    sphere or the ground plane).
    """

    name: str
    shape: str
    radius: tuple[float, float] = (0.3, 0.6)
    height: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidParameterError(
                f"classes: expected a non-empty class name, got {self.name!r}"
            )
        if self.shape not in SHAPES:
            raise InvalidParameterError(
                f"classes[{self.name}].shape: expected one of {list(SHAPES)}, got {self.shape!r}"
            )
        object.__setattr__(
            self, "radius", _check_range(self.radius, f"classes[{self.name}].radius")
        )
        object.__setattr__(
            self, "height", _check_range(self.height, f"classes[{self.name}].height")
        )


DEFAULT_CLASSES = (
    SceneClass("floor", "plane"),
    SceneClass("ball", "sphere", radius=(0.25, 0.6)),
    SceneClass("crate", "box", radius=(0.2, 0.5), height=(0.4, 1.0)),
    SceneClass("pillar", "box", radius=(0.1, 0.2), height=(1.2, 2.2)),
    SceneClass("drum", "cylinder", radius=(0.15, 0.35), height=(0.5, 1.4)),
)


@dataclass(frozen=True)
class SceneConfig:
    """The semantic distribution and the camera.

    A scene is the ground plane ``y = 0`` (world frame: ``y`` up) and between ``min_objects`` and
    ``max_objects`` primitives resting on it, of classes drawn uniformly from the non-plane
    classes, at ground positions ``z ~ U(near, far_objects)`` and ``x ~ U(-1, 1) 0.8 z
    tan(fov/2)`` (inside the field of view), with yaw ``~ U(0, pi)``. The pinhole camera sits at
    height ``camera_height`` above the origin, pitched down by ``camera_pitch_deg``, with horizontal
    field of view ``fov_deg`` and square pixels; surfaces further than ``max_depth`` are sky.
    """

    resolution: tuple[int, int] = (64, 64)
    classes: tuple[SceneClass, ...] = DEFAULT_CLASSES
    min_objects: int = 2
    max_objects: int = 5
    near: float = 2.0
    far_objects: float = 6.0
    fov_deg: float = 60.0
    camera_height: float = 1.6
    camera_pitch_deg: float = 25.0
    max_depth: float = 12.0
    texture: bool = True
    seed: int = 0
    object_classes: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            height, width = self.resolution
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"resolution: expected (height, width), got {self.resolution!r}"
            ) from None
        object.__setattr__(
            self,
            "resolution",
            (check_positive_int(height, "resolution"), check_positive_int(width, "resolution")),
        )
        classes = tuple(self.classes)
        if not classes:
            raise InvalidParameterError("classes: expected at least one class, got an empty list")
        for scene_class in classes:
            if not isinstance(scene_class, SceneClass):
                raise InvalidParameterError(
                    f"classes: expected SceneClass entries, got {type(scene_class).__name__}"
                )
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            raise InvalidParameterError(f"classes: expected distinct names, got {names}")
        if sum(c.shape == "plane" for c in classes) > 1:
            raise InvalidParameterError("classes: expected at most one 'plane' class (the ground)")
        object_classes = tuple(i for i, c in enumerate(classes) if c.shape != "plane")
        if not object_classes:
            raise InvalidParameterError("classes: expected at least one non-plane (object) class")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "object_classes", object_classes)
        check_positive_int(self.min_objects, "min_objects")
        check_positive_int(self.max_objects, "max_objects")
        if self.max_objects < self.min_objects:
            raise InvalidParameterError(
                f"max_objects: expected >= min_objects = {self.min_objects}, got {self.max_objects}"
            )
        for name in ("near", "far_objects", "camera_height", "max_depth"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidParameterError(f"{name}: expected a positive number, got {value!r}")
        if self.far_objects < self.near:
            raise InvalidParameterError(
                f"far_objects: expected >= near = {self.near}, got {self.far_objects}"
            )
        if not 0 < self.fov_deg < 180:
            raise InvalidParameterError(
                f"fov_deg: expected a value in (0, 180), got {self.fov_deg}"
            )
        if not -90 < self.camera_pitch_deg < 90:
            raise InvalidParameterError(
                f"camera_pitch_deg: expected a value in (-90, 90), got {self.camera_pitch_deg}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidParameterError(f"seed: expected a non-negative integer, got {self.seed!r}")

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def plane_class(self) -> int | None:
        """Label of the ground plane, or ``None`` when the ground is not a class (label -1)."""
        return next((i for i, c in enumerate(self.classes) if c.shape == "plane"), None)
