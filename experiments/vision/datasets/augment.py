"""The standard dense multi-task augmentation (as in MTAN / LibMTL).

- Random scale-crop: pick ``s`` from ``scales``, crop a window of size ``(H/s, W/s)`` at a uniform
  position and resize it back to ``(H, W)``: bilinear for images, nearest for labels, depth and
  normals. Zooming in by ``s`` brings the scene ``s`` times closer, so depth is divided by ``s``
  (and inverse depth, the Cityscapes disparity, multiplied by ``s``).
- Horizontal flip with probability 1/2; mirroring the image negates the ``x`` component of every
  surface normal (channel 0, camera ``x`` pointing right).

Randomness comes from the given ``torch.Generator`` (or torch's global generator), so a run with
restored RNG states sees the same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BILINEAR_FIELDS = ("image", "albedo", "shading")
NEAREST_FIELDS = ("segmentation", "depth", "normal")


def _resize(value: Tensor, size: tuple[int, int], bilinear: bool) -> Tensor:
    squeeze = value.dim() == 2
    batch = (value[None, None] if squeeze else value[None]).float()
    if bilinear:
        out = F.interpolate(batch, size=size, mode="bilinear", align_corners=True)
    else:
        out = F.interpolate(batch, size=size, mode="nearest")
    out = out[0, 0] if squeeze else out[0]
    return out.to(value.dtype)


def random_scale_crop(
    sample: dict[str, Tensor],
    scales: tuple[float, ...] = (1.0, 1.2, 1.5),
    generator: torch.Generator | None = None,
    inverse_depth: bool = False,
) -> dict[str, Tensor]:
    """Crop a random ``1/s`` window and resize it to the full size; depth is divided by ``s``
    (multiplied when ``inverse_depth``)."""
    height, width = sample["image"].shape[-2:]
    scale = scales[int(torch.randint(len(scales), (1,), generator=generator))]
    crop_h, crop_w = int(height / scale), int(width / scale)
    top = int(torch.randint(height - crop_h + 1, (1,), generator=generator))
    left = int(torch.randint(width - crop_w + 1, (1,), generator=generator))
    out = {}
    for key, value in sample.items():
        if key not in BILINEAR_FIELDS and key not in NEAREST_FIELDS:
            out[key] = value
            continue
        window = value[..., top : top + crop_h, left : left + crop_w]
        resized = _resize(window, (height, width), bilinear=key in BILINEAR_FIELDS)
        if key == "depth":
            resized = resized * scale if inverse_depth else resized / scale
        out[key] = resized
    return out


def horizontal_flip(sample: dict[str, Tensor]) -> dict[str, Tensor]:
    """Mirror every dense field along the width; the normal's ``x`` component changes sign."""
    out = {}
    for key, value in sample.items():
        if key not in BILINEAR_FIELDS and key not in NEAREST_FIELDS:
            out[key] = value
            continue
        flipped = value.flip(-1)
        if key == "normal":
            flipped = flipped.clone()
            flipped[0] = -flipped[0]
        out[key] = flipped
    return out


def augment(
    sample: dict[str, Tensor],
    generator: torch.Generator | None = None,
    inverse_depth: bool = False,
) -> dict[str, Tensor]:
    """Random scale-crop, then a horizontal flip with probability 1/2."""
    sample = random_scale_crop(sample, generator=generator, inverse_depth=inverse_depth)
    if float(torch.rand((), generator=generator)) < 0.5:
        sample = horizontal_flip(sample)
    return sample
