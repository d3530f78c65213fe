"""Environments: the laws of the residual (appearance-only) factors.

Source and target share the semantic law (:class:`~.config.SceneConfig`) and differ only here. The
target at shift ``s in [0, 1]`` interpolates every parameter linearly between the source and the
far target :data:`FAR_TARGET`: ``theta_T(s) = (1 - s) theta_S + s theta_far``, so ``s = 0`` is the
source law itself (without its shortcut) and ``s = 1`` the largest shift. Light direction, light
colour, ambient level, palette (hue centre, saturation and value ranges), texture strength, sky
colour and sensor noise all move with ``s``.

The optional shortcut (source only, as in Colored-Cityscapes): with probability ``shortcut`` a
class's albedo takes the class's own hue ``c / C`` instead of a palette draw, so colour predicts
the class in the source and not in the target. Colored-Cityscapes' permuted target
(:func:`permuted_environment`) is the source law whose shortcut gives class ``c`` the hue
``pi(c) / C`` of class ``pi(c)``, for a derangement ``pi`` of the classes
(:func:`hue_derangement`): colour still names a class, always the wrong one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scm.validation import InvalidParameterError, check_in_range

ENVIRONMENTS = ("source", "target")


@dataclass(frozen=True)
class ResidualDistribution:
    """The law of one environment's appearance factors.

    Light: direction towards the light ``(sin a cos e, sin e, -cos a cos e)`` in the world frame
    (``a``: azimuth, 0 = from behind the camera, positive to the camera's right; ``e``: elevation)
    with ``a, e`` normal around their means with standard deviation ``light_jitter_deg``; colour
    ``light_colour`` times a strength ``~ U(light_strength)``; ambient ``~ U(ambient)`` times the
    light colour. Palette: hue ``~ U(palette_hue +- palette_hue_width / 2)`` (in turns),
    saturation and value uniform in their ranges, an HSV colour in sRGB converted to linear albedo.
    Texture: albedo times ``1 + texture_strength * mean_k sin(w_k . p + phi_k)`` over three random
    plane waves in world position ``p``. Sky radiance ``sky_colour`` (linear), sensor noise
    ``N(0, noise_std^2)`` per pixel and channel in linear RGB. Shortcut: with probability
    ``shortcut`` class ``c`` takes the hue ``pi(c) / C`` instead of a palette draw, ``pi`` =
    ``hue_permutation`` (a permutation of the ``C`` classes; ``None``: the identity, each class
    its own hue).
    """

    name: str
    light_azimuth_deg: float
    light_elevation_deg: float
    light_jitter_deg: float
    light_colour: tuple[float, float, float]
    light_strength: tuple[float, float]
    ambient: tuple[float, float]
    palette_hue: float
    palette_hue_width: float
    palette_saturation: tuple[float, float]
    palette_value: tuple[float, float]
    texture_strength: float
    sky_colour: tuple[float, float, float]
    noise_std: float
    shortcut: float = 0.0
    hue_permutation: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_in_range(self.shortcut, "shortcut", 0.0, 1.0)
        if self.hue_permutation is not None:
            permutation = tuple(self.hue_permutation)
            if sorted(permutation) != list(range(len(permutation))):
                raise InvalidParameterError(
                    "hue_permutation: expected a permutation of 0..C-1, got "
                    f"{self.hue_permutation!r}"
                )
            object.__setattr__(self, "hue_permutation", tuple(int(k) for k in permutation))
        check_in_range(self.noise_std, "noise_std", 0.0, 1.0)
        check_in_range(self.texture_strength, "texture_strength", 0.0, 1.0)
        check_in_range(self.light_elevation_deg, "light_elevation_deg", -90.0, 90.0)
        check_in_range(self.palette_hue_width, "palette_hue_width", 0.0, 1.0)
        for name in ("light_strength", "ambient", "palette_saturation", "palette_value"):
            low, high = getattr(self, name)
            check_in_range(low, name, 0.0, math.inf)
            check_in_range(high, name, low, math.inf)


SOURCE = ResidualDistribution(
    name="source",
    light_azimuth_deg=-40.0,
    light_elevation_deg=55.0,
    light_jitter_deg=10.0,
    light_colour=(1.0, 1.0, 1.0),
    light_strength=(0.7, 0.9),
    ambient=(0.25, 0.35),
    palette_hue=0.55,
    palette_hue_width=0.4,
    palette_saturation=(0.3, 0.7),
    palette_value=(0.5, 0.9),
    texture_strength=0.15,
    sky_colour=(0.45, 0.6, 0.85),
    noise_std=0.01,
)

FAR_TARGET = dataclasses.replace(
    SOURCE,
    name="target",
    light_azimuth_deg=70.0,
    light_elevation_deg=25.0,
    light_colour=(1.0, 0.72, 0.45),
    ambient=(0.15, 0.25),
    palette_hue=1.05,
    palette_saturation=(0.5, 0.9),
    palette_value=(0.4, 0.8),
    texture_strength=0.6,
    sky_colour=(0.9, 0.55, 0.35),
    noise_std=0.03,
)


def _interpolate(source: object, far: object, shift: float) -> object:
    if isinstance(source, tuple):
        return tuple(_interpolate(a, b, shift) for a, b in zip(source, far, strict=True))
    if isinstance(source, str) or source is None:
        return far
    return (1.0 - shift) * source + shift * far


def make_environment(name: str, shift: float = 1.0, shortcut: float = 0.0) -> ResidualDistribution:
    """The source law (with the given ``shortcut``) or the target law at ``shift`` (module
    docstring; the shortcut is never present in the target)."""
    if name not in ENVIRONMENTS:
        raise InvalidParameterError(f"env: expected one of {list(ENVIRONMENTS)}, got {name!r}")
    shift = check_in_range(shift, "shift", 0.0, 1.0)
    shortcut = check_in_range(shortcut, "shortcut", 0.0, 1.0)
    if name == "source":
        return dataclasses.replace(SOURCE, shortcut=shortcut)
    values = {
        item.name: _interpolate(getattr(SOURCE, item.name), getattr(FAR_TARGET, item.name), shift)
        for item in dataclasses.fields(ResidualDistribution)
    }
    values["shortcut"] = 0.0
    return ResidualDistribution(**values)


def hue_derangement(num_classes: int, seed: int) -> tuple[int, ...]:
    """A uniformly random derangement ``pi`` of ``num_classes`` classes (``pi(c) != c`` for every
    ``c``; :func:`coremtl.counterfactual.derangement`) drawn from the stream
    ``derive_seed(seed, "hue_derangement")`` (:func:`scm.seeds.derive_seed`)."""
    import torch

    from coremtl.counterfactual import derangement
    from scm.seeds import derive_seed

    generator = torch.Generator().manual_seed(derive_seed(seed, "hue_derangement"))
    return tuple(int(k) for k in derangement(num_classes, generator))


def permuted_environment(permutation: Sequence[int], strength: float = 1.0) -> ResidualDistribution:
    """Colored-Cityscapes' permuted target: the source law with shortcut strength ``strength``
    whose class ``c`` takes the hue of class ``permutation[c]`` (module docstring)."""
    strength = check_in_range(strength, "strength", 0.0, 1.0)
    return dataclasses.replace(
        SOURCE, name="permuted", shortcut=strength, hue_permutation=tuple(permutation)
    )
