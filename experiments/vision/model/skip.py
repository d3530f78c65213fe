"""The skip-connection ablation of the dual-stream model (``model.skip_connection: true``).

``F = encoder(x)``, ``(Z_s, Z_r) = split(F)`` as in
:class:`coremtl.representation.DualStreamModel`, but every head reads

    h = concat(Z_s, F)          (channels: semantic_channels + encoder channels),

so the pre-split features, and with them everything the residual stream ``Z_r = W_r F + b_r``
carries, are linearly reachable by the heads. This is the design docs/VISION.md lists among the public
reference implementation's mistakes; it exists here only as an ablation switch, off by default,
to measure what routing information around the split costs. The default model keeps the guarantee
that heads read ``Z_s`` alone.

``Forward.shared`` is ``h``, the last representation every head reads (all dependence of the task
losses on the encoder and the split passes through it, as gradient aggregators require);
``Forward.z_s`` and ``Forward.z_r`` are the streams, for the CKA term and the grounding decoder.
The hard-grounding decoder cannot reuse a task head (those read ``h``), so it gets its own normal
head on ``Z_s``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from coremtl.architectures.shared_bottom import as_heads
from coremtl.forward import Forward
from scm.validation import InvalidParameterError


class SkipConnectionDualStreamModel(nn.Module):
    """``encoder -> split -> (Z_s, Z_r)``; ``heads[t](concat(Z_s, F))``; optional decoder."""

    heads_read_pre_split_features = True

    def __init__(
        self,
        encoder: nn.Module,
        split: nn.Module,
        heads: Mapping[str, nn.Module],
        decoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.split = split
        self.heads = as_heads(heads)
        self.decoder = decoder

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(Z_s, Z_r)`` of inputs ``x``."""
        return self.split(self.encoder(x))

    def head_input(self, z_s: Tensor, features: Tensor) -> Tensor:
        """``concat(Z_s, F)`` along the channels."""
        return torch.cat([z_s, features], dim=1)

    def predict(self, z_s: Tensor, features: Tensor | None = None) -> dict[str, Tensor]:
        """Every head applied to ``concat(Z_s, F)``; ``features`` (``F``) is required."""
        if features is None:
            raise InvalidParameterError(
                "features: the skip-connection model's heads read concat(Z_s, F); pass the "
                "pre-split features F, or call the model on the input"
            )
        shared = self.head_input(z_s, features)
        return {name: head(shared) for name, head in self.heads.items()}

    def decode(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        """``x_hat = decoder(Z_s, Z_r)``; an error when the model has no decoder."""
        if self.decoder is None:
            raise InvalidParameterError("decoder: this model was built without a decoder")
        return self.decoder(z_s, z_r)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task depends on: the encoder's and the split's."""
        return [*self.encoder.parameters(), *self.split.parameters()]

    def forward(self, x: Tensor) -> Forward:
        features = self.encoder(x)
        z_s, z_r = self.split(features)
        shared = self.head_input(z_s, features)
        predictions = {name: head(shared) for name, head in self.heads.items()}
        return Forward(predictions=predictions, shared=shared, z_s=z_s, z_r=z_r)
