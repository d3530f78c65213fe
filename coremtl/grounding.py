"""Soft grounding: decoders that reconstruct the input from both streams, and the L1 loss.

- :class:`MLPDecoder` for vectors: ``x_hat = MLP([Z_s; Z_r])``.
- :class:`ConvDecoder` for maps: content from the spatial semantic stream ``Z_s`` (B, C_s, h, w),
  style from the pooled residual stream ``zbar_r = mean_{h,w} Z_r`` through adaptive instance
  normalisation (Huang & Belongie 2017) at every upsampling stage:
  ``AdaIN(a, gamma, beta) = gamma * (a - mu(a)) / sigma(a) + beta`` with ``mu``, ``sigma`` the
  per-sample, per-channel spatial statistics of ``a`` and ``(gamma, beta) = A_l zbar_r + c_l`` an
  affine map of the style code (so the style enters only through channel statistics, the content
  only through the spatial layout).
- :func:`reconstruction_loss`: ``L_rec = mean |x_hat - x|``.
"""

from __future__ import annotations

import itertools

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
    """``x_hat = MLP([Z_s; Z_r])`` with ReLU hidden layers."""

    def __init__(
        self, semantic_dim: int, residual_dim: int, output_dim: int, hidden: tuple[int, ...] = (64,)
    ):
        super().__init__()
        sizes = [
            _positive_int(semantic_dim, "semantic_dim")
            + _positive_int(residual_dim, "residual_dim"),
            *hidden,
            _positive_int(output_dim, "output_dim"),
        ]
        self.network = mlp(sizes)

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return self.network(torch.cat([z_s, z_r], dim=1))


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


class ConvDecoder(nn.Module):
    """Decode spatial ``Z_s`` (content) and pooled ``Z_r`` (style) to an image.

    ``upsampling`` is the number of x2 nearest-neighbour upsampling stages (output stride 8 needs
    3); each stage is an :class:`AdaINBlock`; a final 3x3 convolution gives ``out_channels``.
    ``Z_r`` may be a map (pooled here) or already a vector (B, C_r).
    """

    def __init__(
        self,
        semantic_channels: int,
        residual_channels: int,
        out_channels: int = 3,
        hidden_channels: int = 32,
        upsampling: int = 3,
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
        channels = [semantic_channels] + [hidden_channels] * (upsampling + 1)
        self.blocks = nn.ModuleList(
            AdaINBlock(fan_in, fan_out, residual_channels)
            for fan_in, fan_out in itertools.pairwise(channels)
        )
        self.output = nn.Conv2d(hidden_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        if z_s.ndim != 4:
            raise InvalidParameterError(
                f"z_s: expected a map (B, C, H, W), got shape {tuple(z_s.shape)}"
            )
        style = z_r.mean(dim=(2, 3)) if z_r.ndim == 4 else z_r
        hidden = self.blocks[0](z_s, style)
        for block in self.blocks[1:]:
            hidden = block(F.interpolate(hidden, scale_factor=2.0, mode="nearest"), style)
        return self.output(hidden)


def reconstruction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """``L_rec = mean |x_hat - x|`` (L1)."""
    if reconstruction.shape != target.shape:
        raise InvalidParameterError(
            f"reconstruction: expected the input's shape {tuple(target.shape)}, "
            f"got {tuple(reconstruction.shape)}"
        )
    return F.l1_loss(reconstruction, target)
