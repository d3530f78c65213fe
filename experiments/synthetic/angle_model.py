"""The encoder of setting S as a trainable model: one shared parameter, the mixing angle psi.

``F = R(psi) G^T x`` (docs/THEORY.md, setting S), split by fixed identity rows into
``Zhat_s = c Z_s + s Z_r`` and ``Zhat_r = -s Z_s + c Z_r``; heads ``yhat_t = w_t^T Zhat_s + b_t``;
optionally the exact (tied) linear decoder ``x_hat = G R(psi)^T [Zhat_s; Zhat_r]``, the inverse of
the encoder at the current angle. Built from :class:`coremtl.representation.DualStreamModel`, so
the method's objective, counterfactual swaps and probes apply to it unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from coremtl.representation import DualStreamModel, StreamSplit
from scm.model import LinearGaussianSCM


def rotation(psi: Tensor, k: int) -> Tensor:
    """``R(psi) = [[c I, s I], [-s I, c I]]`` as a differentiable function of the 0-d ``psi``."""
    eye = torch.eye(k, dtype=psi.dtype, device=psi.device)
    c, s = torch.cos(psi), torch.sin(psi)
    return torch.cat([torch.cat([c * eye, s * eye], 1), torch.cat([-s * eye, c * eye], 1)], 0)


class AngleEncoder(nn.Module):
    """``x -> R(psi) G^T x`` for the linear SCM with mixing ``G``; ``psi`` is a parameter."""

    def __init__(self, mixing: np.ndarray, psi: float, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.k = mixing.shape[0] // 2
        self.register_buffer("mixing", torch.as_tensor(mixing, dtype=dtype))
        self.psi = nn.Parameter(torch.tensor(float(psi), dtype=dtype))

    def matrix(self) -> Tensor:
        """``E = R(psi) G^T`` (2k x 2k)."""
        return rotation(self.psi, self.k) @ self.mixing.T

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.matrix().T


class TiedDecoder(nn.Module):
    """``decoder(Zhat_s, Zhat_r) = G R(psi)^T [Zhat_s; Zhat_r]``: the exact inverse of the encoder."""

    def __init__(self, encoder: AngleEncoder):
        super().__init__()
        self.encoder = [encoder]

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return torch.cat([z_s, z_r], dim=1) @ self.encoder[0].matrix()


def identity_split(k: int, dtype: torch.dtype = torch.float64) -> StreamSplit:
    """A frozen :class:`StreamSplit` whose rows are the identity: ``Zhat_s = F[:k]``, ``Zhat_r = F[k:]``."""
    split = StreamSplit(2 * k, k, k).to(dtype)
    with torch.no_grad():
        split.projection.weight.copy_(torch.eye(2 * k, dtype=dtype))
        split.projection.bias.zero_()
    split.requires_grad_(False)
    return split


def angle_model(
    scm: LinearGaussianSCM,
    psi: float,
    task_names: list[str],
    tied_decoder: bool = False,
    head_scale: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> DualStreamModel:
    """The setting-S model at angle ``psi``; heads start at ``head_scale * N(0, 1/k)`` weights and 0 bias."""
    encoder = AngleEncoder(scm.mixing, psi, dtype)
    heads = {}
    for name in task_names:
        head = nn.Linear(scm.k, 1).to(dtype)
        with torch.no_grad():
            weight = torch.randn(1, scm.k, generator=generator, dtype=dtype) / math.sqrt(scm.k)
            head.weight.copy_(head_scale * weight)
            head.bias.zero_()
        heads[name] = head
    decoder = TiedDecoder(encoder) if tied_decoder else None
    return DualStreamModel(encoder, identity_split(scm.k, dtype), heads, decoder)


def set_heads(model: DualStreamModel, weights: np.ndarray, bias: np.ndarray) -> None:
    """Copy ``weights`` (K, k) and ``bias`` (K,) into the heads, in task order."""
    with torch.no_grad():
        for index, head in enumerate(model.heads.values()):
            head.weight.copy_(torch.as_tensor(weights[index : index + 1], dtype=head.weight.dtype))
            head.bias.fill_(float(bias[index]))


def head_arrays(model: DualStreamModel) -> tuple[np.ndarray, np.ndarray]:
    """The heads as ``(weights (K, k), bias (K,))`` numpy arrays."""
    weights = np.stack([h.weight.detach().cpu().double().numpy()[0] for h in model.heads.values()])
    bias = np.array([float(h.bias.detach()) for h in model.heads.values()])
    return weights, bias


def squared_losses(predictions: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Mean squared error per task; task ``t`` is column ``t`` of ``batch['y']`` in head order."""
    return {
        name: (prediction[:, 0] - batch["y"][:, index]).square().mean()
        for index, (name, prediction) in enumerate(predictions.items())
    }
