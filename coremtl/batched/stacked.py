"""Stacked architectures: ``M`` independent models whose parameters carry a leading model axis.

Inputs are ``x`` of shape ``(M, n, d)`` (each model its own batch), streams ``(M, n, k)``,
predictions ``(M, n, K)``. Every model has linear heads on the semantic stream only,
``yhat_t = Z_s w_t + b_t`` (``head_w`` of shape ``(M, k, K)``, ``head_b`` ``(M, 1, K)``), and a
decoder ``(Z_s, Z_r) -> x_hat``. Parameters are grouped into ``shared`` (everything every task
depends on: the encoder and the split), ``heads`` and ``decoder``.

- :class:`StackedAngle`: the encoder of setting S (docs/THEORY.md), ``[Zhat_s; Zhat_r] = R(psi) G^T x``
  with one angle ``psi`` per model and the exact tied decoder ``x_hat = G R(psi)^T [Z_s; Z_r]``;
- :class:`StackedMLP`: the dual-stream MLP of :func:`coremtl.representation.mlp_dual_stream`
  (ReLU encoder, affine split into two streams of width ``k``) with an MLP decoder;
  :meth:`StackedMLP.module` returns model ``m`` as that library module.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from coremtl.representation import DualStreamModel, mlp, mlp_dual_stream
from scm.validation import InvalidParameterError


def block_rotations(psi: Tensor, k: int) -> Tensor:
    """``R(psi_m) = [[c I, s I], [-s I, c I]]`` for every model: shape ``(M, 2k, 2k)``."""
    eye = torch.eye(k, dtype=psi.dtype, device=psi.device)
    c, s = torch.cos(psi)[:, None, None], torch.sin(psi)[:, None, None]
    top = torch.cat([c * eye, s * eye], dim=2)
    bottom = torch.cat([-s * eye, c * eye], dim=2)
    return torch.cat([top, bottom], dim=1)


class _Stacked:
    """Heads and parameter groups shared by the stacked architectures."""

    params: dict[str, Tensor]
    shared_names: tuple[str, ...]
    decoder_names: tuple[str, ...]
    head_names: tuple[str, ...] = ("head_w", "head_b")

    @property
    def num_models(self) -> int:
        return self.params["head_w"].shape[0]

    @property
    def num_tasks(self) -> int:
        return self.params["head_w"].shape[2]

    def group(self, names: tuple[str, ...]) -> list[Tensor]:
        return [self.params[name] for name in names]

    def predict(self, z_s: Tensor) -> Tensor:
        """``yhat = Z_s W + b``: ``(M, n, K)``."""
        return torch.baddbmm(self.params["head_b"], z_s, self.params["head_w"])

    def requires_grad_(self) -> None:
        for tensor in self.params.values():
            tensor.requires_grad_(True)


class StackedAngle(_Stacked):
    """``M`` setting-S models: angle ``psi`` (shared), heads, the tied exact decoder.

    ``mixing`` is ``G`` of shape ``(M, 2k, 2k)`` (or one ``(2k, 2k)`` for every model).
    """

    shared_names = ("psi",)
    decoder_names = ()

    def __init__(self, mixing: Tensor, psi: Tensor, head_w: Tensor, head_b: Tensor):
        if psi.ndim != 1 or head_w.ndim != 3 or head_w.shape[0] != psi.shape[0]:
            raise InvalidParameterError(
                f"head_w: expected shape (M, k, K) with M = {psi.shape[0]} angles, "
                f"got {tuple(head_w.shape)}"
            )
        self.k = head_w.shape[1]
        if mixing.ndim == 2:
            mixing = mixing.expand(psi.shape[0], 2 * self.k, 2 * self.k)
        if mixing.shape != (psi.shape[0], 2 * self.k, 2 * self.k):
            raise InvalidParameterError(
                f"mixing: expected shape ({psi.shape[0]}, {2 * self.k}, {2 * self.k}), "
                f"got {tuple(mixing.shape)}"
            )
        self.mixing = mixing
        self.params = {
            "psi": psi.detach().clone(),
            "head_w": head_w.detach().clone(),
            "head_b": head_b.detach().reshape(psi.shape[0], 1, -1).clone(),
        }
        self.requires_grad_()

    def matrix(self) -> Tensor:
        """``E_m = R(psi_m) G_m^T``: ``(M, 2k, 2k)``."""
        return block_rotations(self.params["psi"], self.k) @ self.mixing.transpose(1, 2)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        streams = torch.bmm(x, self.matrix().transpose(1, 2))
        return streams[..., : self.k], streams[..., self.k :]

    def encode_semantic(self, x: Tensor) -> Tensor:
        return self.encode(x)[0]

    def decode(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return torch.bmm(torch.cat([z_s, z_r], dim=2), self.matrix())


def _uniform(generator: torch.Generator, shape: tuple[int, ...], bound: float, dtype) -> Tensor:
    return (2 * torch.rand(shape, generator=generator, dtype=dtype) - 1) * bound


class _Decoder(nn.Module):
    """``x_hat = MLP([Z_s; Z_r])``, ReLU hidden layers and a linear output."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.network = mlp(sizes)

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return self.network(torch.cat([z_s, z_r], dim=1))


class StackedMLP(_Stacked):
    """``M`` dual-stream MLPs: ReLU encoder ``d -> hidden...``, split into ``Z_s``, ``Z_r`` of width
    ``k`` each, ``K`` linear heads on ``Z_s``, decoder ``2k -> decoder_hidden... -> d``.

    Initialised like ``torch.nn.Linear`` (weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``)
    from ``generator``.
    """

    def __init__(
        self,
        num_models: int,
        input_dim: int,
        hidden: tuple[int, ...],
        k: int,
        num_tasks: int,
        decoder_hidden: tuple[int, ...] = (32,),
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        for value, name in ((num_models, "num_models"), (input_dim, "input_dim"), (k, "k")):
            if not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name}: expected a positive integer, got {value!r}")
        if not hidden:
            raise InvalidParameterError("hidden: expected at least one hidden width")
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.input_dim, self.hidden, self.k = input_dim, tuple(hidden), k
        self.decoder_hidden = tuple(decoder_hidden)
        self.params = {}
        layers = [("enc", [input_dim, *hidden]), ("split", [hidden[-1], 2 * k])]
        layers += [("head", [k, num_tasks]), ("dec", [2 * k, *decoder_hidden, input_dim])]
        for prefix, sizes in layers:
            for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
                name = prefix if prefix in ("split", "head") else f"{prefix}{index}"
                bound = 1.0 / math.sqrt(fan_in)
                self.params[f"{name}_w"] = _uniform(
                    generator, (num_models, fan_in, fan_out), bound, dtype
                )
                self.params[f"{name}_b"] = _uniform(
                    generator, (num_models, 1, fan_out), bound, dtype
                )
        encoder = [f"enc{i}_{p}" for i in range(len(hidden)) for p in "wb"]
        self.shared_names = (*encoder, "split_w", "split_b")
        self.decoder_names = tuple(
            f"dec{i}_{p}" for i in range(len(decoder_hidden) + 1) for p in "wb"
        )
        self.requires_grad_()

    @staticmethod
    def _mlp(params: dict[str, Tensor], prefix: str, layers: int, x: Tensor) -> Tensor:
        for index in range(layers):
            x = torch.baddbmm(params[f"{prefix}{index}_b"], x, params[f"{prefix}{index}_w"])
            if index < layers - 1 or prefix == "enc":
                x = torch.relu(x)
        return x

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self._mlp(self.params, "enc", len(self.hidden), x)
        streams = torch.baddbmm(self.params["split_b"], features, self.params["split_w"])
        return streams[..., : self.k], streams[..., self.k :]

    def encode_semantic(self, x: Tensor) -> Tensor:
        features = self._mlp(self.params, "enc", len(self.hidden), x)
        weight, bias = self.params["split_w"][..., : self.k], self.params["split_b"][..., : self.k]
        return torch.baddbmm(bias, features, weight)

    def decode(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        layers = len(self.decoder_hidden) + 1
        return self._mlp(self.params, "dec", layers, torch.cat([z_s, z_r], dim=2))

    def module(self, index: int) -> DualStreamModel:
        """Model ``index`` as a :class:`~coremtl.representation.DualStreamModel` (a copy)."""
        names = [f"t{t}" for t in range(self.num_tasks)]
        dtype = self.params["head_w"].dtype
        decoder = _Decoder([2 * self.k, *self.decoder_hidden, self.input_dim])
        model = mlp_dual_stream(
            self.input_dim, names, self.hidden, self.k, self.k, decoder=decoder
        ).to(dtype)
        linears = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)]
        pairs = [(layer, f"enc{i}") for i, layer in enumerate(linears)]
        pairs.append((model.split.projection, "split"))
        decoders = [m for m in decoder.modules() if isinstance(m, nn.Linear)]
        pairs += [(layer, f"dec{i}") for i, layer in enumerate(decoders)]
        with torch.no_grad():
            for layer, name in pairs:
                layer.weight.copy_(self.params[f"{name}_w"][index].T)
                layer.bias.copy_(self.params[f"{name}_b"][index, 0])
            for t, head in enumerate(model.heads.values()):
                head.weight.copy_(self.params["head_w"][index, :, t][None])
                head.bias.fill_(float(self.params["head_b"][index, 0, t].detach()))
        return model
