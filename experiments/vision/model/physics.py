"""Hard grounding: a Lambertian intrinsic-image renderer driven by the two streams.

Pieces (each its own module, composed by :class:`HardGroundingDecoder`):

- normals ``N(Z_s)``: the normal task head when the run has one, else a :class:`~.heads.DenseHead`;
- albedo ``A(Z_r)``: :class:`AlbedoDecoder`, a pixel-aligned map ``sigmoid(conv(Z_r))`` upsampled
  from 1/8 to full resolution, in linear RGB;
- lighting ``L(pool Z_r)``: :class:`LightingHead`, nine order-2 SH coefficients per colour channel
  (``coremtl.lighting``, Ramamoorthi & Hanrahan 2001) from the global average of ``Z_r``;
- render ``x_hat = A * S`` with ``S_c = max(0, Y(N) . L_c)`` in linear RGB.

:func:`hard_grounding_terms` compares ``x_hat`` with the linearised input (L1) and adds its priors:

- albedo total variation ``mean |A(p) - A(p + e_x)| + mean |A(p) - A(p + e_y)|``;
- achromatic shading ``mean_{p,c} |S_c(p) - mean_c' S_c'(p)|`` (white light: shading carries no
  colour, so colour is explained by albedo);
- albedo-normal decorrelation ``mean_{c,j} rho(A_c, N_j)^2``, with ``rho`` the Pearson correlation
  across the pixels of one image, averaged over images (albedo should not copy geometry;
  the normals are detached there, so this prior shapes the albedo only).

:class:`HardGroundingTerms` is the grounding stage's term source of a run with this decoder
(weights from the ``method`` section), which :func:`coremtl.build` schedules from epoch 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coremtl.forward import Forward
from coremtl.lighting import SH_CONSTANTS, linear_to_srgb, shade, srgb_to_linear

from .encoder import OUTPUT_STRIDE

if TYPE_CHECKING:
    from ..config import MethodConfig
from .heads import DenseHead

INITIAL_AMBIENT_SHADING = 0.5


class AlbedoDecoder(nn.Module):
    """``Z_r (B, C, h, w)`` -> albedo ``(B, 3, 8h, 8w)`` in ``(0, 1)`` (linear RGB)."""

    def __init__(self, in_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 3, 1),
        )

    def forward(self, z_r: Tensor) -> Tensor:
        logits = F.interpolate(
            self.body(z_r), scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=False
        )
        return torch.sigmoid(logits)


class LightingHead(nn.Module):
    """Pooled ``Z_r (B, C)`` -> SH coefficients ``(B, 3, 9)``.

    Initialised to a uniform grey ambient light of shading ``0.5`` (``L_{c,0} = 0.5 / Y_0``, the
    rest 0) so that the first renders are neither black nor saturated.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, 27)
        nn.init.zeros_(self.linear.weight)
        with torch.no_grad():
            bias = torch.zeros(3, 9)
            bias[:, 0] = INITIAL_AMBIENT_SHADING / SH_CONSTANTS[0]
            self.linear.bias.copy_(bias.flatten())

    def forward(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled).view(-1, 3, 9)


def lambertian_render(normals: Tensor, albedo: Tensor, lighting: Tensor) -> tuple[Tensor, Tensor]:
    """``(shading, render)`` with ``shading = max(0, Y(N) . L)`` and ``render = albedo * shading``.

    ``normals``, ``albedo``: ``(B, 3, H, W)``; ``lighting``: ``(B, 3, 9)``. Linear RGB.
    """
    shading = shade(normals.float(), lighting.float(), channel_dim=1)
    return shading, albedo.float() * shading


class HardGroundingDecoder(nn.Module):
    """Decoder ``(Z_s, Z_r) -> x_hat`` through normals, albedo, SH lighting and Lambertian shading.

    ``forward`` returns the render sRGB-encoded and clipped to ``[0, 1]`` (an image the encoder can
    take back, as counterfactual augmentation needs); :meth:`components` returns every
    intermediate, including the linear render used by the loss.
    """

    def __init__(
        self,
        semantic_channels: int,
        residual_channels: int,
        normal_head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.normal_head = normal_head or DenseHead("normal", semantic_channels, 3)
        self.albedo = AlbedoDecoder(residual_channels)
        self.lighting = LightingHead(residual_channels)

    def components(
        self, z_s: Tensor, z_r: Tensor, normals: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Every intermediate of the render; ``normals`` (``normal_head(z_s)``), when the caller
        already has them (the normal task's prediction from the same head), are not recomputed."""
        if normals is None:
            normals = self.normal_head(z_s)
        albedo = self.albedo(z_r)
        lighting = self.lighting(z_r.mean(dim=(2, 3)))
        shading, render = lambertian_render(normals, albedo, lighting)
        return {
            "normal": normals,
            "albedo": albedo,
            "lighting": lighting,
            "shading": shading,
            "render_linear": render,
        }

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return linear_to_srgb(self.components(z_s, z_r)["render_linear"].clamp(0.0, 1.0))


def total_variation(image: Tensor) -> Tensor:
    """Anisotropic L1 total variation, averaged per pixel difference."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy


def achromatic_shading(shading: Tensor) -> Tensor:
    """``mean |S_c - mean_c S|``: zero exactly when the shading is grey."""
    return (shading - shading.mean(dim=1, keepdim=True)).abs().mean()


def albedo_normal_correlation(albedo: Tensor, normals: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean squared Pearson correlation between albedo channels and normal components per image."""
    a = albedo.float().flatten(2)
    n = normals.float().flatten(2)
    a = a - a.mean(dim=2, keepdim=True)
    n = n - n.mean(dim=2, keepdim=True)
    covariance = torch.einsum("bcp,bjp->bcj", a, n)
    scale = a.norm(dim=2)[:, :, None] * n.norm(dim=2)[:, None, :]
    return (covariance / (scale + eps)).pow(2).mean()


def hard_grounding_terms(
    components: dict[str, Tensor],
    image: Tensor,
    tv_weight: float,
    achromatic_weight: float,
    correlation_weight: float,
) -> dict[str, Tensor]:
    """Unweighted render loss and weighted priors; their sum is the reconstruction term."""
    target = srgb_to_linear(image.float())
    return {
        "render": (components["render_linear"] - target).abs().mean(),
        "albedo_tv": tv_weight * total_variation(components["albedo"]),
        "achromatic": achromatic_weight * achromatic_shading(components["shading"]),
        "albedo_normal_corr": correlation_weight
        * albedo_normal_correlation(components["albedo"], components["normal"].detach()),
    }


class HardGroundingTerms:
    """``l_rec (L_render + l_tv L_tv + l_ach L_achromatic + l_corr L_corr)`` of the physics
    decoder (:func:`hard_grounding_terms`), one logged term per piece. When the
    decoder's normal head is the normal task's head, the task prediction is reused as the normals
    (the same function of the same parameters, computed once)."""

    def __init__(self, method: MethodConfig) -> None:
        self.method = method

    def config(self) -> dict[str, float]:
        m = self.method
        return {
            "reconstruction_weight": m.reconstruction_weight,
            "tv_weight": m.tv_weight,
            "achromatic_weight": m.achromatic_weight,
            "correlation_weight": m.correlation_weight,
        }

    def terms(
        self,
        model: nn.Module,
        batch: Mapping[str, Tensor],
        forward: Forward,
        step: int,
        task_losses_fn=None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        decoder = model.decoder
        heads = getattr(model, "heads", {})
        shares_head = "normal" in heads and decoder.normal_head is heads["normal"]
        normals = forward.predictions.get("normal") if shares_head else None
        components = decoder.components(forward.z_s, forward.z_r, normals)
        m = self.method
        pieces = hard_grounding_terms(
            components, batch["image"], m.tv_weight, m.achromatic_weight, m.correlation_weight
        )
        return {f"grounding/{k}": m.reconstruction_weight * v for k, v in pieces.items()}
