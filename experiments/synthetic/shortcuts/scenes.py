"""The rendered-scenes benchmark: a class-hue shortcut (Colored-Cityscapes at CPU scale).

Data (:mod:`experiments.vision.scenes`): rendered scenes of a floor and 3-6 objects of five
classes, tasks ``segmentation`` (dense, 5 classes, the shortcut task) and ``depth`` (dense
regression). The nuisance is the albedo hue: in a source of strength ``p`` a class's albedo takes
the class's own hue ``c / C`` with probability ``p`` instead of a palette draw; the random target is
the same law without the shortcut (shift 0), the permuted target gives class ``c`` the hue
``pi(c) / C`` of class ``pi(c)`` (:func:`experiments.vision.scenes.permuted_environment`). Every
split of a seed renders the same layouts whatever the method, and the two targets render the same
split names, so they share layouts and every residual draw but the hue (paired).

The nuisance value of an image, for the probes, is the hue of its floor (class 0, in every image)
in ``C`` equal bins of the hue circle (chance ``1 / C``). The renderer also returns the true albedo,
shading and normal maps, the floor's linear albedo and the SH lighting (``albedo``, ``shading``,
``normal``, ``floor_albedo``, ``lighting``), which :meth:`SceneBenchmark.extra_probes` reads
(:mod:`experiments.synthetic.shortcuts.hard_probes`).

Backbone: three 3x3 conv-BN-ReLU stages of width ``width``, strides 2, 2 and 1 (output stride 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from coremtl.tasks import Task
from experiments.synthetic.shortcuts.benchmarks import Law
from experiments.synthetic.shortcuts.hard_probes import FLOOR_SLOT, hard_probes
from experiments.vision.scenes import (
    SceneConfig,
    SceneRenderer,
    hue_derangement,
    make_environment,
    permuted_environment,
)

EXTRA_FIELDS = ("albedo", "shading", "normal")
DEPTH_UNIT = 5.0
"""Depth labels are in units of the objects' farthest distance (``far_objects``, 5 m), so that
the depth task's squared error (about 0.2 at the start) and the segmentation's cross-entropy
(about 1.6) are of one order: in metres the depth loss is 25 times larger and Equal Weighting
trains a shared encoder for depth alone. Pixels without a surface (the sky) have depth 0."""


@dataclass(frozen=True)
class SceneSetup:
    resolution: tuple[int, int] = (32, 32)
    min_objects: int = 3
    max_objects: int = 6
    far_objects: float = 5.0
    width: int = 16


def scene_config(setup: SceneSetup, seed: int) -> SceneConfig:
    return SceneConfig(
        resolution=setup.resolution,
        min_objects=setup.min_objects,
        max_objects=setup.max_objects,
        far_objects=setup.far_objects,
        seed=seed,
    )


def slot_hues(srgb: Tensor) -> Tensor:
    """``(B, slots)`` HSV hue in turns of ``(B, slots, 3)`` sRGB colours."""
    from matplotlib.colors import rgb_to_hsv

    return torch.as_tensor(rgb_to_hsv(srgb.clamp(0, 1).numpy())[..., 0], dtype=torch.float32)


def hue_class_agreement(
    hues: Tensor, num_classes: int, permutation: Sequence[int] | None = None
) -> float:
    """Share of ``(sample, class)`` slots whose hue is nearest (on the hue circle) to the class hue
    ``pi(c) / C`` (``pi`` = ``permutation``, the identity when ``None``): 1 when hue names the class
    ``pi(c)``, about ``1 / C`` when hue is unrelated to the class (the data check)."""
    class_hues = torch.arange(num_classes, dtype=torch.float32) / num_classes
    distance = (hues[:, :num_classes, None] - class_hues).abs()
    distance = torch.minimum(distance, 1 - distance)
    nearest = distance.argmin(dim=-1)
    expected = torch.arange(num_classes) if permutation is None else torch.tensor(permutation)
    return float((nearest == expected).float().mean())


class SceneBenchmark:
    """The class-hue shortcut on rendered scenes (module docstring)."""

    nuisance = "hue"
    shortcut_task = "segmentation"
    metric = "segmentation/miou"

    def __init__(self, setup: SceneSetup | None = None) -> None:
        self.setup = setup or SceneSetup()
        self.key = f"scenes/{self.nuisance}"
        self.num_classes = scene_config(self.setup, 0).num_classes
        self.num_nuisance_values = self.num_classes
        self.tasks = (
            Task("segmentation", "dense", self.num_classes),
            Task("depth", "dense", 1),
        )

    def permutation(self, seed: int) -> tuple[int, ...]:
        return hue_derangement(self.num_classes, seed)

    def draw(self, seed: int, split: str, n: int, law: Law) -> dict[str, Tensor]:
        return dict(_render(self.setup, seed, split, n, law.kind, law.strength))

    def extra_probes(self, model: nn.Module, fit: dict, evaluate: dict) -> dict[str, float]:
        """What a dual-stream model's streams hold of the true albedo and lighting, and a
        hard-grounding model's decomposition (:func:`~.hard_probes.hard_probes`); nothing for a
        model without streams."""
        from coremtl.representation import DualStreamModel

        if not isinstance(model, DualStreamModel):
            return {}
        return hard_probes(model, fit, evaluate)

    def backbone(self, seed: int) -> nn.Sequential:
        torch.manual_seed(seed)
        width = self.setup.width

        def stage(fan_in: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(fan_in, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )

        return nn.Sequential(stage(3, 2), stage(width, 2), stage(width, 1))


@lru_cache(maxsize=64)
def _render(
    setup: SceneSetup, seed: int, split: str, n: int, kind: str, strength: float
) -> tuple[tuple[str, Tensor], ...]:
    """The fields of one split (cached: every method of a seed reads the same tensors)."""
    from coremtl.lighting import linear_to_srgb

    renderer = SceneRenderer(scene_config(setup, seed))
    num_classes = renderer.config.num_classes
    if kind == "source":
        environment = make_environment("source", shortcut=strength)
    elif kind == "target":
        environment = make_environment("target", shift=0.0)
    else:
        environment = permuted_environment(hue_derangement(num_classes, seed), strength)
    indices = list(range(n))
    fields = renderer.render(indices, split, environment)
    appearance = renderer.appearance(indices, split, environment)
    albedo = appearance.albedo
    hues = slot_hues(linear_to_srgb(albedo))
    floor_bin = torch.floor(hues[:, FLOOR_SLOT] * num_classes).long().clamp(0, num_classes - 1)
    batch = {
        "x": fields["image"].contiguous(),
        "segmentation": fields["segmentation"].contiguous(),
        "depth": (fields["depth"] / DEPTH_UNIT).contiguous(),
        "nuisance": floor_bin,
        "slot_hues": hues,
        "floor_albedo": albedo[:, FLOOR_SLOT].contiguous(),
        "lighting": appearance.lighting.flatten(1).contiguous(),
        **{name: fields[name].contiguous() for name in EXTRA_FIELDS},
    }
    return tuple(batch.items())
