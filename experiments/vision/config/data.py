"""The ``data`` section: where the data is, how it is split and augmented, and the settings of
each data set (rendered scenes, CelebA, GTA5 -> Cityscapes, Cityscapes-C, Colored-Cityscapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..attributes import CELEBA_ATTRIBUTES
from .checks import require

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
OUTPUT_STRIDE = 8


def check_resolution(resolution: object, key: str) -> None:
    """``[height, width]``, both positive multiples of the encoder's output stride (8): the smallest
    image the model takes is 8 x 8."""
    require(
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
        require(self.train_size >= 2, "data.scenes.train_size", "an integer >= 2", self.train_size)
        require(self.test_size >= 1, "data.scenes.test_size", "an integer >= 1", self.test_size)
        require(self.shift >= 0, "data.scenes.shift", "a non-negative number", self.shift)


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
            require(
                1 <= self.attributes <= count,
                "data.celeba.attributes",
                f"an integer in [1, {count}] or a list of attribute names",
                self.attributes,
            )
            self.attributes = list(CELEBA_ATTRIBUTES[: self.attributes])
        require(
            len(self.attributes) >= 1, "data.celeba.attributes", "a non-empty list", self.attributes
        )
        for name in self.attributes:
            require(
                name in CELEBA_ATTRIBUTES,
                "data.celeba.attributes",
                f"names among the CelebA attributes {list(CELEBA_ATTRIBUTES)}",
                name,
            )
        require(
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
        require(self.depth_factor > 0, "data.gta5.depth_factor", "> 0", self.depth_factor)
        require(self.median_files >= 1, "data.gta5.median_files", ">= 1", self.median_files)
        require(self.max_depth >= 0, "data.gta5.max_depth", ">= 0 (0: no limit)", self.max_depth)


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
        require(
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
        require(
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
            require(
                self.tasks is None or self.tasks == attributes,
                "data.tasks",
                f"left out for data.dataset 'celeba' (the tasks are data.celeba.attributes, "
                f"{attributes})",
                self.tasks,
            )
            self.tasks = attributes
        if self.tasks is None:
            self.tasks = list(TASK_NAMES)
        require(len(self.tasks) >= 1, "data.tasks", "a non-empty list", self.tasks)
        if self.dataset != "celeba":
            for task in self.tasks:
                require(task in TASK_NAMES, "data.tasks", f"names among {TASK_NAMES}", task)
        require(len(set(self.tasks)) == len(self.tasks), "data.tasks", "no repeats", self.tasks)
        require(self.num_classes >= 2, "data.num_classes", "an integer >= 2", self.num_classes)
        check_resolution(self.resolution, "data.resolution")
        require(
            0.0 < self.val_fraction < 1.0,
            "data.val_fraction",
            "a number in (0, 1)",
            self.val_fraction,
        )
        require(self.num_workers >= 0, "data.num_workers", "an integer >= 0", self.num_workers)
        require(self.split_seed >= 0, "data.split_seed", "an integer >= 0", self.split_seed)
        if self.dataset != "scenes":
            require(self.root is not None, "data.root", "a folder for this dataset", self.root)
