"""Render samples of a split by index: geometry from the semantic stream, appearance from the
residual stream, both derived from ``(seed, split, index)`` (see :func:`.layout.sample_seed`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from scm.validation import InvalidParameterError

from .appearance import ResidualParameters, compose, draw_residuals, residual_parameters
from .config import SceneConfig
from .environments import ResidualDistribution
from .geometry import PinholeCamera, SurfaceHits, cast_rays
from .layout import RESIDUAL_STREAM, SEMANTIC_STREAM, Layout, sample_layout, sample_seed

FIELDS = ("image", "segmentation", "depth", "normal", "albedo", "shading")


class SceneRenderer:
    """Renders batches of samples; sample ``i`` of a split is the same whatever batch it is in:
    its layout and residual draws depend on ``(seed, split, i)`` only, ``segmentation``,
    ``depth``, ``normal`` and ``shading`` are bit-identical, and ``albedo`` and ``image`` agree to
    the last ulp or two (vectorised and scalar float32 ``sin`` and ``pow`` round differently).

    :meth:`render` returns channels-first tensors, as the ``.npy`` dataset loader does:
    ``image (B, 3, H, W)`` sRGB in ``[0, 1]``, ``segmentation (B, H, W)`` int64 in ``{-1..C-1}``,
    ``depth (B, 1, H, W)`` camera ``z`` in metres (0 on sky), ``normal (B, 3, H, W)`` unit camera-
    frame normals (0 on sky), ``albedo`` and ``shading (B, 3, H, W)`` linear RGB with
    ``albedo * shading`` the noiseless linear image. The 3-channel fields are ``(B, 3, H, W)`` views
    of ``(3, B, H, W)`` channel-plane storage, so each sample's field is three contiguous planes
    (``DataLoader`` collation copies them into one batch).
    """

    def __init__(
        self,
        config: SceneConfig | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config if config is not None else SceneConfig()
        self.camera = PinholeCamera.from_config(self.config)
        self.device = torch.device(device)
        self.dtype = dtype

    def layout(self, index: int, split: str) -> Layout:
        """The semantic factors of sample ``index`` of ``split``."""
        seed = sample_seed(self.config.seed, split, index, SEMANTIC_STREAM)
        return sample_layout(self.config, np.random.default_rng(seed))

    def geometry(self, indices: Sequence[int], split: str) -> SurfaceHits:
        """Labels, depth and normals of the given samples (environment-free)."""
        layouts = [self.layout(index, split) for index in indices]
        return cast_rays(
            layouts,
            self.camera,
            self.config.max_depth,
            self.config.plane_class,
            device=self.device,
            dtype=self.dtype,
        )

    def appearance(
        self, indices: Sequence[int], split: str, environment: ResidualDistribution
    ) -> ResidualParameters:
        """The residual factors (albedo per class, SH lighting, texture, noise) of the samples
        ``indices`` mapped through ``environment``'s law."""
        draws = [
            draw_residuals(
                np.random.default_rng(sample_seed(self.config.seed, split, index, RESIDUAL_STREAM)),
                self.config.num_classes + 1,
            )
            for index in indices
        ]
        return residual_parameters(
            draws,
            environment,
            self.config.num_classes,
            self.camera.world_from_camera(),
            self.config.texture,
            self.device,
            self.dtype,
        )

    def render(
        self, indices: Sequence[int], split: str, environment: ResidualDistribution
    ) -> dict[str, Tensor]:
        """Every field of :data:`FIELDS` for the samples ``indices`` of ``split`` in
        ``environment`` (class docstring)."""
        indices = list(indices)
        if not indices:
            raise InvalidParameterError("indices: expected at least one sample index")
        hits = self.geometry(indices, split)
        params = self.appearance(indices, split, environment)
        plane_class = self.config.plane_class
        ground_slot = self.config.num_classes if plane_class is None else plane_class
        maps = compose(hits, params, ground_slot)
        batch = len(indices)
        height, width = self.config.resolution

        def planes(values: Tensor) -> Tensor:
            return values.view(3, batch, height, width).permute(1, 0, 2, 3)

        return {
            "image": planes(maps["image"]),
            "segmentation": hits.label.view(batch, height, width),
            "depth": hits.depth.view(batch, 1, height, width),
            "normal": planes(hits.normal_planes),
            "albedo": planes(maps["albedo"]),
            "shading": planes(maps["shading"]),
        }
