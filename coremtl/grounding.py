"""Soft grounding: decoders that reconstruct the input from both streams, and the L1 loss.

- :class:`MLPDecoder` for vectors: ``x_hat = MLP([Z_s; Z_r])``, reshaped to the input's shape
  (an image from vector features, too).
- :class:`ConvDecoder` for maps: content from the spatial semantic stream ``Z_s`` (B, C_s, h, w),
  style from the pooled residual stream ``zbar_r = mean_{h,w} Z_r`` through adaptive instance
  normalisation (Huang & Belongie 2017) at every upsampling stage:
  ``AdaIN(a, gamma, beta) = gamma * (a - mu(a)) / sigma(a) + beta`` with ``mu``, ``sigma`` the
  per-sample, per-channel spatial statistics of ``a`` and ``(gamma, beta) = A_l zbar_r + c_l`` an
  affine map of the style code (so the style enters only through channel statistics, the content
  only through the spatial layout). :meth:`ConvDecoder.for_sizes` fits it to an input and feature
  size: ``ceil(log2(H / h))`` x2 stages (:func:`upsampling_stages`), then a bilinear resize to
  exactly ``H x W`` when the stride is not a power of two (a 28x28 input at stride 8, say).
- :func:`reconstruction_loss`: ``L_rec = mean |x_hat - x|``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coremtl.representation import mlp
from scm.validation import InvalidParameterError


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"{name}: expected a positive integer, got {value!r}")
    return value


class MLPDecoder(nn.Module):
    """``x_hat = MLP([Z_s; Z_r])`` with ReLU hidden layers; ``output_shape`` (per sample, e.g.
    ``(C, H, W)``) reshapes the ``output_dim = prod(output_shape)`` outputs."""

    def __init__(
        self,
        semantic_dim: int,
        residual_dim: int,
        output_dim: int,
        hidden: tuple[int, ...] = (64,),
        output_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        sizes = [
            _positive_int(semantic_dim, "semantic_dim")
            + _positive_int(residual_dim, "residual_dim"),
            *hidden,
            _positive_int(output_dim, "output_dim"),
        ]
        if output_shape is not None and math.prod(output_shape) != output_dim:
            raise InvalidParameterError(
                f"output_shape: expected {output_dim} values per sample, got {tuple(output_shape)}"
            )
        self.output_shape = None if output_shape is None else tuple(output_shape)
        self.network = mlp(sizes)

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        out = self.network(torch.cat([z_s, z_r], dim=1))
        return out if self.output_shape is None else out.view(-1, *self.output_shape)


def adaptive_instance_norm(content: Tensor, scale: Tensor, shift: Tensor, eps: float = 1e-5):
    """``scale * (content - mu) / sigma + shift`` per sample and channel (Huang & Belongie 2017).

    ``content`` is (B, C, H, W); ``scale`` and ``shift`` are (B, C).
    """
    normalised = F.instance_norm(content, eps=eps)
    return scale[:, :, None, None] * normalised + shift[:, :, None, None]


class AdaINBlock(nn.Module):
    """``conv3x3 -> AdaIN(style) -> ReLU``, the style code giving ``(1 + gamma, beta)``."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.style = nn.Linear(style_dim, 2 * out_channels)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        gamma, beta = self.style(style).chunk(2, dim=1)
        return F.relu(adaptive_instance_norm(self.conv(content), 1.0 + gamma, beta))


def upsampling_stages(input_size: Sequence[int], feature_size: Sequence[int]) -> int:
    """``ceil(log2(max(H / h, W / w)))``: the x2 stages that bring ``h x w`` features to at least
    the ``H x W`` input (0 when the features are as large)."""
    ratios = [
        _positive_int(i, "input_size") / _positive_int(f, "feature_size")
        for i, f in zip(input_size, feature_size, strict=True)
    ]
    return max(0, math.ceil(math.log2(max(ratios)) - 1e-9))


class ConvDecoder(nn.Module):
    """Decode spatial ``Z_s`` (content) and pooled ``Z_r`` (style) to an image.

    ``upsampling`` is the number of x2 nearest-neighbour upsampling stages (output stride 8 needs
    3); each stage is an :class:`AdaINBlock`; a final 3x3 convolution gives ``out_channels``,
    resized bilinearly to ``output_size`` (H, W) when given and different. ``Z_r`` may be a map
    (pooled here) or already a vector (B, C_r).

    Widths mirror an encoder's: the first block has ``hidden_channels`` and each upsampling stage
    halves them, down to ``min_channels`` (32, 16, 8, 8 for output stride 8), so the decoder's cost
    per pixel falls as its resolution grows; at a constant width its full-resolution blocks cost
    many times a small backbone (25 times the three-stage backbone of the digits benchmark).
    """

    def __init__(
        self,
        semantic_channels: int,
        residual_channels: int,
        out_channels: int = 3,
        hidden_channels: int = 32,
        upsampling: int = 3,
        output_size: Sequence[int] | None = None,
        min_channels: int = 8,
    ):
        super().__init__()
        _positive_int(semantic_channels, "semantic_channels")
        _positive_int(residual_channels, "residual_channels")
        _positive_int(out_channels, "out_channels")
        _positive_int(hidden_channels, "hidden_channels")
        if isinstance(upsampling, bool) or not isinstance(upsampling, int) or upsampling < 0:
            raise InvalidParameterError(
                f"upsampling: expected a non-negative integer, got {upsampling!r}"
            )
        _positive_int(min_channels, "min_channels")
        widths = [
            max(min(min_channels, hidden_channels), hidden_channels >> k)
            for k in range(upsampling + 1)
        ]
        channels = [semantic_channels, *widths]
        self.blocks = nn.ModuleList(
            AdaINBlock(fan_in, fan_out, residual_channels)
            for fan_in, fan_out in itertools.pairwise(channels)
        )
        self.output = nn.Conv2d(widths[-1], out_channels, kernel_size=3, padding=1)
        self.output_size = None if output_size is None else tuple(output_size)

    @classmethod
    def for_sizes(
        cls,
        semantic_channels: int,
        residual_channels: int,
        input_shape: Sequence[int],
        feature_size: Sequence[int],
        hidden_channels: int = 32,
    ) -> ConvDecoder:
        """A decoder from ``feature_size`` (h, w) maps to inputs of shape ``(C, H, W)``."""
        if len(input_shape) != 3 or len(feature_size) != 2:
            raise InvalidParameterError(
                f"input_shape: expected (C, H, W) and feature_size (h, w), got "
                f"{tuple(input_shape)} and {tuple(feature_size)}"
            )
        channels, *size = input_shape
        return cls(
            semantic_channels,
            residual_channels,
            out_channels=channels,
            hidden_channels=hidden_channels,
            upsampling=upsampling_stages(size, feature_size),
            output_size=size,
        )

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        if z_s.ndim != 4:
            raise InvalidParameterError(
                f"z_s: expected a map (B, C, H, W), got shape {tuple(z_s.shape)}"
            )
        style = z_r.mean(dim=(2, 3)) if z_r.ndim == 4 else z_r
        hidden = self.blocks[0](z_s, style)
        for block in self.blocks[1:]:
            hidden = block(F.interpolate(hidden, scale_factor=2.0, mode="nearest"), style)
        out = self.output(hidden)
        if self.output_size is not None and tuple(out.shape[-2:]) != self.output_size:
            out = F.interpolate(out, size=self.output_size, mode="bilinear", align_corners=False)
        return out


def reconstruction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """``L_rec = mean |x_hat - x|`` (L1)."""
    if reconstruction.shape != target.shape:
        raise InvalidParameterError(
            f"reconstruction: expected the input's shape {tuple(target.shape)}, "
            f"got {tuple(reconstruction.shape)}"
        )
    return F.l1_loss(reconstruction, target)
