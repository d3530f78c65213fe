"""Typed run configuration of the vision pipeline, read from YAML.

A YAML file maps onto :class:`VisionConfig`; every section is a dataclass, an unknown key or a value
of the wrong type is an :class:`~scm.validation.InvalidParameterError` naming the dotted key, and
values with a documented range are checked in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

from coremtl.balancers.registry import BALANCER_NAMES
from coremtl.devices import DEVICE_TYPES, check_device
from coremtl.label_matrix import label_columns
from coremtl.names import canonical_method
from coremtl.objective import CoreMTLObjective
from coremtl.tasks import Task
from coremtl.trainer_config import OptimizationConfig
from scm.validation import InvalidParameterError

from .attributes import CELEBA_ATTRIBUTES, attribute_tasks

TASK_NAMES = ("segmentation", "depth", "normal")
DATASETS = (
    "nyuv2",
    "cityscapes",
    "scenes",
    "celeba",
    "gta5",
    "cityscapes_c",
    "colored_cityscapes",
)
ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101")
SHARED = "shared"
"""``model.kind`` of hard sharing trained by ``training.balancer`` (resolved to that balancer)."""
OUTPUT_STRIDE = 8
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _require(condition: bool, key: str, expected: str, value: object) -> None:
    if not condition:
        raise InvalidParameterError(f"{key}: expected {expected}, got {value!r}")


def check_resolution(resolution: object, key: str) -> None:
    """``[height, width]``, both positive multiples of the encoder's output stride (8): the smallest
    image the model takes is 8 x 8."""
    _require(
        isinstance(resolution, (list, tuple))
        and len(resolution) == 2
        and all(isinstance(r, int) and r > 0 and r % OUTPUT_STRIDE == 0 for r in resolution),
        key,
        f"[height, width], both positive multiples of {OUTPUT_STRIDE} (the output stride; "
        f"at least {OUTPUT_STRIDE})",
        resolution,
    )


@dataclass
class ScenesConfig:
    """Parameters of the in-memory rendered scenes (used when ``data.root`` is empty)."""

    train_size: int = 64
    test_size: int = 16
    shift: float = 1.0
    test_environment: Literal["source", "target"] = "target"
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.train_size >= 2, "data.scenes.train_size", "an integer >= 2", self.train_size)
        _require(self.test_size >= 1, "data.scenes.test_size", "an integer >= 1", self.test_size)
        _require(self.shift >= 0, "data.scenes.shift", "a non-negative number", self.shift)


@dataclass
class CelebAConfig:
    """The CelebA attributes a run learns and its model-selection split.

    ``attributes``: a list of names among the 40 of ``list_attr_celeba.txt``
    (:data:`~.attributes.CELEBA_ATTRIBUTES`), or an integer ``K``: the first ``K`` in the file's
    column order (default: all 40). Resolved to the list of names; the run's tasks are these names.
    ``validation``: ``"official"`` selects models on the official validation partition (``1`` in
    ``list_eval_partition.txt``); ``"carved"`` on ``data.val_fraction`` of the training partition
    (seeded by ``data.split_seed``). Either way training uses partition ``0`` (less the carved part)
    and the reported test split is partition ``2``.
    """

    attributes: list[str] | int = 40
    validation: Literal["official", "carved"] = "official"

    def __post_init__(self) -> None:
        count = len(CELEBA_ATTRIBUTES)
        if isinstance(self.attributes, int):
            _require(
                1 <= self.attributes <= count,
                "data.celeba.attributes",
                f"an integer in [1, {count}] or a list of attribute names",
                self.attributes,
            )
            self.attributes = list(CELEBA_ATTRIBUTES[: self.attributes])
        _require(
            len(self.attributes) >= 1, "data.celeba.attributes", "a non-empty list", self.attributes
        )
        for name in self.attributes:
            _require(
                name in CELEBA_ATTRIBUTES,
                "data.celeba.attributes",
                f"names among the CelebA attributes {list(CELEBA_ATTRIBUTES)}",
                name,
            )
        _require(
            len(set(self.attributes)) == len(self.attributes),
            "data.celeba.attributes",
            "no repeats",
            self.attributes,
        )


@dataclass
class GTA5Config:
    """GTA5 -> Cityscapes (``dataset: gta5``; :mod:`.datasets.gta5`).

    ``data.root`` is the GTA5 folder (training and carved validation), ``target_root`` the
    Cityscapes ``.npy`` folder whose ``val`` split is the test split. GTA5 depth ``d`` becomes
    ``s * r(d)`` with ``r(d) = 1/d`` (``target_depth: inverse``, the LibMTL/MTAN Cityscapes
    disparity) or ``r(d) = d`` (``depth``), and ``s = depth_factor`` (``depth_scaling: factor``)
    or ``s = median(target train depth) / median(r(GTA5 train depth))`` over valid pixels of at
    most ``median_files`` files of each (``median``). ``max_depth > 0`` marks raw GTA5 depths
    above it invalid.
    """

    target_root: str | None = None
    target_depth: Literal["inverse", "depth"] = "inverse"
    depth_scaling: Literal["median", "factor"] = "median"
    depth_factor: float = 1.0
    median_files: int = 64
    max_depth: float = 0.0

    def __post_init__(self) -> None:
        _require(self.depth_factor > 0, "data.gta5.depth_factor", "> 0", self.depth_factor)
        _require(self.median_files >= 1, "data.gta5.median_files", ">= 1", self.median_files)
        _require(self.max_depth >= 0, "data.gta5.max_depth", ">= 0 (0: no limit)", self.max_depth)


@dataclass
class CorruptionConfig:
    """Cityscapes-C (``dataset: cityscapes_c``; :mod:`.datasets.cityscapes_c`).

    Trains on the clean Cityscapes ``data.root``; tests on ``root/<name>/<severity>/<i>.png``
    paired with the clean ``val`` labels. ``name: all`` takes every corruption of ``root``,
    ``severity: 0`` every severity; several pairs are scored as one concatenated split.
    """

    root: str | None = None
    name: str = "gaussian_noise"
    severity: int = 3

    def __post_init__(self) -> None:
        _require(
            0 <= self.severity <= 5,
            "data.corruption.severity",
            "an integer in 1..5, or 0 for all",
            self.severity,
        )


@dataclass
class ColoredConfig:
    """Colored-Cityscapes (``dataset: colored_cityscapes``; :mod:`.datasets.colored`).

    Labelled pixels become ``(1 - strength) x + strength c[y]``; the test split permutes the
    class colours by a derangement drawn from ``seed``.
    """

    strength: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        _require(
            0.0 <= self.strength <= 1.0,
            "data.colored.strength",
            "a number in [0, 1]",
            self.strength,
        )


@dataclass
class DataConfig:
    """Where the data is and how it is split and augmented.

    ``root`` holds ``{train,val}/{image,label,depth,normal}/<i>.npy``; the validation split for model
    selection is ``val_fraction`` of the *training* files (seeded by ``split_seed``), and the
    reported test split is ``<root>/val`` (the benchmarks' customary test split).

    ``dataset: celeba``: ``root`` holds the official CelebA files (:mod:`.datasets.celeba`), the
    tasks are the attributes of ``celeba`` (``tasks`` left out, or equal to that list), and
    ``num_classes`` is unused. ``tasks`` left out elsewhere: segmentation, depth and normals.

    Out-of-distribution variants of Cityscapes (7 classes, segmentation and depth): ``gta5``
    (``root`` is the GTA5 folder, see ``gta5``), ``cityscapes_c`` (``root`` the clean Cityscapes,
    see ``corruption``) and ``colored_cityscapes`` (``root`` the Cityscapes, see ``colored``).

    ``depth_encoding`` says what the depth maps hold, which decides how the scale-crop
    augmentation changes them: ``depth`` (metres; zooming in by ``s`` divides it by ``s``) or
    ``inverse`` (disparity, as the LibMTL/MTAN Cityscapes files hold: multiplied by ``s``);
    ``auto`` is ``inverse`` for the Cityscapes family (and GTA5 brought to it with
    ``gta5.target_depth: inverse``) and ``depth`` otherwise. LibMTL divides in both cases.
    """

    dataset: Literal[
        "nyuv2", "cityscapes", "scenes", "celeba", "gta5", "cityscapes_c", "colored_cityscapes"
    ] = "nyuv2"
    root: str | None = None
    tasks: list[str] | None = None
    num_classes: int = 13
    resolution: list[int] = field(default_factory=lambda: [288, 384])
    augment: bool = True
    val_fraction: float = 0.1
    split_seed: int = 0
    num_workers: int = 0
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    celeba: CelebAConfig = field(default_factory=CelebAConfig)
    gta5: GTA5Config = field(default_factory=GTA5Config)
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    colored: ColoredConfig = field(default_factory=ColoredConfig)
    depth_encoding: Literal["auto", "depth", "inverse"] = "auto"

    @property
    def inverse_depth(self) -> bool:
        """Whether the depth maps hold inverse depth (see ``depth_encoding``)."""
        if self.depth_encoding != "auto":
            return self.depth_encoding == "inverse"
        if self.dataset == "gta5":
            return self.gta5.target_depth == "inverse"
        return self.dataset in ("cityscapes", "cityscapes_c", "colored_cityscapes")

    def __post_init__(self) -> None:
        if self.dataset == "celeba":
            attributes = list(self.celeba.attributes)
            _require(
                self.tasks is None or self.tasks == attributes,
                "data.tasks",
                f"left out for data.dataset 'celeba' (the tasks are data.celeba.attributes, "
                f"{attributes})",
                self.tasks,
            )
            self.tasks = attributes
        if self.tasks is None:
            self.tasks = list(TASK_NAMES)
        _require(len(self.tasks) >= 1, "data.tasks", "a non-empty list", self.tasks)
        if self.dataset != "celeba":
            for task in self.tasks:
                _require(task in TASK_NAMES, "data.tasks", f"names among {TASK_NAMES}", task)
        _require(len(set(self.tasks)) == len(self.tasks), "data.tasks", "no repeats", self.tasks)
        _require(self.num_classes >= 2, "data.num_classes", "an integer >= 2", self.num_classes)
        check_resolution(self.resolution, "data.resolution")
        _require(
            0.0 < self.val_fraction < 1.0,
            "data.val_fraction",
            "a number in (0, 1)",
            self.val_fraction,
        )
        _require(self.num_workers >= 0, "data.num_workers", "an integer >= 0", self.num_workers)
        _require(self.split_seed >= 0, "data.split_seed", "an integer >= 0", self.split_seed)
        if self.dataset != "scenes":
            _require(self.root is not None, "data.root", "a folder for this dataset", self.root)


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
        _require(self.arch in ARCHITECTURES, "model.arch", f"one of {ARCHITECTURES}", self.arch)
        _require(
            self.semantic_channels > 0, "model.semantic_channels", "> 0", self.semantic_channels
        )
        _require(
            self.residual_channels > 0, "model.residual_channels", "> 0", self.residual_channels
        )
        _require(
            not self.skip_connection or self.kind == "core-mtl",
            "model.skip_connection",
            f"false unless model.kind is 'core-mtl' (model.kind is {self.kind!r})",
            self.skip_connection,
        )
        _require(self.mtcrl_modules >= 2, "model.mtcrl_modules", ">= 2", self.mtcrl_modules)
        _require(
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
            _require(value >= 0, f"method.repmtl.{name}", "a non-negative number", value)
        _require(
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
            _require(value >= 0, f"method.mtcrl.{name}", "a non-negative number", value)


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
    docs/THEORY.md S13) or ``none``. The hard-grounding priors are this pipeline's own.
    ``repmtl`` and ``mtcrl`` hold the weights of those baselines' regularisers (read only when
    ``model.kind`` names them).
    """

    cka_weight: float = _LIBRARY["cka_weight"]
    cka_warmup_steps: int = _LIBRARY["cka_warmup_steps"]
    debiased_cka: bool = _LIBRARY["debiased_cka"]
    cfa_weight: float = _LIBRARY["cfa_weight"]
    cfa_probability: float = _LIBRARY["cfa_probability"]
    reconstruction_weight: float = _LIBRARY["reconstruction_weight"]
    tv_weight: float = 0.01
    achromatic_weight: float = 0.1
    correlation_weight: float = 0.1
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
            _require(value >= 0, f"method.{name}", "a non-negative number", value)

    def objective(self) -> CoreMTLObjective:
        """The CORE-MTL terms of this section: :class:`~coremtl.objective.CoreMTLObjective` with
        the fields of :data:`OBJECTIVE_FIELDS`, reading the input under ``"image"``."""
        settings = {name: getattr(self, name) for name in OBJECTIVE_FIELDS}
        return CoreMTLObjective(**settings, input_key="image")


@dataclass
class TrainingConfig(OptimizationConfig):
    """Optimisation and the staged schedule.

    The optimisation fields are those of :class:`coremtl.trainer_config.OptimizationConfig`, by
    the same names and meaning, handed to the trainer as they are: AdamW with decoupled weight
    decay (biases and normalisation scales exempt unless ``weight_decay_on_vectors``),
    ``warmup_steps`` of linear warm-up then ``lr_schedule`` (cosine decay to zero), clipping of
    the global gradient 2-norm at ``grad_clip`` (``null``: none), ``max_batches_per_epoch``
    (0: all full batches), ``checkpoint_every`` (also save ``last.pt`` every that many steps, so
    a run can resume from inside an epoch; 0: at epoch ends only).

    Epochs ``[0, reconstruction_epochs)`` train the grounding reconstruction alone; epochs
    ``[reconstruction_epochs, independence_start_epoch)`` add the task losses; from
    ``independence_start_epoch`` on, CKA and CFA are added as well. ``balancer`` (with
    ``balancer_options``) combines the task losses; ``selection_metric`` picks ``best.pt``
    (``delta_m`` or a validation metric's name).

    Older names are accepted (:data:`ALIASES`, resolved by :func:`from_dict`): ``lr`` for
    ``learning_rate``, ``max_steps_per_epoch`` for ``max_batches_per_epoch``,
    ``checkpoint_every_steps`` for ``checkpoint_every``; and ``grad_clip: 0`` means no clipping.
    """

    ALIASES: ClassVar[dict[str, str]] = {
        "lr": "learning_rate",
        "max_steps_per_epoch": "max_batches_per_epoch",
        "checkpoint_every_steps": "checkpoint_every",
    }

    epochs: int = 200
    batch_size: int = 8
    weight_decay_on_vectors: bool = False
    warmup_steps: int = 500
    reconstruction_epochs: int = 0
    independence_start_epoch: int = 0
    balancer: str = "ew"
    balancer_options: dict[str, Any] = field(default_factory=dict)
    selection_metric: str = "delta_m"

    def __post_init__(self) -> None:
        if self.grad_clip == 0:
            self.grad_clip = None
        try:
            super().__post_init__()
        except InvalidParameterError as error:
            raise InvalidParameterError(f"training.{error}") from None
        _require(self.batch_size >= 2, "training.batch_size", "an integer >= 2", self.batch_size)
        _require(
            self.learning_rate > 0,
            "training.learning_rate",
            "a positive number",
            self.learning_rate,
        )
        _require(
            0 <= self.reconstruction_epochs <= self.independence_start_epoch
            or self.independence_start_epoch == 0 == self.reconstruction_epochs,
            "training.reconstruction_epochs",
            "at most training.independence_start_epoch",
            self.reconstruction_epochs,
        )


@dataclass
class RunConfig:
    """Where outputs go, the seed and the device settings.

    ``Delta_m`` is taken against the single-task reference: the metrics of
    ``single_task_reference_file`` (a JSON mapping ``metric name -> value``, as written by
    ``coremtl train --single-task-references``) when given (the file wins), else the inline
    ``single_task_reference``, whose origin ``single_task_reference_label`` names (e.g. "inline:
    paper ResNet-50"); ``single_task_reference_mix: true`` lets inline values fill the metrics a
    file lacks. See :mod:`experiments.vision.single_task`. Reference values must be non-zero.
    ``distributed_balancing`` is how a ``torchrun`` run balances the tasks (``exact``: once on the
    global batch's quantities; ``local``: per rank, then averaged; :mod:`coremtl.distributed_balancing`).
    """

    output_dir: str = "runs/vision"
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True
    channels_last: bool = True
    progress: bool = False
    num_sample_images: int = 4
    single_task_reference: dict[str, float] = field(default_factory=dict)
    single_task_reference_file: str | None = None
    single_task_reference_label: str = "inline: run.single_task_reference"
    single_task_reference_mix: bool = False
    distributed_balancing: str = "exact"

    def __post_init__(self) -> None:
        check_device(self.device, "run.device", DEVICE_TYPES)
        _require(
            self.distributed_balancing in ("exact", "local"),
            "run.distributed_balancing",
            "'exact' (the balancer on the global batch) or 'local' (per-rank, averaged)",
            self.distributed_balancing,
        )
        _require(self.seed >= 0, "run.seed", "an integer >= 0", self.seed)
        output = Path(self.output_dir)
        for folder in (output, *output.parents):
            _require(
                not folder.exists() or folder.is_dir(),
                "run.output_dir",
                f"a folder ({folder} is a file)",
                self.output_dir,
            )
        for name, value in self.single_task_reference.items():
            _require(
                math.isfinite(value) and value != 0,
                f"run.single_task_reference.{name}",
                "a finite non-zero number (Delta_m divides by it)",
                value,
            )
        _require(
            self.num_sample_images >= 0,
            "run.num_sample_images",
            "an integer >= 0",
            self.num_sample_images,
        )


MIOU_CONVENTIONS = ("present", "libmtl")


@dataclass
class MetricsConfig:
    """How reported metrics are computed (:mod:`experiments.vision.metrics`).

    ``miou_convention``: ``present`` (the mean IoU over the classes present in the split's truth or
    prediction, as torchmetrics computes it) or ``libmtl`` (LibMTL's mean over all
    ``data.num_classes`` classes of the split's confusion matrix: NaN when a class is absent from
    both), to compare with numbers published with LibMTL like for like.
    """

    miou_convention: Literal["present", "libmtl"] = "present"


@dataclass
class VisionConfig:
    """One run: data, model, CORE-MTL terms, training and run settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def __post_init__(self) -> None:
        attributes = bool(attribute_tasks(self.data.tasks))
        _require(
            not (attributes and self.model.grounding == "hard"),
            "model.grounding",
            "'soft' (the default for data.dataset 'celeba') or 'none': hard grounding renders "
            "the image from surface normals, and attribute tasks carry no geometry",
            self.model.grounding,
        )
        self.model.grounding = resolve_grounding(self.model.grounding, self.data.tasks)
        self._resolve_balancer_kind()
        if self.model.kind == "core-mtl":
            self._check_coremtl_schedule()

    def _resolve_balancer_kind(self) -> None:
        """``model.kind`` made a method name: :data:`SHARED` becomes ``training.balancer``; a
        balancer's name is also the balancer that trains it (``training.balancer`` left at
        ``ew`` or naming the same one), as in :func:`coremtl.build`."""
        model, training = self.model, self.training
        if model.kind == SHARED:
            _require(
                training.balancer in BALANCER_NAMES,
                "training.balancer",
                f"one of {', '.join(BALANCER_NAMES)}",
                training.balancer,
            )
            model.kind = training.balancer
        if model.kind in BALANCER_NAMES:
            _require(
                training.balancer in ("ew", model.kind),
                "training.balancer",
                f"'ew' or {model.kind!r}: model.kind {model.kind!r} is itself the balancer",
                training.balancer,
            )
            training.balancer = model.kind

    def _check_coremtl_schedule(self) -> None:
        """The debiased CKA needs 4 samples a batch, and every stage starts before the last epoch."""
        method, training = self.method, self.training
        _require(
            not (method.cka_weight > 0 and method.debiased_cka and training.batch_size < 4),
            "training.batch_size",
            "at least 4 (the debiased CKA of method.cka_weight needs 4 samples per batch)",
            training.batch_size,
        )
        if method.independence == "conditional" and method.cka_weight > 0:
            needed = label_columns(label_tasks(self)) + 4
            _require(
                training.batch_size >= needed,
                "training.batch_size",
                f"at least {needed} for method.independence 'conditional' (4 samples beyond the "
                "label columns partialled out of each batch)",
                training.batch_size,
            )
        starts = {}
        if self.model.grounding != "none":
            starts["training.reconstruction_epochs"] = training.reconstruction_epochs
        if method.cka_weight > 0 or method.cfa_weight > 0:
            starts["training.independence_start_epoch"] = training.independence_start_epoch
        late = {key: start for key, start in starts.items() if start >= training.epochs}
        if late:
            named = ", ".join(f"{key}: {start}" for key, start in late.items())
            raise InvalidParameterError(
                f"{named}: expected below training.epochs ({training.epochs}); a stage starting "
                "there never trains (the tasks start at training.reconstruction_epochs, CKA and "
                "CFA at training.independence_start_epoch)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def label_tasks(config: VisionConfig) -> tuple[Task, ...]:
    """The run's tasks as :class:`coremtl.tasks.Task` (kind and outputs), from which the
    conditional independence penalty builds its label matrix (:func:`coremtl.label_matrix.label_matrix`):
    segmentation as dense classes (per-image class histograms), depth and normals as dense maps
    (per-image means), each CelebA attribute as a binary classification."""
    dense = {"segmentation": config.data.num_classes, "depth": 1, "normal": 3}
    return tuple(
        Task(name, "dense", dense[name]) if name in dense else Task(name, "classification", 1)
        for name in config.data.tasks
    )


def resolve_grounding(grounding: str, tasks: list[str]) -> str:
    """``model.grounding`` made concrete: ``"auto"`` is ``"soft"`` (the AdaIN decoder, docs/VISION.md's
    grounding for attributes) when the tasks are CelebA attributes, ``"hard"`` otherwise."""
    if grounding != "auto":
        return grounding
    return "soft" if attribute_tasks(tasks) else "hard"


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against ``annotation`` (recursively) and return it converted."""
    origin = get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise InvalidParameterError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, key)
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except InvalidParameterError as error:
                errors.append(str(error))
        raise InvalidParameterError(
            f"{key}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}"
        )
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            raise InvalidParameterError(f"{key}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        (item_type,) = get_args(annotation)
        if not isinstance(value, list):
            raise InvalidParameterError(f"{key}: expected a list, got {value!r}")
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidParameterError(f"{key}: expected a mapping, got {value!r}")
        key_type, value_type = get_args(annotation)
        return {
            _convert(k, key_type, f"{key}.<key>"): _convert(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise InvalidParameterError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameterError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidParameterError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise InvalidParameterError(f"{key}: expected a string, got {value!r}")
        return value
    raise InvalidParameterError(f"{key}: unsupported annotation {annotation!r}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types name the dotted key.
    A class's ``ALIASES`` (older name -> field name) are accepted for its fields."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    aliases: dict[str, str] = getattr(cls, "ALIASES", {})
    for key in data:
        if aliases.get(key, key) not in names:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise InvalidParameterError(f"{dotted}: unknown key; expected one of {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        name = aliases.get(key, key)
        if name in kwargs:
            raise InvalidParameterError(
                f"{dotted}: {key!r} and {name!r} name the same setting; give only {name!r}"
            )
        kwargs[name] = _convert(value, hints[name], dotted)
    return cls(**kwargs)


def load_config(path: str | Path, overrides: list[str] | None = None) -> VisionConfig:
    """Read a YAML config and apply ``section.key=value`` overrides (values parsed as YAML)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no such file {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InvalidParameterError(
            f"config {path}: not valid YAML ({_yaml_problem(error)})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidParameterError(f"config {path}: expected a mapping at the top level")
    for override in overrides or []:
        apply_override(data, override)
    return from_dict(VisionConfig, data)


def _yaml_problem(error: Exception) -> str:
    """A YAML parse error on one line: what is wrong and where (line and column, from 1)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``data[a][b] = value`` for an override ``"a.b=value"`` (value parsed as YAML).

    An older name of a field (its section's ``ALIASES``) sets the field, replacing the value the
    file gives under either name."""
    import yaml

    if "=" not in override:
        raise InvalidParameterError(f"--set: expected key=value, got {override!r}")
    dotted, raw = override.split("=", 1)
    keys = dotted.strip().split(".")
    target = data
    section: Any = VisionConfig
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise InvalidParameterError(f"--set {dotted}: {key} is not a section")
        field_types = get_type_hints(section) if dataclasses.is_dataclass(section) else {}
        section = field_types.get(key)
    aliases: dict[str, str] = getattr(section, "ALIASES", {})
    name = aliases.get(keys[-1], keys[-1])
    for alias in [alias for alias, field_name in aliases.items() if field_name == name]:
        target.pop(alias, None)
    try:
        target[name] = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise InvalidParameterError(
            f"--set {dotted}: the value is not valid YAML ({_yaml_problem(error)})"
        ) from None
