"""The ``model`` and ``method`` sections: the method and its network, the CORE-MTL terms (the
library's :class:`~coremtl.objective.CoreMTLObjective`), the hard-grounding priors and the
weights of the Rep-MTL and MT-CRL regularisers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from coremtl import defaults
from coremtl.names import canonical_method
from coremtl.objective import CoreMTLObjective
from scm.validation import InvalidParameterError

from .checks import require

ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101")
SHARED = "shared"
"""``model.kind`` of hard sharing trained by ``training.balancer`` (resolved to that balancer)."""


@dataclass
class ModelConfig:
    """The network: backbone, streams, heads and grounding decoder.

    ``kind``: the method, a name of :data:`coremtl.METHODS` (older spellings are read as their
    name, :mod:`coremtl.names`): ``"core-mtl"`` (dual streams, heads on ``Z_s``), a balancer name
    such as ``"ew"`` or ``"pcgrad"`` (hard parameter sharing: heads on the whole encoder output,
    trained by that balancer), ``"mtan"`` (MTAN task attention over the encoder stages),
    ``"single-task"`` (encoder and head of the one task in ``data.tasks``: the single-task
    reference of ``Delta_m``), ``"rep-mtl"`` (hard sharing plus the Rep-MTL saliency regulariser,
    weights in ``method.repmtl``) or ``"mt-crl"`` (MT-CRL: ``mtcrl_modules`` disentangled modules
    of ``mtcrl_module_channels`` channels each on the encoder maps, a learned task-to-module graph,
    regulariser weights in ``method.mtcrl``). :data:`SHARED` (``"shared"``) is hard sharing
    trained by ``training.balancer``; a run's config resolves it to that balancer's name.
    ``weights``: ``"auto"`` (ImageNet weights from the torchvision cache, stop if absent),
    ``"random"`` (random initialisation) or the path of a ``.pth`` state dict.
    ``grounding``: ``"hard"`` (physics renderer), ``"soft"`` (AdaIN decoder), ``"none"``, or
    ``"auto"`` (:func:`resolve_grounding`: soft for CelebA attributes, hard otherwise).
    ``skip_connection`` (``kind: core-mtl`` only; off by default): an ablation whose heads read
    ``concat(Z_s, F)`` with ``F`` the pre-split encoder features, so the residual stream is
    reachable by the heads (the reference implementation's mistake that docs/VISION.md names).
    """

    kind: str = "core-mtl"
    arch: str = "resnet50"
    weights: str = "auto"
    semantic_channels: int = 256
    residual_channels: int = 256
    grounding: Literal["auto", "hard", "soft", "none"] = "auto"
    skip_connection: bool = False
    mtcrl_modules: int = 4
    mtcrl_module_channels: int = 128

    def __post_init__(self) -> None:
        if self.kind != SHARED:
            self.kind = canonical_method(self.kind, "model.kind")
        require(self.arch in ARCHITECTURES, "model.arch", f"one of {ARCHITECTURES}", self.arch)
        require(
            self.semantic_channels > 0, "model.semantic_channels", "> 0", self.semantic_channels
        )
        require(
            self.residual_channels > 0, "model.residual_channels", "> 0", self.residual_channels
        )
        require(
            not self.skip_connection or self.kind == "core-mtl",
            "model.skip_connection",
            f"false unless model.kind is 'core-mtl' (model.kind is {self.kind!r})",
            self.skip_connection,
        )
        require(self.mtcrl_modules >= 2, "model.mtcrl_modules", ">= 2", self.mtcrl_modules)
        require(
            self.mtcrl_module_channels >= 1,
            "model.mtcrl_module_channels",
            ">= 1",
            self.mtcrl_module_channels,
        )


@dataclass
class RepMTLConfig:
    """Weights of the Rep-MTL terms (``model.kind: rep-mtl``;
    :class:`coremtl.architectures.repmtl.RepMTLRegularizer`):
    ``tsr_weight L_TSR + csa_weight L_CSA``, ``temperature`` of the CSA InfoNCE."""

    tsr_weight: float = 1.0
    csa_weight: float = 0.1
    temperature: float = 0.5

    def __post_init__(self) -> None:
        for name in ("tsr_weight", "csa_weight"):
            value = getattr(self, name)
            require(value >= 0, f"method.repmtl.{name}", "a non-negative number", value)
        require(
            self.temperature > 0, "method.repmtl.temperature", "a positive number", self.temperature
        )


@dataclass
class MTCRLConfig:
    """Weights of the MT-CRL terms (``model.kind: mt-crl``;
    :class:`coremtl.architectures.mtcrl.MTCRLRegularizer`):
    ``decorrelation_weight L_dis + invariance_weight L_inv + sparsity_weight L_sparse``.

    ``L_inv`` needs per-sample environment labels under ``batch["environment"]``; batches without
    them skip it (one notice per run, see :mod:`experiments.vision.regularizers`).
    """

    decorrelation_weight: float = 1.0
    invariance_weight: float = 1.0
    sparsity_weight: float = 0.01

    def __post_init__(self) -> None:
        for name in ("decorrelation_weight", "invariance_weight", "sparsity_weight"):
            value = getattr(self, name)
            require(value >= 0, f"method.mtcrl.{name}", "a non-negative number", value)


_LIBRARY = {f.name: f.default for f in dataclasses.fields(CoreMTLObjective)}
OBJECTIVE_FIELDS = (
    "cka_weight",
    "cka_warmup_steps",
    "debiased_cka",
    "cfa_weight",
    "cfa_probability",
    "reconstruction_weight",
    "independence",
)
"""The fields of ``method`` that are :class:`coremtl.objective.CoreMTLObjective`'s, by its names."""


@dataclass
class MethodConfig:
    """Weights of the CORE-MTL terms and of the hard-grounding priors.

    Total loss: ``sum_t w_t L_t + cka_weight L_cka + cfa_weight L_cfa + reconstruction_weight
    (L_render + tv_weight L_tv + achromatic_weight L_achromatic + correlation_weight L_corr)``.
    The CORE-MTL fields (:data:`OBJECTIVE_FIELDS`) are those of the library's
    :class:`coremtl.objective.CoreMTLObjective`, with its defaults and its checks;
    :meth:`objective` is that objective. Among them ``independence``: ``unconditional`` (the CKA
    of the streams), ``conditional`` (the CKA after partialling out the batch's labels: per-image
    class histograms of segmentation, per-image means of depth and normals, attribute values;
    docs/THEORY.md S13) or ``none``. The hard-grounding priors default to the library's
    (:mod:`coremtl.defaults`).
    ``repmtl`` and ``mtcrl`` hold the weights of those baselines' regularisers (read only when
    ``model.kind`` names them).
    """

    cka_weight: float = _LIBRARY["cka_weight"]
    cka_warmup_steps: int = _LIBRARY["cka_warmup_steps"]
    debiased_cka: bool = _LIBRARY["debiased_cka"]
    cfa_weight: float = _LIBRARY["cfa_weight"]
    cfa_probability: float = _LIBRARY["cfa_probability"]
    reconstruction_weight: float = _LIBRARY["reconstruction_weight"]
    tv_weight: float = defaults.ALBEDO_TV_WEIGHT
    achromatic_weight: float = defaults.ACHROMATIC_SHADING_WEIGHT
    correlation_weight: float = defaults.ALBEDO_NORMAL_CORRELATION_WEIGHT
    independence: str = _LIBRARY["independence"]
    repmtl: RepMTLConfig = field(default_factory=RepMTLConfig)
    mtcrl: MTCRLConfig = field(default_factory=MTCRLConfig)

    def __post_init__(self) -> None:
        try:
            self.objective()
        except InvalidParameterError as error:
            raise InvalidParameterError(f"method.{error}") from None
        for name in ("tv_weight", "achromatic_weight", "correlation_weight"):
            value = getattr(self, name)
            require(value >= 0, f"method.{name}", "a non-negative number", value)

    def objective(self) -> CoreMTLObjective:
        """The CORE-MTL terms of this section: :class:`~coremtl.objective.CoreMTLObjective` with
        the fields of :data:`OBJECTIVE_FIELDS`, reading the input under ``"image"``."""
        settings = {name: getattr(self, name) for name in OBJECTIVE_FIELDS}
        return CoreMTLObjective(**settings, input_key="image")
