"""The dual-stream representation: any encoder, a split into ``(Z_s, Z_r)``, heads on ``Z_s`` only.

``DualStreamModel.forward(x)`` computes ``F = encoder(x)``, ``(Z_s, Z_r) = split(F)`` and
``yhat_t = head_t(Z_s)``. The heads are called with ``Z_s`` and nothing else, so no path from the
residual stream (or from pre-split features) to a prediction exists in the graph.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from coremtl.forward import Forward
from scm.validation import InvalidParameterError


class StreamSplit(nn.Module):
    """An affine split ``[Z_s; Z_r] = W F + b`` of shared features into the two streams.

    A linear layer for vectors ``F`` of shape (B, in_features), a 1x1 convolution (the same affine
    map at every pixel) for maps (B, in_features, H, W) when ``maps=True``. Rows ``W_s`` (the first
    ``semantic_dim``) give ``Z_s``, the remaining rows ``W_r`` give ``Z_r``.
    """

    def __init__(self, in_features: int, semantic_dim: int, residual_dim: int, maps: bool = False):
        super().__init__()
        for value, name in (
            (in_features, "in_features"),
            (semantic_dim, "semantic_dim"),
            (residual_dim, "residual_dim"),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name}: expected a positive integer, got {value!r}")
        self.semantic_dim = semantic_dim
        self.residual_dim = residual_dim
        self.maps = maps
        out = semantic_dim + residual_dim
        self.projection = (
            nn.Conv2d(in_features, out, kernel_size=1) if maps else nn.Linear(in_features, out)
        )

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        streams = self.projection(features)
        return streams[:, : self.semantic_dim], streams[:, self.semantic_dim :]

    def _weight_bias(self) -> tuple[Tensor, Tensor]:
        weight = self.projection.weight.flatten(1)
        bias = self.projection.bias
        return weight, bias

    def substitute_residual(self, features: Tensor, z_r: Tensor) -> Tensor:
        """The smallest change of ``features`` that sets their residual stream to ``z_r``.

        ``F' = F + W_r^+ (z_r - W_r F - b_r)`` with ``W_r^+ = W_r^T (W_r W_r^T)^+`` the
        Moore-Penrose pseudo-inverse (per pixel for maps; the r x r symmetric pseudo-inverse is
        cheaper than an SVD of ``W_r``). Then ``Z_s(F') = Z_s(F) + W_s W_r^+ (z_r - Z_r(F))``, which differs
        from ``Z_s(F)`` exactly when the semantic rows are not orthogonal to the residual rows'
        pseudo-inverse: the feature-level counterfactual of CFA.
        """
        weight, bias = self._weight_bias()
        residual_weight = weight[self.semantic_dim :]
        residual_bias = bias[self.semantic_dim :]
        gram_pinv = torch.linalg.pinv(residual_weight @ residual_weight.T, hermitian=True)
        if self.maps:
            current = torch.einsum("rc,bchw->brhw", residual_weight, features)
            change = z_r - current - residual_bias[None, :, None, None]
            coefficients = torch.einsum("rs,bshw->brhw", gram_pinv, change)
            return features + torch.einsum("rc,brhw->bchw", residual_weight, coefficients)
        change = z_r - features @ residual_weight.T - residual_bias
        return features + change @ gram_pinv @ residual_weight


class DualStreamModel(nn.Module):
    """``encoder -> split -> (Z_s, Z_r)``; ``heads[t](Z_s)``; optional ``decoder(Z_s, Z_r) -> x_hat``.

    ``heads`` maps task names to modules (an ``nn.ModuleDict`` or a mapping turned into one); each
    is called with ``Z_s`` only. ``forward`` returns :class:`coremtl.forward.Forward` with
    ``shared`` the encoder output (the last shared representation before the split).
    """

    def __init__(
        self,
        encoder: nn.Module,
        split: nn.Module,
        heads: Mapping[str, nn.Module],
        decoder: nn.Module | None = None,
    ):
        super().__init__()
        if len(heads) == 0:
            raise InvalidParameterError("heads: expected at least one task head")
        self.encoder = encoder
        self.split = split
        self.heads = heads if isinstance(heads, nn.ModuleDict) else nn.ModuleDict(dict(heads))
        self.decoder = decoder

    @property
    def task_names(self) -> list[str]:
        return list(self.heads.keys())

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(Z_s, Z_r)`` of inputs ``x``."""
        return self.split(self.encoder(x))

    def predict(self, z_s: Tensor) -> dict[str, Tensor]:
        """Every head applied to the semantic stream."""
        return {name: head(z_s) for name, head in self.heads.items()}

    def decode(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        """``x_hat = decoder(Z_s, Z_r)``; an error when the model has no decoder."""
        if self.decoder is None:
            raise InvalidParameterError("decoder: this DualStreamModel was built without a decoder")
        return self.decoder(z_s, z_r)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task depends on: the encoder's and the split's."""
        return [*self.encoder.parameters(), *self.split.parameters()]

    def forward(self, x: Tensor) -> Forward:
        shared = self.encoder(x)
        z_s, z_r = self.split(shared)
        return Forward(predictions=self.predict(z_s), shared=shared, z_s=z_s, z_r=z_r)


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, batch_norm: bool = False):
    """``Linear -> [BatchNorm1d] -> activation`` between consecutive ``sizes``, no activation last."""
    if len(sizes) < 2:
        raise InvalidParameterError(f"sizes: expected at least an input and an output, got {sizes}")
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(activation())
    return nn.Sequential(*layers)


def mlp_dual_stream(
    input_dim: int,
    task_names: list[str],
    hidden: tuple[int, ...] = (64,),
    semantic_dim: int = 8,
    residual_dim: int = 8,
    head_outputs: int = 1,
    decoder: nn.Module | None = None,
    batch_norm: bool = False,
) -> DualStreamModel:
    """A small vector dual-stream model: MLP encoder, linear split, one linear head per task."""
    encoder = mlp([input_dim, *hidden], batch_norm=batch_norm) if hidden else nn.Identity()
    if hidden:
        encoder = nn.Sequential(encoder, nn.ReLU())
    width = hidden[-1] if hidden else input_dim
    split = StreamSplit(width, semantic_dim, residual_dim)
    heads = nn.ModuleDict({name: nn.Linear(semantic_dim, head_outputs) for name in task_names})
    return DualStreamModel(encoder, split, heads, decoder)
