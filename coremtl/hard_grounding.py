"""Hard grounding: a Lambertian intrinsic-image renderer driven by the two streams.

The paper's strongest prior (CORE-MTL, ICML 2026; docs/VISION.md, section 1, "Hard grounding"):
the semantic stream must explain the geometry and the residual stream the appearance, because the
image is re-rendered from them by a fixed physical model. With ``Z_s``, ``Z_r`` maps of ``h x w``
and an sRGB input ``x`` of ``H x W``,

    N(p) = n(Z_s)(p) / ||n(Z_s)(p)||               unit normals, H x W (``n``: a dense head)
    A(p) = sigmoid(up_{H x W}(g(Z_r)))(p)           linear albedo in (0, 1)^3, pixel-aligned
    L    = W pool(Z_r) + b                          order-2 SH lighting, 3 x 9
    S_c(p) = max(0, Y(N(p)) . L_c)                  Lambertian shading (:mod:`coremtl.lighting`)
    x_hat(p) = A(p) * S(p)                          the render, in linear RGB

with ``Y`` the nine real spherical harmonics of Ramamoorthi & Hanrahan (2001), ``g`` a 3x3
conv-BN-ReLU-1x1 conv on ``Z_r`` and ``up`` a bilinear resize to the normals' ``H x W``, so any
output stride works (the normals come at the input size: the dense heads of
:mod:`coremtl.heads` resize to it). ``n`` is the head of the surface-normal task when the run has
one (:func:`normal_task`), else the decoder's own dense head, trained only through the render.
:meth:`HardGroundingDecoder.forward` returns ``srgb(clip(x_hat, 0, 1))``, an image the encoder can
take back: the counterfactual of CFA, ``decode(Z_s(i), Z_r(pi(i)))``, is rendered with the normals
of ``i`` and the albedo and light of ``pi(i)``.

The grounding loss (:func:`hard_grounding_terms`, :class:`HardGroundingTerms`) compares the render
with the linearised input (IEC 61966-2-1, :func:`coremtl.lighting.srgb_to_linear`) and adds its
priors:

    L_hard = l_rec ( mean |x_hat - lin(x)|                                       (render, L1)
                   + l_tv   (mean |A(p) - A(p + e_x)| + mean |A(p) - A(p + e_y)|)  (albedo TV)
                   + l_ach  mean_{p,c} |S_c(p) - mean_c' S_c'(p)|                  (grey shading)
                   + l_corr mean_{c,j} rho(A_c, N_j)^2 )                        (albedo-normal)

with ``rho`` the Pearson correlation over the pixels of one image, averaged over images; the
normals are detached in the last prior, so it shapes the albedo only (albedo should not copy
geometry), and grey shading leaves colour to the albedo.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coremtl import defaults
from coremtl.forward import Forward
from coremtl.lighting import SH_CONSTANTS, linear_to_srgb, shade, srgb_to_linear
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

INITIAL_AMBIENT_SHADING = 0.5
NORMAL_TASK_NAMES = ("normal", "normals", "surface_normal", "surface_normals")
"""Task names read as surface normals (case-insensitive); such a task must be dense with 3
outputs."""


class AlbedoDecoder(nn.Module):
    """``Z_r (B, C, h, w)`` -> albedo ``sigmoid(up(g(Z_r)))`` ``(B, 3, H, W)`` in linear RGB."""

    def __init__(self, in_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 3, 1),
        )

    def forward(self, z_r: Tensor, size: Sequence[int]) -> Tensor:
        logits = self.body(z_r)
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)


class LightingHead(nn.Module):
    """Pooled ``Z_r (B, C)`` -> SH coefficients ``(B, 3, 9)``.

    Initialised to a uniform grey ambient light of shading ``0.5`` (``L_{c,0} = 0.5 / Y_0``, the
    rest 0), so that the first renders are neither black nor saturated.
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
    """Decoder ``(Z_s, Z_r) -> x_hat`` through normals, albedo, SH lighting and Lambertian shading
    (module docstring). ``normal_head`` maps ``Z_s`` to ``(B, 3, H, W)`` normals at the input size
    (normalised here); it may be a task's head, shared with that task's loss.

    ``forward`` returns the render sRGB-encoded and clipped to ``[0, 1]``; :meth:`components`
    returns every intermediate, including the linear render the loss compares.
    """

    def __init__(self, residual_channels: int, normal_head: nn.Module, hidden: int = 64) -> None:
        super().__init__()
        self.normal_head = normal_head
        self.albedo = AlbedoDecoder(residual_channels, hidden)
        self.lighting = LightingHead(residual_channels)

    def components(
        self, z_s: Tensor, z_r: Tensor, normals: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``normal``, ``albedo``, ``lighting``, ``shading`` and ``render_linear``; ``normals``
        (``normal_head(z_s)``), when the caller already has them (the normal task's prediction
        from the same head), are not recomputed."""
        if normals is None:
            normals = self.normal_head(z_s)
        normals = F.normalize(normals, dim=1)
        albedo = self.albedo(z_r, normals.shape[-2:])
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


def normal_task(tasks: Sequence[Task]) -> str | None:
    """The name of the surface-normal task among ``tasks`` (:data:`NORMAL_TASK_NAMES`), or
    ``None``; a normal task that is not dense with 3 outputs, or two of them, is refused."""
    found = [task for task in tasks if task.name.lower() in NORMAL_TASK_NAMES]
    if len(found) > 1:
        raise InvalidParameterError(
            f"tasks: hard grounding reads the normals of one task, got several surface-normal "
            f"tasks {[task.name for task in found]}"
        )
    if not found:
        return None
    task = found[0]
    if task.kind != "dense" or task.outputs != 3:
        raise InvalidParameterError(
            f"tasks[{task.name!r}]: hard grounding renders from this task's surface normals; "
            f"expected kind 'dense' with 3 outputs, got kind {task.kind!r} with {task.outputs}"
        )
    return task.name


def hard_decoder(
    tasks: Sequence[Task],
    heads: Mapping[str, nn.Module],
    semantic: int,
    residual: int,
    maps: bool,
    input_shape: Sequence[int],
    example: Tensor,
) -> HardGroundingDecoder:
    """The hard-grounding decoder of a dual-stream model with ``heads`` on ``Z_s`` (``semantic``
    channels) and ``Z_r`` (``residual`` channels), for sRGB images of per-sample ``input_shape``
    ``(3, H, W)``: the normal task's head as ``n`` when :func:`normal_task` finds one, else a new
    :class:`coremtl.heads.DenseHead`. Vectors, non-RGB inputs and an ``example`` outside
    ``[0, 1]`` are refused in one line."""
    from coremtl.heads import DenseHead

    if not maps:
        raise InvalidParameterError(
            "grounding: 'hard' renders an image from per-pixel normals and albedo, so it needs a "
            "backbone producing feature maps (B, C, h, w); this one produces vectors (use "
            "grounding='soft' or 'none')"
        )
    if len(input_shape) != 3 or input_shape[0] != 3:
        raise InvalidParameterError(
            f"grounding: 'hard' renders RGB images (B, 3, H, W), got inputs of per-sample shape "
            f"{tuple(input_shape)} (use grounding='soft' or 'none')"
        )
    low, high = float(example.min()), float(example.max())
    if low < 0.0 or high > 1.0:
        raise InvalidParameterError(
            f"example: hard grounding renders sRGB images with values in [0, 1], got values in "
            f"[{low:.3g}, {high:.3g}] (normalise inside the backbone, not in the data)"
        )
    name = normal_task(tasks)
    head = heads[name] if name is not None else DenseHead(semantic, 3, input_shape[1:])
    return HardGroundingDecoder(residual, head)


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
    components: Mapping[str, Tensor],
    image: Tensor,
    tv_weight: float,
    achromatic_weight: float,
    correlation_weight: float,
) -> dict[str, Tensor]:
    """The unweighted render loss and the weighted priors of ``L_hard / l_rec`` (module
    docstring) for an sRGB ``image``; their sum is the grounding term."""
    target = srgb_to_linear(image.float())
    return {
        "render": (components["render_linear"] - target).abs().mean(),
        "albedo_tv": tv_weight * total_variation(components["albedo"]),
        "achromatic": achromatic_weight * achromatic_shading(components["shading"]),
        "albedo_normal_corr": correlation_weight
        * albedo_normal_correlation(components["albedo"], components["normal"].detach()),
    }


class HardGroundingTerms:
    """The term source of ``L_hard`` (module docstring): ``grounding/<piece>`` terms, each times
    ``reconstruction_weight``, for a model whose ``decoder`` is a :class:`HardGroundingDecoder`;
    ``input_key`` names the batch entry holding the sRGB input. When the decoder's normal head is
    a task's head, that task's prediction is reused as the normals (the same function of the same
    parameters, computed once)."""

    def __init__(
        self,
        reconstruction_weight: float = defaults.RECONSTRUCTION_WEIGHT,
        tv_weight: float = defaults.ALBEDO_TV_WEIGHT,
        achromatic_weight: float = defaults.ACHROMATIC_SHADING_WEIGHT,
        correlation_weight: float = defaults.ALBEDO_NORMAL_CORRELATION_WEIGHT,
        input_key: str = "x",
    ) -> None:
        for value, name in (
            (reconstruction_weight, "reconstruction_weight"),
            (tv_weight, "tv_weight"),
            (achromatic_weight, "achromatic_weight"),
            (correlation_weight, "correlation_weight"),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value < math.inf
            ):
                raise InvalidParameterError(f"{name}: expected a finite number >= 0, got {value!r}")
        self.reconstruction_weight = float(reconstruction_weight)
        self.tv_weight = float(tv_weight)
        self.achromatic_weight = float(achromatic_weight)
        self.correlation_weight = float(correlation_weight)
        self.input_key = input_key

    def config(self) -> dict[str, float | str]:
        return {
            "reconstruction_weight": self.reconstruction_weight,
            "tv_weight": self.tv_weight,
            "achromatic_weight": self.achromatic_weight,
            "correlation_weight": self.correlation_weight,
            "input_key": self.input_key,
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
        decoder = getattr(model, "decoder", None)
        if not isinstance(decoder, HardGroundingDecoder):
            raise InvalidParameterError(
                "model: the hard-grounding terms need a model whose decoder is a "
                f"HardGroundingDecoder, got {type(decoder).__name__}"
            )
        heads = getattr(model, "heads", None)
        named = heads.items() if isinstance(heads, nn.ModuleDict) else ()
        shared = next((name for name, head in named if head is decoder.normal_head), None)
        normals = forward.predictions.get(shared) if shared is not None else None
        components = decoder.components(forward.z_s, forward.z_r, normals)
        pieces = hard_grounding_terms(
            components,
            batch[self.input_key],
            self.tv_weight,
            self.achromatic_weight,
            self.correlation_weight,
        )
        return {f"grounding/{k}": self.reconstruction_weight * v for k, v in pieces.items()}
