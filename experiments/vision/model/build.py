"""The vision run's method through the library's one dispatcher, :func:`coremtl.build`.

``model.kind`` is the method (a name of :data:`coremtl.METHODS`); :func:`coremtl.build` decides
what it is made of (the model around the encoder, the streams, the staged term sources of
:mod:`coremtl.schedule` with the stages of the ``training`` section, the balancer), and this
module brings the pipeline's own layers as :class:`coremtl.parts.Parts`:

- the encoder: a dilated ResNet at output stride 8 (:class:`~.encoder.ResNetEncoder`) with the
  weights of ``model.weights`` (:func:`~.weights.load_pretrained`); MTAN attends over its four
  stages;
- the heads: torchvision DeepLab heads upsampled by 8 for dense tasks, a pooled linear head per
  CelebA attribute (:func:`~.heads.build_heads`), or for ``core-mtl`` (without the skip ablation),
  the balancers and ``rep-mtl`` on attributes one :class:`~.attribute_heads.FusedAttributeHead`
  (one linear layer on the pooled features, so the head's cost does not grow with the number of
  attributes) in :class:`~.attribute_heads.AttributeDualStreamModel` (its head drawn after the
  decoder, with the model) or :class:`~.attribute_heads.AttributeSharedBottom`;
- CORE-MTL's grounding decoder: hard (:class:`coremtl.hard_grounding.HardGroundingDecoder`, its
  normals from the normal task's head when there is one, else from a DeepLab head of its own; its
  terms :class:`coremtl.hard_grounding.HardGroundingTerms` with the priors of the ``method``
  section) or soft (:class:`SigmoidImageDecoder`), as ``model.grounding`` resolves
  (:func:`~experiments.vision.config.resolve_grounding`); the streams are
  ``model.semantic_channels`` and ``model.residual_channels`` wide;
- ``model.skip_connection``: the ablation :class:`~.skip.SkipConnectionDualStreamModel`, heads on
  ``concat(Z_s, F)``;
- MT-CRL: ``model.mtcrl_modules`` modules of ``model.mtcrl_module_channels`` channels, soft gates,
  and the regularisers of ``method.repmtl`` / ``method.mtcrl``
  (:func:`~experiments.vision.regularizers.build_regularizers`).

The new layers are drawn from torch's generator as the run seeded it (``seed=None``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scm.validation import InvalidParameterError

from ..attributes import attribute_tasks
from ..config import SHARED, VisionConfig, label_tasks
from .attribute_heads import AttributeDualStreamModel, AttributeSharedBottom, FusedAttributeHead
from .encoder import ResNetEncoder
from .heads import DenseHead, build_heads
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


def single_task(tasks: list[str]) -> str:
    """The task of a single-task model; an error naming ``data.tasks`` unless there is one."""
    if len(tasks) != 1:
        raise InvalidParameterError(
            f"data.tasks: model.kind 'single-task' trains exactly one task, got {tasks!r} (for "
            "the references of every task: coremtl train --config FILE --single-task-references)"
        )
    return tasks[0]


def vision_parts(config: VisionConfig, method: str, encoder_channels: int):
    """The pipeline's layers and terms for :func:`coremtl.build` (module docstring)."""
    from coremtl.hard_grounding import HardGroundingDecoder, HardGroundingTerms
    from coremtl.parts import Parts

    from ..regularizers import build_regularizers

    model, tasks, classes = config.model, list(config.data.tasks), config.data.num_classes
    fused = attribute_tasks(tasks) == tasks and not model.skip_connection
    fused = fused and method not in ("mtan", "mt-crl", "single-task")
    extra = encoder_channels if model.skip_connection else 0

    def heads(width: int) -> nn.Module:
        if fused and method == "core-mtl":
            return nn.ModuleDict()
        if fused:
            return FusedAttributeHead(tasks, width)
        return build_heads(tasks, width + extra, classes)

    def fused_dual_stream(encoder, split, _, decoder) -> nn.Module:
        head = FusedAttributeHead(tasks, model.semantic_channels)
        return AttributeDualStreamModel(encoder, split, head, decoder)

    def decoder(semantic: int, residual: int, task_heads: nn.Module) -> nn.Module | None:
        if model.grounding == "hard":
            shares = "normal" in task_heads and not model.skip_connection
            normals = task_heads["normal"] if shares else DenseHead("normal", semantic, 3)
            return HardGroundingDecoder(residual, normals)
        if model.grounding == "soft":
            return SigmoidImageDecoder(semantic, residual)
        return None

    def grounding_terms(grounding_decoder, objective):
        if not isinstance(grounding_decoder, HardGroundingDecoder):
            return None
        priors = config.method
        return HardGroundingTerms(
            objective.reconstruction_weight,
            priors.tv_weight,
            priors.achromatic_weight,
            priors.correlation_weight,
            input_key=objective.input_key,
        )

    dual_stream = None
    if model.skip_connection:
        dual_stream = SkipConnectionDualStreamModel
    elif fused:
        dual_stream = fused_dual_stream
    regularizers = build_regularizers(config)
    return Parts(
        heads=heads,
        decoder=decoder,
        grounding_terms=grounding_terms,
        dual_stream=dual_stream,
        shared_bottom=AttributeSharedBottom if fused else None,
        regularizer=regularizers[0] if regularizers else None,
    )


def stages(config: VisionConfig) -> tuple[int, int]:
    """CORE-MTL's ``(task_start, independence_start)`` from the ``training`` section: the tasks
    after ``reconstruction_epochs`` of grounding alone (at once without grounding), CKA and CFA
    from ``independence_start_epoch`` (with the tasks when both weights are 0)."""
    training, method = config.training, config.method
    task_start = training.reconstruction_epochs if config.model.grounding != "none" else 0
    independent = method.cka_weight > 0 or method.cfa_weight > 0
    return task_start, training.independence_start_epoch if independent else task_start


def build_preset(config: VisionConfig):
    """The :class:`coremtl.preset.Preset` of the run (model, balancer, term sources, task start)
    and the weights file loaded into its encoder (None: random initialisation)."""
    import coremtl
    from coremtl.architectures.mtcrl import MTCRLOptions

    model = config.model
    method = "ew" if model.kind == SHARED else model.kind
    tasks = list(config.data.tasks)
    if method == "single-task":
        single_task(tasks)
    encoder = ResNetEncoder(model.arch)
    weights_file = load_pretrained(encoder, model.weights)
    backbone = nn.Sequential(*encoder.stages()) if method == "mtan" else encoder
    mtcrl = config.method.mtcrl
    options = MTCRLOptions(
        modules=model.mtcrl_modules,
        width=model.mtcrl_module_channels,
        decorrelation=mtcrl.decorrelation_weight,
        sparsity=mtcrl.sparsity_weight,
        invariance=mtcrl.invariance_weight,
        gates="soft",
    )
    core = method == "core-mtl"
    core_options = {
        "streams": (model.semantic_channels, model.residual_channels),
        "grounding": model.grounding,
        "objective": config.method.objective(),
        "stages": stages(config),
    }
    preset = coremtl.build(
        method,
        backbone,
        label_tasks(config),
        torch.zeros(2, 3, *config.data.resolution),
        config.training.epochs,
        balancer=None if method == "single-task" else config.training.balancer,
        balancer_options=None if method == "single-task" else config.training.balancer_options,
        seed=None,
        mtcrl=options if method == "mt-crl" else None,
        parts=vision_parts(config, method, encoder.out_channels),
        **(core_options if core else {}),
    )
    return preset, None if weights_file is None else str(weights_file)


def build_model(config: VisionConfig) -> tuple[nn.Module, str | None]:
    """The run's model (:func:`build_preset`) and the weights file loaded into its encoder."""
    preset, weights_file = build_preset(config)
    return preset.model, weights_file
