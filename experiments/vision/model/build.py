"""Assemble a vision model from its config: encoder, stream split, heads, grounding decoder.

``config.kind`` is the method (a name of :data:`coremtl.METHODS`):

- ``"core-mtl"``: :class:`coremtl.representation.DualStreamModel` with a 1x1-convolution
  :class:`~coremtl.representation.StreamSplit` of the encoder maps into ``Z_s`` and ``Z_r`` (both at
  1/8 resolution), DeepLab heads on ``Z_s`` only, and the hard (physics) or soft (AdaIN) grounding
  decoder.
- a balancer name (``"ew"``, ``"pcgrad"``, ...; or ``"shared"``): hard parameter sharing (:class:`coremtl.architectures.shared_bottom.SharedBottom`),
  the heads read the whole encoder output (the model every balancer baseline trains);
- ``"mtan"``: :class:`coremtl.architectures.mtan.MTAN` over the encoder's four stages (task
  attention on the last block of each stage), DeepLab heads on the attended layer-4 features;
- ``"single-task"``: :class:`coremtl.architectures.single_task.SingleTaskModels` with the encoder
  and the head of the one task in ``data.tasks`` (the single-task reference of ``Delta_m``);
- ``"rep-mtl"``: the hard-sharing model; Rep-MTL changes only the loss
  (:mod:`experiments.vision.regularizers`);
- ``"mt-crl"``: :class:`coremtl.architectures.mtcrl.MTCRL` on the encoder maps: ``M`` separate
  modules (3x3 convolution, batch norm, ReLU; ``model.mtcrl_modules`` of
  ``model.mtcrl_module_channels`` channels each), DeepLab heads on the task-gated concatenation;
- ``"core-mtl"`` with ``skip_connection``: the ablation
  :class:`~.skip.SkipConnectionDualStreamModel`, heads on ``concat(Z_s, F)``.

CelebA attribute tasks: ``core-mtl`` (without the skip ablation), hard sharing and ``rep-mtl`` read all
attributes through one :class:`~.attribute_heads.FusedAttributeHead` (one linear layer on the
pooled features, so the head's cost does not grow with the number of attributes); the other kinds
get a pooled linear head per attribute. ``grounding: auto`` is resolved by
:func:`~experiments.vision.config.resolve_grounding` (soft for attributes, hard otherwise).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from coremtl.balancers.registry import BALANCER_NAMES
from scm.validation import InvalidParameterError

from ..attributes import attribute_tasks
from ..config import SHARED, ModelConfig, resolve_grounding
from .attribute_heads import AttributeDualStreamModel, AttributeSharedBottom, FusedAttributeHead
from .encoder import ResNetEncoder
from .heads import build_heads
from .physics import HardGroundingDecoder
from .skip import SkipConnectionDualStreamModel
from .weights import load_pretrained


class SigmoidImageDecoder(nn.Module):
    """Soft grounding: ``sigmoid(ConvDecoder(Z_s, Z_r))``, an sRGB image in ``(0, 1)``."""

    def __init__(self, semantic_channels: int, residual_channels: int) -> None:
        from coremtl.grounding import ConvDecoder

        super().__init__()
        self.decoder = ConvDecoder(semantic_channels, residual_channels, out_channels=3)

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z_s, z_r))


def disentangled_module(in_channels: int, out_channels: int) -> nn.Module:
    """One MT-CRL module on feature maps: 3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def single_task(tasks: list[str]) -> str:
    """The task of a single-task model; an error naming ``data.tasks`` unless there is one."""
    if len(tasks) != 1:
        raise InvalidParameterError(
            f"data.tasks: model.kind 'single-task' trains exactly one task, got {tasks!r} (for the "
            "references of every task: coremtl train --config FILE --single-task-references)"
        )
    return tasks[0]


def build_model(
    config: ModelConfig, tasks: list[str], num_classes: int
) -> tuple[nn.Module, str | None]:
    """The model and the weights file loaded into its encoder (None: random initialisation)."""
    from coremtl.architectures.mtan import MTAN
    from coremtl.architectures.mtcrl import MTCRL
    from coremtl.architectures.shared_bottom import SharedBottom
    from coremtl.architectures.single_task import SingleTaskModels
    from coremtl.representation import DualStreamModel, StreamSplit

    task = single_task(tasks) if config.kind == "single-task" else None
    fused = attribute_tasks(tasks) == list(tasks) and not config.skip_connection
    encoder = ResNetEncoder(config.arch)
    weights_file = load_pretrained(encoder, config.weights)
    if config.kind == "single-task":
        heads = build_heads([task], encoder.out_channels, num_classes)
        return SingleTaskModels({task: encoder}, heads), _name(weights_file)
    if config.kind in (SHARED, "rep-mtl", *BALANCER_NAMES):
        if fused:
            head = FusedAttributeHead(tasks, encoder.out_channels)
            return AttributeSharedBottom(encoder, head), _name(weights_file)
        heads = build_heads(tasks, encoder.out_channels, num_classes)
        return SharedBottom(encoder, heads), _name(weights_file)
    if config.kind == "mt-crl":
        width = config.mtcrl_module_channels
        modules = [
            disentangled_module(encoder.out_channels, width) for _ in range(config.mtcrl_modules)
        ]
        heads = build_heads(tasks, config.mtcrl_modules * width, num_classes)
        return MTCRL(encoder, modules, heads), _name(weights_file)
    if config.kind == "mtan":
        heads = build_heads(tasks, encoder.out_channels, num_classes)
        channels = encoder.stage_channels()
        model = MTAN(encoder.stages(), [(c, c) for c in channels], heads, maps=True)
        return model, _name(weights_file)
    split = StreamSplit(
        encoder.out_channels, config.semantic_channels, config.residual_channels, maps=True
    )
    head_channels = config.semantic_channels
    if config.skip_connection:
        head_channels += encoder.out_channels
    heads = nn.ModuleDict() if fused else build_heads(tasks, head_channels, num_classes)
    grounding = resolve_grounding(config.grounding, tasks)
    decoder: nn.Module | None = None
    if grounding == "hard":
        decoder = HardGroundingDecoder(
            config.semantic_channels,
            config.residual_channels,
            heads["normal"] if "normal" in heads and not config.skip_connection else None,
        )
    elif grounding == "soft":
        decoder = SigmoidImageDecoder(config.semantic_channels, config.residual_channels)
    if fused:
        head = FusedAttributeHead(tasks, config.semantic_channels)
        return AttributeDualStreamModel(encoder, split, head, decoder), _name(weights_file)
    if config.skip_connection:
        model = SkipConnectionDualStreamModel(encoder, split, heads, decoder)
        return model, _name(weights_file)
    return DualStreamModel(encoder, split, heads, decoder), _name(weights_file)


def _name(path) -> str | None:
    return None if path is None else str(path)
