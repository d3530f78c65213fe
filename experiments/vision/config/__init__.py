"""Typed run configuration of the vision pipeline, read from YAML.

A YAML file maps onto :class:`VisionConfig` (:mod:`.schema`), whose sections are dataclasses of
their own modules: ``data`` (:mod:`.data`), ``model`` and ``method`` (:mod:`.method`), ``training``,
``run`` and ``metrics`` (:mod:`.run`). :mod:`.loader` reads the file: an unknown key or a value of
the wrong type is an :class:`~scm.validation.InvalidParameterError` naming the dotted key, and
values with a documented range are checked in each section's ``__post_init__``
(:func:`.checks.require`).
"""

from .data import (
    DATASETS,
    OUTPUT_STRIDE,
    TASK_NAMES,
    CelebAConfig,
    ColoredConfig,
    CorruptionConfig,
    DataConfig,
    GTA5Config,
    ScenesConfig,
    check_resolution,
)
from .loader import apply_override, from_dict, load_config
from .method import (
    ARCHITECTURES,
    OBJECTIVE_FIELDS,
    SHARED,
    MethodConfig,
    ModelConfig,
    MTCRLConfig,
    RepMTLConfig,
)
from .run import MIOU_CONVENTIONS, MetricsConfig, RunConfig, TrainingConfig
from .schema import VisionConfig, label_tasks, resolve_grounding

__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "MIOU_CONVENTIONS",
    "OBJECTIVE_FIELDS",
    "OUTPUT_STRIDE",
    "SHARED",
    "TASK_NAMES",
    "CelebAConfig",
    "ColoredConfig",
    "CorruptionConfig",
    "DataConfig",
    "GTA5Config",
    "MTCRLConfig",
    "MethodConfig",
    "MetricsConfig",
    "ModelConfig",
    "RepMTLConfig",
    "RunConfig",
    "ScenesConfig",
    "TrainingConfig",
    "VisionConfig",
    "apply_override",
    "check_resolution",
    "from_dict",
    "label_tasks",
    "load_config",
    "resolve_grounding",
]
