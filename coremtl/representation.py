"""The dual-stream representation: any encoder, a split into ``(Z_s, Z_r)``, heads on ``Z_s`` only.

``DualStreamModel.forward(x)`` computes ``F = encoder(x)``, ``(Z_s, Z_r) = split(F)`` and
``yhat_t = head_t(Z_s)``. The heads are called with ``Z_s`` and nothing else, so no path from the
residual stream (or from pre-split features) to a prediction exists in the graph.

The heads are either one module per task, or :class:`LinearHeads`: every task's linear head as one
affine map of ``Z_s``, whose predictions are column blocks of a single output (one product per
forward whatever the number of tasks ``K``, and two parameter tensors instead of ``2K``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
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

    def semantic(self, features: Tensor) -> Tensor:
        """``Z_s = W_s F + b_s`` alone: the semantic rows of the projection, for callers that do not
        need ``Z_r`` (half the products of :meth:`forward`, forward and backward)."""
        weight = self.projection.weight[: self.semantic_dim]
        bias = self.projection.bias[: self.semantic_dim]
        if self.maps:
            return F.conv2d(features, weight, bias)
        return F.linear(features, weight, bias)

    @staticmethod
    def _gram_pseudo_inverse(residual_weight: Tensor) -> Tensor:
        """``(W_r W_r^T)^+``: the inverse from a Cholesky factor when ``W_r`` has full row rank
        (the Gram matrix is then positive definite and its inverse is its pseudo-inverse), the
        symmetric eigendecomposition's pseudo-inverse when the factorisation fails."""
        gram = residual_weight @ residual_weight.T
        factor, info = torch.linalg.cholesky_ex(gram)
        if int(info) == 0:
            return torch.cholesky_inverse(factor)
        return torch.linalg.pinv(gram, hermitian=True)

    def substitute_residual(
        self, features: Tensor, z_r: Tensor, current: Tensor | None = None
    ) -> Tensor:
        """The smallest change of ``features`` that sets their residual stream to ``z_r``.

        ``F' = F + W_r^+ (z_r - W_r F - b_r)`` with ``W_r^+ = W_r^T (W_r W_r^T)^+`` the
        Moore-Penrose pseudo-inverse (per pixel for maps; the r x r Gram matrix is inverted rather
        than ``W_r`` decomposed). Then ``Z_s(F') = Z_s(F) + W_s W_r^+ (z_r - Z_r(F))``, which
        differs from ``Z_s(F)`` exactly when the semantic rows are not orthogonal to the residual
        rows' pseudo-inverse: the feature-level counterfactual of CFA. ``current``, when given, is
        the residual stream ``W_r F + b_r`` of ``features`` (saves recomputing it).
        """
        weight, bias = self._weight_bias()
        residual_weight = weight[self.semantic_dim :]
        residual_bias = bias[self.semantic_dim :]
        gram_pinv = self._gram_pseudo_inverse(residual_weight)
        if self.maps:
            if current is None:
                current = torch.einsum("rc,bchw->brhw", residual_weight, features)
                current = current + residual_bias[None, :, None, None]
            coefficients = torch.einsum("rs,bshw->brhw", gram_pinv, z_r - current)
            return features + torch.einsum("rc,brhw->bchw", residual_weight, coefficients)
        if current is None:
            current = F.linear(features, residual_weight, residual_bias)
        return features + (z_r - current) @ gram_pinv @ residual_weight


class StackedPredictions(dict):
    """``{task: prediction}`` whose values are consecutive column blocks (views) of one tensor,
    ``stacked`` (B, sum of the tasks' outputs), so a loss can score every task in one call."""

    def __init__(self, stacked: Tensor, outputs: Mapping[str, int]):
        super().__init__(zip(outputs, stacked.split(list(outputs.values()), dim=1), strict=True))
        self.stacked = stacked


class LinearHeads(nn.Module):
    """The linear heads of ``K`` tasks as one affine map of the semantic stream.

    ``[yhat_1, ..., yhat_K] = Z_s [W_1; ...; W_K]^T + [b_1, ..., b_K]`` with ``W_t`` (o_t x d) and
    ``b_t`` the weights of task ``t``'s head ``yhat_t = W_t z_s + b_t``: the same function as ``K``
    separate ``nn.Linear(d, o_t)`` heads (:meth:`from_linear` copies theirs), computed as one
    product. ``forward(z_s)`` returns :class:`StackedPredictions`, task ``t``'s prediction being
    the ``o_t`` columns of the stacked output that belong to it. The module reads ``z_s`` only.
    """

    def __init__(self, in_features: int, outputs: Mapping[str, int]):
        super().__init__()
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise InvalidParameterError(
                f"in_features: expected a positive integer, got {in_features!r}"
            )
        if len(outputs) == 0:
            raise InvalidParameterError("outputs: expected at least one task")
        for name, size in outputs.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise InvalidParameterError(
                    f"outputs[{name!r}]: expected a positive integer, got {size!r}"
                )
        self.outputs = dict(outputs)
        self.linear = nn.Linear(in_features, sum(self.outputs.values()))

    @classmethod
    def from_linear(cls, heads: Mapping[str, nn.Linear]) -> LinearHeads:
        """The stacked equivalent of separate linear heads (their weights copied, in order)."""
        layers = list(heads.values())
        if not layers or not all(isinstance(layer, nn.Linear) for layer in layers):
            raise InvalidParameterError("heads: expected a non-empty mapping of nn.Linear heads")
        widths = {layer.in_features for layer in layers}
        if len(widths) != 1 or any(layer.bias is None for layer in layers):
            raise InvalidParameterError(
                "heads: expected nn.Linear heads with biases and one common input width, "
                f"got input widths {sorted(widths)}"
            )
        stacked = cls(widths.pop(), {name: layer.out_features for name, layer in heads.items()})
        stacked.to(dtype=layers[0].weight.dtype, device=layers[0].weight.device)
        with torch.no_grad():
            stacked.linear.weight.copy_(torch.cat([layer.weight for layer in layers]))
            stacked.linear.bias.copy_(torch.cat([layer.bias for layer in layers]))
        return stacked

    @property
    def task_names(self) -> list[str]:
        return list(self.outputs)

    def forward(self, z_s: Tensor) -> StackedPredictions:
        if z_s.ndim != 2:
            raise InvalidParameterError(
                f"z_s: LinearHeads expected vectors (B, d), got shape {tuple(z_s.shape)}"
            )
        return StackedPredictions(self.linear(z_s), self.outputs)


class DualStreamModel(nn.Module):
    """``encoder -> split -> (Z_s, Z_r)``; ``heads[t](Z_s)``; optional ``decoder(Z_s, Z_r) -> x_hat``.

    ``heads`` maps task names to modules (an ``nn.ModuleDict`` or a mapping turned into one), each
    called with ``Z_s`` only, or is a :class:`LinearHeads` called once with ``Z_s``. ``forward``
    returns :class:`coremtl.forward.Forward` with ``shared`` the encoder output (the last shared
    representation before the split).
    """

    def __init__(
        self,
        encoder: nn.Module,
        split: nn.Module,
        heads: Mapping[str, nn.Module] | LinearHeads,
        decoder: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.split = split
        if isinstance(heads, LinearHeads):
            self.heads = heads
        else:
            if len(heads) == 0:
                raise InvalidParameterError("heads: expected at least one task head")
            self.heads = heads if isinstance(heads, nn.ModuleDict) else nn.ModuleDict(dict(heads))
        self.decoder = decoder

    @property
    def task_names(self) -> list[str]:
        if isinstance(self.heads, LinearHeads):
            return self.heads.task_names
        return list(self.heads.keys())

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(Z_s, Z_r)`` of inputs ``x``."""
        return self.split(self.encoder(x))

    def encode_semantic(self, x: Tensor) -> Tensor:
        """``Z_s`` of inputs ``x`` alone (the split's semantic rows when it can compute them
        separately, :meth:`StreamSplit.semantic`)."""
        features = self.encoder(x)
        if isinstance(self.split, StreamSplit):
            return self.split.semantic(features)
        return self.split(features)[0]

    def predict(self, z_s: Tensor) -> dict[str, Tensor]:
        """Every head applied to the semantic stream."""
        if isinstance(self.heads, LinearHeads):
            return self.heads(z_s)
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


class BothStreamsModel(DualStreamModel):
    """The control of :class:`DualStreamModel` whose heads read both streams:
    ``yhat_t = head_t([Z_s; Z_r])``.

    It tells whether reading ``Z_s`` alone matters: the residual stream, and everything it carries,
    reaches the heads. ``Forward.shared`` is ``[Z_s; Z_r]``, the representation every head reads
    (so gradient balancing happens there, as for the skip-connection ablation); ``Forward.z_s``
    and ``Forward.z_r`` are the streams, for CKA and the decoder; ``extras["features"]`` is the
    encoder output ``F``. Input-level CFA re-encodes the counterfactual with the whole forward.
    """

    heads_read_pre_split_features = True

    def predict(self, z_s: Tensor) -> dict[str, Tensor]:
        raise InvalidParameterError(
            "heads_on: these heads read [Z_s; Z_r]; predict from the whole forward, not from Z_s"
        )

    def forward(self, x: Tensor) -> Forward:
        features = self.encoder(x)
        z_s, z_r = self.split(features)
        shared = torch.cat([z_s, z_r], dim=1)
        if isinstance(self.heads, LinearHeads):
            predictions = self.heads(shared)
        else:
            predictions = {name: head(shared) for name, head in self.heads.items()}
        return Forward(
            predictions=predictions,
            shared=shared,
            z_s=z_s,
            z_r=z_r,
            extras={"features": features},
        )


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
    fused_heads: bool = False,
) -> DualStreamModel:
    """A small vector dual-stream model: MLP encoder, linear split, one linear head per task
    (``fused_heads``: all of them as one :class:`LinearHeads`)."""
    encoder = mlp([input_dim, *hidden], batch_norm=batch_norm) if hidden else nn.Identity()
    if hidden:
        encoder = nn.Sequential(encoder, nn.ReLU())
    width = hidden[-1] if hidden else input_dim
    split = StreamSplit(width, semantic_dim, residual_dim)
    if fused_heads:
        heads = LinearHeads(semantic_dim, dict.fromkeys(task_names, head_outputs))
        return DualStreamModel(encoder, split, heads, decoder)
    heads = nn.ModuleDict({name: nn.Linear(semantic_dim, head_outputs) for name in task_names})
    return DualStreamModel(encoder, split, heads, decoder)
