"""The rendered scenes as an in-memory torch ``Dataset``: sample ``i`` is rendered on the fly."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from scm.validation import InvalidParameterError, check_positive_int

from .config import SceneConfig
from .environments import ResidualDistribution, make_environment
from .renderer import SceneRenderer


class RenderedScenes(Dataset):
    """``length`` samples of ``split`` in one environment, rendered when asked for.

    Items are the dictionaries of :class:`~experiments.vision.datasets.npy.MultiTaskNpyDataset`
    (channels-first ``image``, ``segmentation``, ``depth``, ``normal``, ``albedo``, ``shading``;
    see :class:`.renderer.SceneRenderer`). A ``DataLoader`` with ``batch_size`` calls
    :meth:`__getitems__` and renders the whole batch at once; the result is the same as fetching
    the samples one by one, in any worker (up to float32 rounding in ``albedo`` and ``image``, see
    :class:`.renderer.SceneRenderer`).

    ``environment``: ``"source"`` or ``"target"`` (with ``shift`` in ``[0, 1]`` and the source-only
    ``shortcut`` in ``[0, 1]``, see :mod:`.environments`) or a ready
    :class:`~.environments.ResidualDistribution`.
    """

    def __init__(
        self,
        length: int,
        split: str = "train",
        environment: str | ResidualDistribution = "source",
        shift: float = 1.0,
        shortcut: float = 0.0,
        config: SceneConfig | None = None,
        resolution: Sequence[int] | None = None,
        seed: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.length = check_positive_int(length, "length")
        if not isinstance(split, str) or not split:
            raise InvalidParameterError(f"split: expected a non-empty name, got {split!r}")
        self.split = split
        config = config if config is not None else SceneConfig()
        overrides = {}
        if resolution is not None:
            overrides["resolution"] = tuple(resolution)
        if seed is not None:
            overrides["seed"] = seed
        if overrides:
            config = dataclasses.replace(config, **overrides)
        if isinstance(environment, ResidualDistribution):
            self.environment = environment
        else:
            self.environment = make_environment(environment, shift=shift, shortcut=shortcut)
        self.renderer = SceneRenderer(config, device=device)

    @property
    def config(self) -> SceneConfig:
        return self.renderer.config

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def __len__(self) -> int:
        return self.length

    def _check(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} rendered scenes")
        return index

    def render(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The batched fields of the samples ``indices``."""
        return self.renderer.render([self._check(i) for i in indices], self.split, self.environment)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[0] for key, value in self.render([index]).items()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Tensor]]:
        batch = self.render(indices)
        return [{key: value[b] for key, value in batch.items()} for b in range(len(indices))]
