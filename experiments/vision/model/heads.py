"""Dense task heads on the semantic stream: torchvision's DeepLab-v3 head (ASPP with rates
12/24/36 and image pooling, Chen et al. 2017), then bilinear upsampling by the output stride.

Outputs: segmentation logits ``(B, C, H, W)``, depth ``(B, 1, H, W)`` in metres, unit normals
``(B, 3, H, W)``. CelebA attribute tasks get pooled linear heads instead
(:mod:`.attribute_heads`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..attributes import is_attribute_task
from .attribute_heads import AttributeLogitHead
from .encoder import OUTPUT_STRIDE


class DenseHead(nn.Module):
    """DeepLabHead(in_channels, out_channels), upsampled x8; unit-normalised for ``normal``."""

    def __init__(self, task: str, in_channels: int, out_channels: int) -> None:
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead

        super().__init__()
        self.task = task
        self.head = DeepLabHead(in_channels, out_channels)

    def forward(self, z: Tensor) -> Tensor:
        out = self.head(z)
        out = F.interpolate(out, scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=False)
        if self.task == "normal":
            out = F.normalize(out, dim=1)
        return out


def task_channels(task: str, num_classes: int) -> int:
    return {"segmentation": num_classes, "depth": 1, "normal": 3}[task]


def build_heads(tasks: list[str], in_channels: int, num_classes: int) -> nn.ModuleDict:
    """One head per task: a :class:`DenseHead` for a dense task, an
    :class:`~.attribute_heads.AttributeLogitHead` for a CelebA attribute."""
    return nn.ModuleDict(
        {
            t: AttributeLogitHead(in_channels)
            if is_attribute_task(t)
            else DenseHead(t, in_channels, task_channels(t, num_classes))
            for t in tasks
        }
    )
