"""Typed run configuration of the vision pipeline, read from YAML.

A YAML file maps onto :class:`VisionConfig`; every section is a dataclass, an unknown key or a value
of the wrong type is an :class:`~scm.validation.InvalidParameterError` naming the dotted key, and
values with a documented range are checked in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from scm.validation import InvalidParameterError

TASK_NAMES = ("segmentation", "depth", "normal")
DATASETS = ("nyuv2", "cityscapes", "scenes")
ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101")


def _require(condition: bool, key: str, expected: str, value: object) -> None:
    if not condition:
        raise InvalidParameterError(f"{key}: expected {expected}, got {value!r}")


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
class DataConfig:
    """Where the data is and how it is split and augmented.

    ``root`` holds ``{train,val}/{image,label,depth,normal}/<i>.npy``; the validation split for model
    selection is ``val_fraction`` of the *training* files (seeded by ``split_seed``), and the
    reported test split is ``<root>/val`` (the benchmarks' customary test split).
    """

    dataset: Literal["nyuv2", "cityscapes", "scenes"] = "nyuv2"
    root: str | None = None
    tasks: list[str] = field(default_factory=lambda: ["segmentation", "depth", "normal"])
    num_classes: int = 13
    resolution: list[int] = field(default_factory=lambda: [288, 384])
    augment: bool = True
    val_fraction: float = 0.1
    split_seed: int = 0
    num_workers: int = 0
    scenes: ScenesConfig = field(default_factory=ScenesConfig)

    def __post_init__(self) -> None:
        _require(len(self.tasks) >= 1, "data.tasks", "a non-empty list", self.tasks)
        for task in self.tasks:
            _require(task in TASK_NAMES, "data.tasks", f"names among {TASK_NAMES}", task)
        _require(len(set(self.tasks)) == len(self.tasks), "data.tasks", "no repeats", self.tasks)
        _require(self.num_classes >= 2, "data.num_classes", "an integer >= 2", self.num_classes)
        _require(
            len(self.resolution) == 2 and all(r > 0 and r % 8 == 0 for r in self.resolution),
            "data.resolution",
            "[height, width], both positive multiples of 8 (output stride 8)",
            self.resolution,
        )
        _require(
            0.0 < self.val_fraction < 1.0,
            "data.val_fraction",
            "a number in (0, 1)",
            self.val_fraction,
        )
        _require(self.num_workers >= 0, "data.num_workers", "an integer >= 0", self.num_workers)
        if self.dataset != "scenes":
            _require(self.root is not None, "data.root", "a folder for this dataset", self.root)


@dataclass
class ModelConfig:
    """The network: backbone, streams, heads and grounding decoder.

    ``kind``: ``"coremtl"`` (dual streams, heads on ``Z_s``), ``"shared"`` (hard parameter
    sharing: heads on the whole encoder output; the backbone of every balancer baseline) or
    ``"mtan"`` (MTAN task attention over the encoder stages).
    ``weights``: ``"auto"`` (ImageNet weights from the torchvision cache, stop if absent),
    ``"random"`` (random initialisation) or the path of a ``.pth`` state dict.
    ``grounding``: ``"hard"`` (physics renderer), ``"soft"`` (AdaIN decoder) or ``"none"``.
    """

    kind: Literal["coremtl", "shared", "mtan"] = "coremtl"
    arch: str = "resnet50"
    weights: str = "auto"
    semantic_channels: int = 256
    residual_channels: int = 256
    grounding: Literal["hard", "soft", "none"] = "hard"

    def __post_init__(self) -> None:
        _require(self.arch in ARCHITECTURES, "model.arch", f"one of {ARCHITECTURES}", self.arch)
        _require(
            self.semantic_channels > 0, "model.semantic_channels", "> 0", self.semantic_channels
        )
        _require(
            self.residual_channels > 0, "model.residual_channels", "> 0", self.residual_channels
        )


@dataclass
class MethodConfig:
    """Weights of the CORE-MTL terms and of the hard-grounding priors.

    Total loss: ``sum_t w_t L_t + cka_weight L_cka + cfa_weight L_cfa + reconstruction_weight
    (L_render + tv_weight L_tv + achromatic_weight L_achromatic + correlation_weight L_corr)``.
    """

    cka_weight: float = 0.1
    cka_warmup_steps: int = 500
    debiased_cka: bool = True
    cfa_weight: float = 0.5
    cfa_probability: float = 0.5
    reconstruction_weight: float = 1.0
    tv_weight: float = 0.01
    achromatic_weight: float = 0.1
    correlation_weight: float = 0.1

    def __post_init__(self) -> None:
        for name in (
            "cka_weight",
            "cfa_weight",
            "reconstruction_weight",
            "tv_weight",
            "achromatic_weight",
            "correlation_weight",
        ):
            value = getattr(self, name)
            _require(value >= 0, f"method.{name}", "a non-negative number", value)
        _require(
            0.0 <= self.cfa_probability <= 1.0,
            "method.cfa_probability",
            "a probability in [0, 1]",
            self.cfa_probability,
        )
        _require(
            self.cka_warmup_steps >= 0, "method.cka_warmup_steps", ">= 0", self.cka_warmup_steps
        )


@dataclass
class TrainingConfig:
    """Optimisation and the staged schedule.

    Epochs ``[0, reconstruction_epochs)`` train the grounding reconstruction alone; epochs
    ``[reconstruction_epochs, independence_start_epoch)`` add the task losses; from
    ``independence_start_epoch`` on, CKA and CFA are added as well. AdamW with decoupled weight
    decay, ``warmup_steps`` of linear warm-up then cosine decay to zero, gradient clipping at
    ``grad_clip`` (global 2-norm; 0 disables).
    """

    epochs: int = 200
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    grad_clip: float = 1.0
    reconstruction_epochs: int = 0
    independence_start_epoch: int = 0
    balancer: str = "ew"
    balancer_options: dict[str, Any] = field(default_factory=dict)
    max_steps_per_epoch: int = 0
    selection_metric: str = "delta_m"
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "training.epochs", "an integer >= 1", self.epochs)
        _require(self.batch_size >= 2, "training.batch_size", "an integer >= 2", self.batch_size)
        _require(self.lr > 0, "training.lr", "a positive number", self.lr)
        _require(self.weight_decay >= 0, "training.weight_decay", ">= 0", self.weight_decay)
        _require(self.warmup_steps >= 0, "training.warmup_steps", ">= 0", self.warmup_steps)
        _require(self.grad_clip >= 0, "training.grad_clip", ">= 0", self.grad_clip)
        _require(
            0 <= self.reconstruction_epochs <= self.independence_start_epoch
            or self.independence_start_epoch == 0 == self.reconstruction_epochs,
            "training.reconstruction_epochs",
            "at most training.independence_start_epoch",
            self.reconstruction_epochs,
        )
        _require(
            self.max_steps_per_epoch >= 0,
            "training.max_steps_per_epoch",
            ">= 0 (0: the whole epoch)",
            self.max_steps_per_epoch,
        )
        _require(
            self.checkpoint_every >= 1, "training.checkpoint_every", ">= 1", self.checkpoint_every
        )


@dataclass
class RunConfig:
    """Where outputs go, the seed and the device settings."""

    output_dir: str = "runs/vision"
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True
    channels_last: bool = True
    progress: bool = False
    num_sample_images: int = 4
    single_task_reference: dict[str, float] = field(default_factory=dict)


@dataclass
class VisionConfig:
    """One run: data, model, CORE-MTL terms, training and run settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidParameterError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise InvalidParameterError(f"{key}: expected a string, got {value!r}")
        return value
    raise InvalidParameterError(f"{key}: unsupported annotation {annotation!r}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types name the dotted key."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise InvalidParameterError(f"{dotted}: unknown key; expected one of {sorted(names)}")
    kwargs = {
        key: _convert(value, hints[key], f"{prefix}.{key}" if prefix else key)
        for key, value in data.items()
    }
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
        raise InvalidParameterError(f"config {path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise InvalidParameterError(f"config {path}: expected a mapping at the top level")
    for override in overrides or []:
        apply_override(data, override)
    return from_dict(VisionConfig, data)


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``data[a][b] = value`` for an override ``"a.b=value"`` (value parsed as YAML)."""
    import yaml

    if "=" not in override:
        raise InvalidParameterError(f"--set: expected key=value, got {override!r}")
    dotted, raw = override.split("=", 1)
    keys = dotted.strip().split(".")
    target = data
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise InvalidParameterError(f"--set {dotted}: {key} is not a section")
    target[keys[-1]] = yaml.safe_load(raw)
