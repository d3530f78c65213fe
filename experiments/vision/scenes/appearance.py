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


def light_direction(draw: ResidualDraw, law: ResidualDistribution) -> np.ndarray:
    """Unit world vector towards the light (see :class:`ResidualDistribution`)."""
    azimuth = math.radians(law.light_azimuth_deg + law.light_jitter_deg * draw.light_angles[0])
    elevation = math.radians(
        np.clip(law.light_elevation_deg + law.light_jitter_deg * draw.light_angles[1], 5, 89)
    )
    return np.array(
        [
            math.sin(azimuth) * math.cos(elevation),
            math.sin(elevation),
            -math.cos(azimuth) * math.cos(elevation),
        ]
    )


def albedo_palette(draw: ResidualDraw, law: ResidualDistribution, num_classes: int) -> np.ndarray:
    """``(slots, 3)`` sRGB-valued albedo of every class (and the unlabelled ground), drawn from the
    palette, or with probability ``law.shortcut`` from the class's own hue ``c / C``."""
    hue_u, saturation_u, value_u, shortcut_u = draw.palette.T
    hue = law.palette_hue + law.palette_hue_width * (hue_u - 0.5)
    class_hue = np.arange(draw.palette.shape[0]) / num_classes
    class_hue = class_hue + SHORTCUT_HUE_JITTER * draw.shortcut_hue_noise
    hue = np.where(shortcut_u < law.shortcut, class_hue, hue)
    saturation = law.palette_saturation[0] + np.diff(law.palette_saturation)[0] * saturation_u
    value = law.palette_value[0] + np.diff(law.palette_value)[0] * value_u
    return hsv_to_rgb(np.mod(hue, 1.0), saturation, value)


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

    def tensor(values: list[np.ndarray]) -> Tensor:
        return torch.as_tensor(np.stack(values), device=device, dtype=dtype)

    light_colour = np.asarray(law.light_colour)
    directions, colours, ambients, skies, vectors, phases = [], [], [], [], [], []
    for draw in draws:
        directions.append(world_from_camera.T @ light_direction(draw, law))
        tint = light_colour * (1.0 + COLOUR_JITTER * draw.light_colour_noise)
        strength_u, ambient_u = draw.light_uniforms
        strength = law.light_strength[0] + np.diff(law.light_strength)[0] * strength_u
        colours.append(strength * tint)
        ambients.append((law.ambient[0] + np.diff(law.ambient)[0] * ambient_u) * tint)
        skies.append(np.clip(np.asarray(law.sky_colour) + COLOUR_JITTER * draw.sky_noise, 0, 1))
        unit = draw.texture_directions / np.linalg.norm(
            draw.texture_directions, axis=1, keepdims=True
        )
        low, high = TEXTURE_FREQUENCY
        vectors.append(unit * (low + (high - low) * draw.texture_uniforms[:, :1]))
        phases.append(2.0 * math.pi * draw.texture_uniforms[:, 1])
    palettes = tensor([albedo_palette(draw, law, num_classes) for draw in draws])
    lighting = directional_light_coefficients(tensor(directions), tensor(colours), tensor(ambients))
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


def compose(slot: Tensor, hits: SurfaceHits, params: ResidualParameters) -> dict[str, Tensor]:
    """The module-docstring maps of a batch from its geometry ``hits`` and ``slot (B, P)``, the
    albedo slot of every pixel. Returns ``albedo``, ``shading``, ``linear`` (``A * S`` clipped,
    before noise) and ``image`` (sRGB), each ``(B, P, 3)``.

    The ground's shading is one value per sample (its normal is constant); the SH formula is
    evaluated per pixel only on the primitives' pixels.
    """
    batch, pixels = slot.shape
    surface = hits.surface[..., None]
    base = params.albedo.gather(1, slot.clamp_min(0)[..., None].expand(-1, -1, 3))
    if params.texture_strength > 0:
        points, vectors = hits.points, params.wave_vectors[:, None]
        waves = torch.sin(
            points[..., 0:1] * vectors[..., 0]
            + points[..., 1:2] * vectors[..., 1]
            + points[..., 2:3] * vectors[..., 2]
            + params.wave_phases[:, None]
        )
        base = base * (1.0 + params.texture_strength * waves.mean(-1, keepdim=True))
    albedo = torch.where(surface, base.clamp(0.0, 1.0), params.sky[:, None])
    ground = shade(hits.ground_normal.expand(batch, 1, 3), params.lighting)
    shading = torch.where(surface, ground, 1.0).reshape(batch * pixels, 3)
    owner = torch.div(hits.object_pixels, pixels, rounding_mode="floor")
    normals = hits.normal.reshape(batch * pixels, 3)[hits.object_pixels]
    shading[hits.object_pixels] = shade(normals, params.lighting[owner])
    shading = shading.reshape(batch, pixels, 3)
    linear = (albedo * shading).clamp(0.0, 1.0)
    noisy = linear
    if params.noise_std > 0:
        noise = torch.stack(
            [
                torch.randn(pixels, 3, generator=torch.Generator().manual_seed(seed))
                for seed in params.noise_seeds
            ]
        ).to(device=linear.device, dtype=linear.dtype)
        noisy = (linear + params.noise_std * noise).clamp(0.0, 1.0)
    return {"albedo": albedo, "shading": shading, "linear": linear, "image": linear_to_srgb(noisy)}
