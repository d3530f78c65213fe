"""Appearance from the residual factors only: albedo, texture, SH lighting, shading and the image.

Given the geometry (labels, normals, hit points) of a batch and each sample's residual draw, the
maps are, per pixel of a surface of class ``c`` at world point ``p`` with camera-frame normal ``N``,

    albedo  A = clip(a_c (1 + tau mean_k sin(w_k . p + phi_k)), 0, 1)       (linear RGB)
    shading S = max(0, Y(N) . L)                                             (coremtl.lighting)
    image   I = linear_to_srgb(clip(A * S + sigma eps, 0, 1)),  eps ~ N(0, 1),

and on sky pixels ``A`` is the sky radiance and ``S = 1``, so ``A * S`` is the noiseless linear
image everywhere. ``L`` is the order-2 SH projection of a distant light plus ambient
(:func:`coremtl.lighting.directional_light_coefficients`) with the light direction rotated into
the camera frame.

The residual draw of a sample consumes a fixed sequence of standard variates from its own stream
whatever the environment, and the environment maps them to parameters; so one index rendered in
two environments differs only through the laws (common random numbers), and a target at shift 0
reproduces the source image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from coremtl.lighting import directional_light_coefficients, linear_to_srgb, shade, srgb_to_linear
from scm.validation import InvalidParameterError

from .environments import ResidualDistribution
from .geometry import SurfaceHits

TEXTURE_WAVES = 3
TEXTURE_FREQUENCY = (1.0, 4.0)
"""Range of the plane waves' angular frequencies ``|w_k|`` in radians per metre."""
COLOUR_JITTER = 0.03
SHORTCUT_HUE_JITTER = 0.02


@dataclass(frozen=True)
class ResidualDraw:
    """The standard variates of one sample's residual factors (independent of the environment).

    ``slots`` albedo slots: one per class plus one for an unlabelled ground.
    """

    light_angles: np.ndarray
    light_uniforms: np.ndarray
    light_colour_noise: np.ndarray
    palette: np.ndarray
    shortcut_hue_noise: np.ndarray
    sky_noise: np.ndarray
    texture_directions: np.ndarray
    texture_uniforms: np.ndarray
    noise_seed: int


def draw_residuals(rng: np.random.Generator, slots: int) -> ResidualDraw:
    """Consume the fixed sequence of variates of one sample (see :class:`ResidualDraw`)."""
    return ResidualDraw(
        light_angles=rng.standard_normal(2),
        light_uniforms=rng.uniform(size=2),
        light_colour_noise=rng.standard_normal(3),
        palette=rng.uniform(size=(slots, 4)),
        shortcut_hue_noise=rng.standard_normal(slots),
        sky_noise=rng.standard_normal(3),
        texture_directions=rng.standard_normal((TEXTURE_WAVES, 3)),
        texture_uniforms=rng.uniform(size=(TEXTURE_WAVES, 2)),
        noise_seed=int(rng.integers(0, 2**63 - 1)),
    )


def hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The HSV hexcone model: ``rgb_k = v (1 - s clip(min(p_k, 4 - p_k), 0, 1))`` with
    ``p_k = (6 h + n_k) mod 6`` and ``n = (5, 3, 1)``; hue in turns."""
    offsets = np.array([5.0, 3.0, 1.0])
    position = np.mod(6.0 * np.asarray(hue)[..., None] + offsets, 6.0)
    ramp = np.clip(np.minimum(position, 4.0 - position), 0.0, 1.0)
    return np.asarray(value)[..., None] * (1.0 - np.asarray(saturation)[..., None] * ramp)


def light_directions(angles: np.ndarray, law: ResidualDistribution) -> np.ndarray:
    """``(B, 3)`` unit world vectors towards the light from the ``(B, 2)`` standard normal
    ``light_angles`` of ``B`` draws (see :class:`ResidualDistribution`); the sines and cosines
    come from the scalar C library (``math``), so a sample's direction does not depend on the
    batch."""
    azimuth = np.radians(law.light_azimuth_deg + law.light_jitter_deg * angles[:, 0])
    elevation = np.radians(
        np.clip(law.light_elevation_deg + law.light_jitter_deg * angles[:, 1], 5, 89)
    )
    return np.array(
        [
            [math.sin(a) * math.cos(e), math.sin(e), -math.cos(a) * math.cos(e)]
            for a, e in zip(azimuth.tolist(), elevation.tolist(), strict=True)
        ]
    ).reshape(-1, 3)


def palette_colours(
    palette: np.ndarray, hue_noise: np.ndarray, law: ResidualDistribution, num_classes: int
) -> np.ndarray:
    """``(..., slots, 3)`` sRGB-valued albedo of every slot from the ``(..., slots, 4)`` palette
    uniforms (hue, saturation, value, shortcut) and the ``(..., slots)`` shortcut hue noise:
    the palette's colour, or with probability ``law.shortcut`` the hue ``pi(c) / C`` of class
    ``pi(c)``, ``pi = law.hue_permutation`` (the identity when ``None``: the class's own hue);
    a slot past the classes (an unlabelled ground) keeps ``pi`` the identity."""
    hue_u, saturation_u, value_u, shortcut_u = np.moveaxis(palette, -1, 0)
    hue = law.palette_hue + law.palette_hue_width * (hue_u - 0.5)
    hue_of = np.arange(palette.shape[-2])
    if law.hue_permutation is not None:
        if len(law.hue_permutation) != num_classes:
            raise InvalidParameterError(
                f"hue_permutation: expected a permutation of the {num_classes} classes, got "
                f"{len(law.hue_permutation)} entries"
            )
        hue_of[:num_classes] = law.hue_permutation
    class_hue = hue_of / num_classes + SHORTCUT_HUE_JITTER * hue_noise
    hue = np.where(shortcut_u < law.shortcut, class_hue, hue)
    saturation = law.palette_saturation[0] + np.diff(law.palette_saturation)[0] * saturation_u
    value = law.palette_value[0] + np.diff(law.palette_value)[0] * value_u
    return hsv_to_rgb(np.mod(hue, 1.0), saturation, value)


def albedo_palette(draw: ResidualDraw, law: ResidualDistribution, num_classes: int) -> np.ndarray:
    """``(slots, 3)`` sRGB-valued albedo of every class (and the unlabelled ground) of one draw
    (see :func:`palette_colours`)."""
    return palette_colours(draw.palette, draw.shortcut_hue_noise, law, num_classes)


@dataclass(frozen=True)
class ResidualParameters:
    """The appearance parameters of a batch, as tensors: ``albedo (B, slots, 3)`` linear,
    ``sky (B, 3)`` linear radiance, ``lighting (B, 3, 9)`` SH coefficients in the camera frame,
    ``wave_vectors (B, 3, 3)``, ``wave_phases (B, 3)``, ``texture_strength`` and ``noise_std``
    floats and one noise seed per sample."""

    albedo: Tensor
    sky: Tensor
    lighting: Tensor
    wave_vectors: Tensor
    wave_phases: Tensor
    texture_strength: float
    noise_std: float
    noise_seeds: list[int]


def residual_parameters(
    draws: list[ResidualDraw],
    law: ResidualDistribution,
    num_classes: int,
    world_from_camera: np.ndarray,
    texture: bool,
    device: torch.device | str,
    dtype: torch.dtype,
) -> ResidualParameters:
    """Map each sample's draw through the environment's law (see :class:`ResidualDistribution`)."""

    def stacked(name: str) -> np.ndarray:
        return np.stack([getattr(draw, name) for draw in draws])

    def tensor(values: np.ndarray) -> Tensor:
        return torch.as_tensor(values, device=device, dtype=dtype)

    world = light_directions(stacked("light_angles"), law)
    rotation = world_from_camera
    directions = np.stack(
        [
            world[:, 0] * rotation[0, k]
            + world[:, 1] * rotation[1, k]
            + world[:, 2] * rotation[2, k]
            for k in range(3)
        ],
        axis=-1,
    )
    tint = np.asarray(law.light_colour) * (1.0 + COLOUR_JITTER * stacked("light_colour_noise"))
    strength_u, ambient_u = stacked("light_uniforms").T
    strength = law.light_strength[0] + np.diff(law.light_strength)[0] * strength_u
    ambient = law.ambient[0] + np.diff(law.ambient)[0] * ambient_u
    skies = np.clip(np.asarray(law.sky_colour) + COLOUR_JITTER * stacked("sky_noise"), 0, 1)
    texture_directions = stacked("texture_directions")
    unit = texture_directions / np.linalg.norm(texture_directions, axis=-1, keepdims=True)
    uniforms = stacked("texture_uniforms")
    low, high = TEXTURE_FREQUENCY
    vectors = unit * (low + (high - low) * uniforms[..., :1])
    phases = 2.0 * math.pi * uniforms[..., 1]
    palettes = tensor(
        palette_colours(stacked("palette"), stacked("shortcut_hue_noise"), law, num_classes)
    )
    lighting = directional_light_coefficients(
        tensor(directions), tensor(strength[:, None] * tint), tensor(ambient[:, None] * tint)
    )
    return ResidualParameters(
        albedo=srgb_to_linear(palettes),
        sky=tensor(skies),
        lighting=lighting,
        wave_vectors=tensor(vectors),
        wave_phases=tensor(phases),
        texture_strength=law.texture_strength if texture else 0.0,
        noise_std=law.noise_std,
        noise_seeds=[draw.noise_seed for draw in draws],
    )


def _texture_factor(points: Tensor, vectors: Tensor, phases: Tensor, strength: float) -> Tensor:
    """``1 + tau mean_k sin(w_k . p + phi_k)`` at world points ``points (3, ...)``, with each
    wave's ``vectors (..., 3, 3)`` (wave, axis) and ``phases (..., 3)`` broadcast against the
    points' shape; the dot product and the mean are summed in a fixed order."""
    total = None
    for k in range(TEXTURE_WAVES):
        wave = points[0] * vectors[..., k, 0]
        wave.add_(points[1] * vectors[..., k, 1]).add_(points[2] * vectors[..., k, 2])
        wave.add_(phases[..., k]).sin_()
        total = wave if total is None else total.add_(wave)
    return total.div_(TEXTURE_WAVES).mul_(strength).add_(1.0)


def _sensor_noise(seeds: list[int], pixels: int) -> Tensor:
    """``(B, P, 3)`` standard normal noise, sample ``b`` drawn by ``torch.randn(P, 3)`` from a CPU
    generator seeded with ``seeds[b]`` (so it does not depend on the batch or the device)."""
    noise = torch.empty(len(seeds), pixels, 3)
    for sample, seed in enumerate(seeds):
        torch.randn(pixels, 3, generator=torch.Generator().manual_seed(seed), out=noise[sample])
    return noise


def compose(hits: SurfaceHits, params: ResidualParameters, ground_slot: int) -> dict[str, Tensor]:
    """The module-docstring maps of a batch from its geometry ``hits``: ``albedo``, ``shading``
    and ``image`` (sRGB), each as ``(3, B, P)`` channel planes.

    ``ground_slot`` is the albedo slot of the ground (its class, or the extra slot of an unlabelled
    ground). The ground's albedo and shading are one value per sample (its normal is constant;
    only the texture varies per pixel) and the sky's are fixed, so per-pixel lookups and the SH
    formula run only on the primitives' pixels.
    """
    _, batch, pixels = hits.normal_planes.shape
    device, dtype = params.albedo.device, params.albedo.dtype
    objects, sky = hits.object_pixels, hits.ground_sky
    owner = torch.div(objects, pixels, rounding_mode="floor")
    slots = params.albedo.shape[1]
    palette = params.albedo.reshape(batch * slots, 3).T.contiguous()
    object_albedo = palette.index_select(1, owner * slots + hits.object_labels)
    ground_albedo = params.albedo[:, ground_slot].T.contiguous()[..., None]
    if params.texture_strength > 0:
        factor = _texture_factor(
            hits.ground_points[:, None],
            params.wave_vectors[:, None],
            params.wave_phases[:, None],
            params.texture_strength,
        )
        albedo = torch.mul(ground_albedo, factor)
        object_albedo.mul_(
            _texture_factor(
                hits.object_points,
                params.wave_vectors.index_select(0, owner),
                params.wave_phases.index_select(0, owner),
                params.texture_strength,
            )
        )
    else:
        albedo = ground_albedo.expand(3, batch, pixels).clone(memory_format=torch.contiguous_format)
    albedo.clamp_(0.0, 1.0)
    sky_albedo = params.sky.T.reshape(3 * batch, 1).expand(-1, sky.numel())
    albedo.view(3 * batch, pixels).index_copy_(1, sky, sky_albedo)
    albedo.view(3, -1).index_copy_(1, objects, object_albedo.clamp_(0.0, 1.0))
    ground_shading = shade(hits.ground_normal.expand(batch, 1, 3), params.lighting)[:, 0]
    shading = ground_shading.T[..., None].expand(3, batch, pixels)
    shading = shading.clone(memory_format=torch.contiguous_format)
    shading.view(3 * batch, pixels).index_fill_(1, sky, 1.0)
    object_shading = shade(hits.object_normals.T, params.lighting.index_select(0, owner))
    shading.view(3, -1).index_copy_(1, objects, object_shading.T)
    linear = torch.mul(albedo, shading).clamp_(0.0, 1.0)
    if params.noise_std > 0:
        noise = _sensor_noise(params.noise_seeds, pixels).to(device=device, dtype=dtype)
        linear.add_(noise.mul_(params.noise_std).permute(2, 0, 1)).clamp_(0.0, 1.0)
    return {"albedo": albedo, "shading": shading, "image": linear_to_srgb(linear)}
