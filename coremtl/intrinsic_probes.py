"""What a dual-stream model's streams and its hard-grounding decoder hold, against a known truth.

- Stream probes: a held-out linear probe of a per-image quantity ``y`` (``(n, k)``, e.g. a
  surface's true albedo or the SH lighting) from the spatially pooled stream ``zbar`` of
  ``Z_s`` or ``Z_r`` (:func:`pooled_streams`): ridge regression on features standardised with the
  fitting split's statistics, ``w = (X^T X + lambda n I')^{-1} X^T y`` (``I'`` leaves the
  intercept unpenalised; ``lambda`` = :data:`PROBE_RIDGE`, small, only against collinear
  channels), scored on the held-out split by ``R^2 = 1 - sum (y - yhat)^2 / sum (y - ybar)^2``
  summed over the ``k`` outputs (1: the stream holds ``y`` linearly; <= 0: no better than the
  held-out mean).
- Decomposition errors of a :class:`coremtl.hard_grounding.HardGroundingDecoder` against true
  albedo, shading and normal maps, per region mask (:func:`decomposition_errors`): albedo and
  shading as scale-invariant mean squared errors ``min_a mean_p (a x_hat - x)^2`` per image over
  the region (intrinsic images are defined up to a reciprocal scale), normals as the mean angle in
  degrees; each beside a reference that knows nothing of the decomposition: the linearised image
  as albedo (all shading in the albedo), a constant shading, and the region's mean true normal;
  and beside what the decoder's resolution allows at best (the truth averaged to the streams'
  size and resized back). Normals learnt only through the render are defined up to one
  orthogonal map of the frame (:func:`procrustes_aligned`), so their angle is also given after
  the best such map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coremtl.lighting import srgb_to_linear
from scm.validation import InvalidParameterError

PROBE_RIDGE = 1e-3
"""Ridge penalty of the stream probe, relative to the number of fitting samples."""


@torch.no_grad()
def pooled_streams(
    model: nn.Module, images: Tensor, batch_size: int = 128
) -> tuple[Tensor, Tensor]:
    """``(zbar_s, zbar_r)`` in float64: each stream of ``model.encode`` averaged over positions
    (vectors as they are), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        pooled = [[], []]
        device = next(model.parameters()).device
        for start in range(0, images.shape[0], batch_size):
            streams = model.encode(images[start : start + batch_size].to(device))
            for store, stream in zip(pooled, streams, strict=True):
                vector = stream.flatten(2).mean(dim=2) if stream.ndim > 2 else stream
                store.append(vector.double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(pooled[0]), torch.cat(pooled[1])


def ridge_r2(
    fit_features: Tensor, fit_targets: Tensor, eval_features: Tensor, eval_targets: Tensor
):
    """Held-out ``R^2`` of the ridge probe of the module docstring (targets ``(n,)`` or
    ``(n, k)``)."""
    if (
        fit_features.shape[0] != fit_targets.shape[0]
        or eval_features.shape[0] != (eval_targets.shape[0])
    ):
        raise InvalidParameterError(
            "features and targets: expected as many rows each, got "
            f"{fit_features.shape[0]} / {fit_targets.shape[0]} (fit) and "
            f"{eval_features.shape[0]} / {eval_targets.shape[0]} (held out)"
        )
    if fit_features.shape[0] < 2:
        raise InvalidParameterError(
            f"fit_features: a probe needs at least 2 fitting samples, got {fit_features.shape[0]}"
        )
    fit_x, eval_x = fit_features.double(), eval_features.double()
    fit_y = fit_targets.double().reshape(fit_targets.shape[0], -1)
    eval_y = eval_targets.double().reshape(eval_targets.shape[0], -1)
    mean, scale = fit_x.mean(dim=0), fit_x.std(dim=0).clamp_min(1e-8)

    def design(x: Tensor) -> Tensor:
        return torch.cat([(x - mean) / scale, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)

    fit_design = design(fit_x)
    penalty = PROBE_RIDGE * len(fit_x) * torch.eye(fit_design.shape[1], dtype=torch.float64)
    penalty[-1, -1] = 0.0
    weights = torch.linalg.solve(fit_design.T @ fit_design + penalty, fit_design.T @ fit_y)
    residual = (eval_y - design(eval_x) @ weights).square().sum()
    spread = (eval_y - eval_y.mean(dim=0)).square().sum()
    if spread == 0:
        raise InvalidParameterError("eval_targets: the held-out targets do not vary")
    return float(1.0 - residual / spread)


def scale_invariant_mse(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per image ``min_a sum_p m (a x_hat - x)^2 / sum_p m`` with ``a = <m x_hat, x> / <m x_hat,
    x_hat>`` over the pixels (and channels) where ``mask`` (broadcast to the maps) is true, or over
    all of them; an image with no pixel in the mask gives NaN."""
    pred = prediction.flatten(1).double()
    true = target.flatten(1).double()
    if mask is None:
        scale = (pred * true).sum(1) / (pred * pred).sum(1).clamp_min(1e-12)
        return ((scale[:, None] * pred - true) ** 2).mean(1)
    weight = mask.expand_as(prediction).flatten(1).double()
    scale = (weight * pred * true).sum(1) / (weight * pred * pred).sum(1).clamp_min(1e-12)
    squared = weight * (scale[:, None] * pred - true) ** 2
    return squared.sum(1) / weight.sum(1)


def mean_angle_degrees(prediction: Tensor, target: Tensor, mask: Tensor) -> float:
    """Mean angle in degrees between ``(B, 3, H, W)`` normal maps over the pixels of ``mask``
    ``(B, H, W)`` (both maps normalised first)."""
    cosine = (F.normalize(prediction.double(), dim=1) * F.normalize(target.double(), dim=1)).sum(1)
    angles = torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0)))
    return float(angles[mask].mean())


@torch.no_grad()
def decomposition(model: nn.Module, images: Tensor, batch_size: int = 128) -> dict[str, Tensor]:
    """The ``normal``, ``albedo`` and ``shading`` maps of ``model.decoder.components`` on
    ``images``, in eval mode, on the CPU."""
    from coremtl.hard_grounding import HardGroundingDecoder

    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, HardGroundingDecoder):
        raise InvalidParameterError(
            f"model: the decomposition needs a HardGroundingDecoder, got {type(decoder).__name__}"
        )
    was_training = model.training
    model.eval()
    parts: dict[str, list[Tensor]] = {"normal": [], "albedo": [], "shading": []}
    try:
        device = next(model.parameters()).device
        for start in range(0, images.shape[0], batch_size):
            z_s, z_r = model.encode(images[start : start + batch_size].to(device))
            components = decoder.components(z_s, z_r)
            for name, store in parts.items():
                store.append(components[name].float().cpu())
    finally:
        model.train(was_training)
    return {name: torch.cat(store) for name, store in parts.items()}


@torch.no_grad()
def _residual_size(model: nn.Module, image: Tensor) -> tuple[int, int]:
    was_training = model.training
    model.eval()
    try:
        return tuple(model.encode(image.to(next(model.parameters()).device))[1].shape[-2:])
    finally:
        model.train(was_training)


def at_resolution(maps: Tensor, size: Sequence[int]) -> Tensor:
    """``maps`` averaged over blocks to ``size`` (h, w) and resized back bilinearly: what a map
    decoded at that resolution and upsampled, as the albedo is, could at best be."""
    low = F.adaptive_avg_pool2d(maps, tuple(size))
    return F.interpolate(low, size=maps.shape[-2:], mode="bilinear", align_corners=False)


def procrustes_aligned(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``prediction`` normal maps ``(B, 3, H, W)`` times the one orthogonal ``R`` minimising
    ``sum_p ||N_hat(p) R - N(p)||^2`` over the pixels of ``mask`` ``(B, H, W)``
    (:func:`scipy.linalg.orthogonal_procrustes`). The render cannot tell the frame: a real SH band
    spans an O(3)-invariant space, ``Y_l(R N) = D_l(R) Y_l(N)`` with ``D_l(R)`` orthogonal, so
    normals ``R N`` under the light ``D(R) L`` shade exactly as ``N`` under ``L``."""
    from scipy.linalg import orthogonal_procrustes

    unit = F.normalize(prediction.double(), dim=1)
    predicted = unit.permute(0, 2, 3, 1)[mask].numpy()
    true = target.double().permute(0, 2, 3, 1)[mask].numpy()
    rotation, _ = orthogonal_procrustes(predicted, true)
    return torch.einsum("bihw,ij->bjhw", unit, torch.from_numpy(rotation))


def decomposition_errors(
    model: nn.Module,
    images: Tensor,
    truth: Mapping[str, Tensor],
    regions: Mapping[str, Tensor],
) -> dict[str, float]:
    """``<quantity>/<region>/<measure>`` for the decoded maps of ``model`` on the sRGB ``images``
    against ``truth`` (``albedo`` and ``shading`` linear ``(B, 3, H, W)``, ``normal`` unit
    ``(B, 3, H, W)``; any subset), in each region (``(B, H, W)`` boolean masks): ``si_mse`` of
    albedo and shading, each with its ``reference`` (module docstring) and the truth at the
    streams' resolution (:func:`at_resolution`, ``si_mse_feature_resolution``); ``angle`` of the
    normals with its ``reference`` and after the best orthogonal map of the region
    (:func:`procrustes_aligned`, ``angle_aligned``). Images with no pixel in a region are left out
    of that region's means."""
    decoded = decomposition(model, images)
    size = _residual_size(model, images[:1])
    linear = srgb_to_linear(images.float().cpu())
    references = {"albedo": linear, "shading": torch.ones_like(linear)}
    out: dict[str, float] = {}
    for region, mask in regions.items():
        mask = mask.cpu().bool()
        present = mask.flatten(1).any(dim=1)
        pixels = mask[:, None]
        for quantity in ("albedo", "shading"):
            if quantity not in truth:
                continue
            target = truth[quantity].float().cpu()
            estimates = {
                "": decoded[quantity],
                "_reference": references[quantity],
                "_feature_resolution": at_resolution(target, size),
            }
            for label, estimate in estimates.items():
                error = scale_invariant_mse(estimate, target, pixels)[present]
                out[f"{quantity}/{region}/si_mse{label}"] = float(error.mean())
        if "normal" in truth:
            target = truth["normal"].float().cpu()
            mean_normal = (target * pixels).sum(dim=(0, 2, 3)) / pixels.sum().clamp_min(1)
            constant = mean_normal[None, :, None, None].expand_as(target)
            aligned = procrustes_aligned(decoded["normal"], target, mask)
            out[f"normal/{region}/angle"] = mean_angle_degrees(decoded["normal"], target, mask)
            out[f"normal/{region}/angle_aligned"] = mean_angle_degrees(aligned, target, mask)
            out[f"normal/{region}/angle_reference"] = mean_angle_degrees(constant, target, mask)
    return out
