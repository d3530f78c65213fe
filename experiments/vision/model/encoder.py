"""The dilated ResNet encoder: sRGB images in ``[0, 1]`` to feature maps at 1/8 resolution.

The input is normalised with the ImageNet mean and standard deviation inside the model (the
statistics the torchvision weights were trained with), then passed through the ResNet stem and its
four stages with output stride 8: layers 3 and 4 keep the resolution of layer 2 and dilate their
3x3 convolutions by 2 and 4 (Chen et al., DeepLab, 2017). For bottleneck ResNets (50/101) this is
torchvision's ``replace_stride_with_dilation=[False, True, True]``; for the basic-block ResNets
(18/34), which torchvision builds without dilation, the same change is applied to the built modules.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDE = 8
BOTTLENECK_ARCHS = ("resnet50", "resnet101")
BASIC_ARCHS = ("resnet18", "resnet34")


def _dilate_basic_stage(stage: nn.Sequential, dilation: int) -> None:
    """Turn a stride-2 basic-block stage into a stride-1 stage whose 3x3 convs are dilated."""
    for block in stage:
        for conv in (block.conv1, block.conv2):
            conv.stride = (1, 1)
            conv.dilation = (dilation, dilation)
            conv.padding = (dilation, dilation)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)


def build_resnet(arch: str) -> nn.Module:
    """A randomly initialised torchvision ResNet with output stride 8 (no weights downloaded)."""
    import torchvision

    from scm.validation import InvalidParameterError

    if arch not in BOTTLENECK_ARCHS + BASIC_ARCHS:
        raise InvalidParameterError(
            f"model.arch: expected one of {BASIC_ARCHS + BOTTLENECK_ARCHS}, got {arch!r}"
        )
    factory = getattr(torchvision.models, arch)
    if arch in BOTTLENECK_ARCHS:
        return factory(weights=None, replace_stride_with_dilation=[False, True, True])
    model = factory(weights=None)
    _dilate_basic_stage(model.layer3, 2)
    _dilate_basic_stage(model.layer4, 4)
    return model


class ImageNetNormalize(nn.Module):
    """``(x - mean) / std`` per channel with the ImageNet statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class ResNetEncoder(nn.Module):
    """``x (B, 3, H, W)`` sRGB in ``[0, 1]`` -> ``(B, C, H/8, W/8)`` with ``C = out_channels``."""

    def __init__(self, arch: str = "resnet50") -> None:
        super().__init__()
        resnet = build_resnet(arch)
        self.arch = arch
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        self.out_channels = resnet.fc.in_features
        self.normalize = ImageNetNormalize()

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(self.normalize(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def stages(self) -> list[nn.Sequential]:
        """The four stages as ``nn.Sequential`` of blocks (the first with normalisation and stem),
        sharing this encoder's modules; for architectures that attach to every stage (MTAN)."""
        first = nn.Sequential(self.normalize, *self.stem, *self.layer1)
        return [first, self.layer2, self.layer3, self.layer4]

    def stage_channels(self) -> list[int]:
        return [stage[-1].conv1.in_channels for stage in self.stages()]

    def torchvision_state_keys(self) -> dict[str, str]:
        """Map from torchvision ResNet state-dict keys to this module's keys."""
        mapping = {}
        for key in self.state_dict():
            if key.startswith("stem.0."):
                mapping["conv1." + key[len("stem.0.") :]] = key
            elif key.startswith("stem.1."):
                mapping["bn1." + key[len("stem.1.") :]] = key
            else:
                mapping[key] = key
        return mapping
