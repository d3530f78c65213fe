"""Assemble a vision model from its config: encoder, stream split, heads, grounding decoder.

- ``kind="coremtl"``: :class:`coremtl.representation.DualStreamModel` with a 1x1-convolution
  :class:`~coremtl.representation.StreamSplit` of the encoder maps into ``Z_s`` and ``Z_r`` (both at
  1/8 resolution), DeepLab heads on ``Z_s`` only, and the hard (physics) or soft (AdaIN) grounding
  decoder.
- ``kind="shared"``: hard parameter sharing (:class:`coremtl.architectures.shared_bottom.SharedBottom`),
  the heads read the whole encoder output (the model every balancer baseline trains);
- ``kind="mtan"``: :class:`coremtl.architectures.mtan.MTAN` over the encoder's four stages (task
  attention on the last block of each stage), DeepLab heads on the attended layer-4 features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .encoder import ResNetEncoder
from .heads import build_heads
from .physics import HardGroundingDecoder
from .weights import load_pretrained


class SigmoidImageDecoder(nn.Module):
    """Soft grounding: ``sigmoid(ConvDecoder(Z_s, Z_r))``, an sRGB image in ``(0, 1)``."""

    def __init__(self, semantic_channels: int, residual_channels: int) -> None:
        from coremtl.grounding import ConvDecoder

        super().__init__()
        self.decoder = ConvDecoder(semantic_channels, residual_channels, out_channels=3)

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z_s, z_r))


def build_model(
    config: ModelConfig, tasks: list[str], num_classes: int
) -> tuple[nn.Module, str | None]:
    """The model and the weights file loaded into its encoder (None: random initialisation)."""
    from coremtl.architectures.mtan import MTAN
    from coremtl.architectures.shared_bottom import SharedBottom
    from coremtl.representation import DualStreamModel, StreamSplit

    encoder = ResNetEncoder(config.arch)
    weights_file = load_pretrained(encoder, config.weights)
    if config.kind == "shared":
        heads = build_heads(tasks, encoder.out_channels, num_classes)
        return SharedBottom(encoder, heads), _name(weights_file)
    if config.kind == "mtan":
        heads = build_heads(tasks, encoder.out_channels, num_classes)
        channels = encoder.stage_channels()
        model = MTAN(encoder.stages(), [(c, c) for c in channels], heads, maps=True)
        return model, _name(weights_file)
    split = StreamSplit(
        encoder.out_channels, config.semantic_channels, config.residual_channels, maps=True
    )
    heads = build_heads(tasks, config.semantic_channels, num_classes)
    decoder: nn.Module | None = None
    if config.grounding == "hard":
        decoder = HardGroundingDecoder(
            config.semantic_channels,
            config.residual_channels,
            heads["normal"] if "normal" in heads else None,
        )
    elif config.grounding == "soft":
        decoder = SigmoidImageDecoder(config.semantic_channels, config.residual_channels)
    return DualStreamModel(encoder, split, heads, decoder), _name(weights_file)


def _name(path) -> str | None:
    return None if path is None else str(path)
