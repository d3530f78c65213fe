"""Sample prediction images of a run, as PNG grids (one file per kind, one tile per sample).

Kinds: ``input``, ``segmentation`` (prediction and truth, a fixed palette, ignored pixels black),
``depth`` (prediction and truth, divided by the largest true depth), ``normal`` (``(n + 1) / 2``),
for a model with a hard-grounding decoder ``albedo``, ``shading``, ``render`` (sRGB), for one
with a soft-grounding decoder ``reconstruction``, and for both ``counterfactual`` (sample ``i``
decoded with the residual stream of sample ``pi(i)``, a derangement).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from coremtl.counterfactual import derangement
from coremtl.hard_grounding import HardGroundingDecoder
from coremtl.lighting import linear_to_srgb


def palette(num_classes: int) -> Tensor:
    """Distinct colours from a fixed seed, ``(num_classes, 3)`` in ``[0, 1]``."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(num_classes, 3, generator=generator) * 0.8 + 0.2


def colourise(labels: Tensor, num_classes: int) -> Tensor:
    colours = palette(num_classes)
    image = colours[labels.clamp_min(0)].permute(0, 3, 1, 2)
    return image * (labels >= 0)[:, None]


@torch.no_grad()
def write_sample_images(run, folder: Path) -> list[Path]:
    """Write the PNG grids for the first ``run.num_sample_images`` test samples; return the paths."""
    from torchvision.utils import save_image

    config = run.config
    count = min(config.run.num_sample_images, len(run.splits.test))
    if count == 0:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    samples = [run.splits.test[i] for i in range(count)]
    batch = {k: torch.stack([s[k] for s in samples]).to(run.device) for k in samples[0]}
    model = run.model
    model.eval()
    forward = model(batch["image"])
    grids: dict[str, Tensor] = {"input": batch["image"]}
    predictions = {k: v.float() for k, v in forward.predictions.items()}
    if "segmentation" in predictions:
        grids["segmentation"] = torch.cat(
            [
                colourise(predictions["segmentation"].argmax(1), config.data.num_classes),
                colourise(batch["segmentation"], config.data.num_classes),
            ]
        )
    if "depth" in predictions:
        scale = batch["depth"].max().clamp_min(1e-6)
        grids["depth"] = torch.cat([predictions["depth"], batch["depth"]]).div(scale).clamp(0, 1)
    if "normal" in predictions:
        grids["normal"] = torch.cat([predictions["normal"], batch["normal"]]).add(1).div(2)
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, HardGroundingDecoder):
        components = decoder.components(forward.z_s, forward.z_r)
        grids["albedo"] = linear_to_srgb(components["albedo"])
        grids["shading"] = components["shading"].clamp(0, 1)
        grids["render"] = linear_to_srgb(components["render_linear"].clamp(0, 1))
    elif decoder is not None:
        grids["reconstruction"] = decoder(forward.z_s, forward.z_r)
    if decoder is not None and count >= 2:
        generator = torch.Generator().manual_seed(config.run.seed)
        permutation = derangement(count, generator).to(run.device)
        grids["counterfactual"] = decoder(forward.z_s, forward.z_r[permutation])
    paths = []
    for name, images in grids.items():
        path = folder / f"{name}.png"
        save_image(images.float().cpu().clamp(0, 1), path, nrow=count)
        paths.append(path)
    return paths
