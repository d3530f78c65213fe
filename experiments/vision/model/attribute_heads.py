"""Binary attribute heads: the pooled semantic stream through linear maps, fused across attributes.

For ``K`` attributes and a feature map ``Z (B, C, h, w)`` (or already pooled ``(B, C)``), the
logits are ``y_hat = W zbar + b`` with ``zbar = mean_{h,w} Z``, ``W (K, C)``, ``b (K,)``:

- :class:`FusedAttributeHead` computes all ``K`` logits with one linear layer and returns one
  prediction per attribute, the ``(B,)`` column views ``y_hat[:, k]`` of the fused output, so the
  head costs one pooling and one ``(B, C) x (C, K)`` product whatever ``K`` (the paper's cost is
  flat from 10 to 40 tasks);
- :class:`AttributeLogitHead` is one row of it, a head per attribute, for architectures that feed
  each task different features (MTAN's attended maps);
- :class:`AttributeDualStreamModel` and :class:`AttributeSharedBottom` are the dual-stream model
  (heads on ``Z_s`` only) and hard parameter sharing with the fused head called once per forward.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from coremtl.architectures.shared_bottom import SharedBottom
from coremtl.forward import Forward
from coremtl.representation import DualStreamModel
from scm.validation import InvalidParameterError

FUSED_HEAD = "attributes"


def global_pool(z: Tensor) -> Tensor:
    """``mean_{h,w} Z`` for maps ``(B, C, h, w)``; vectors ``(B, C)`` pass through."""
    if z.ndim == 4:
        return z.mean(dim=(2, 3))
    if z.ndim == 2:
        return z
    raise InvalidParameterError(
        f"z: expected a map (B, C, H, W) or a vector (B, C), got shape {tuple(z.shape)}"
    )


class FusedAttributeHead(nn.Module):
    """All attributes from one linear layer on the pooled features; ``forward`` returns
    ``{name_k: y_hat[:, k]}`` (views of the ``(B, K)`` logits)."""

    def __init__(self, names: Sequence[str], in_channels: int) -> None:
        super().__init__()
        if not names or len(set(names)) != len(names):
            raise InvalidParameterError(f"names: expected distinct attribute names, got {names!r}")
        self.names = list(names)
        self.linear = nn.Linear(in_channels, len(self.names))

    def logits(self, z: Tensor) -> Tensor:
        """``(B, K)`` logits, column ``k`` for ``names[k]``."""
        return self.linear(global_pool(z))

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        logits = self.logits(z)
        return {name: logits[:, k] for k, name in enumerate(self.names)}


class AttributeLogitHead(nn.Module):
    """One attribute: ``y_hat = w . zbar + b``, shape ``(B,)``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(global_pool(z))[:, 0]


class AttributeDualStreamModel(DualStreamModel):
    """:class:`~coremtl.representation.DualStreamModel` whose heads are one
    :class:`FusedAttributeHead` on ``Z_s`` (``heads["attributes"]``); the task names are its
    attributes."""

    def __init__(
        self,
        encoder: nn.Module,
        split: nn.Module,
        head: FusedAttributeHead,
        decoder: nn.Module | None = None,
    ) -> None:
        super().__init__(encoder, split, nn.ModuleDict({FUSED_HEAD: head}), decoder)

    @property
    def task_names(self) -> list[str]:
        return list(self.heads[FUSED_HEAD].names)

    def predict(self, z_s: Tensor) -> dict[str, Tensor]:
        return self.heads[FUSED_HEAD](z_s)


class AttributeSharedBottom(SharedBottom):
    """Hard parameter sharing with one :class:`FusedAttributeHead` on the trunk's output."""

    def __init__(self, trunk: nn.Module, head: FusedAttributeHead) -> None:
        super().__init__(trunk, nn.ModuleDict({FUSED_HEAD: head}))

    @property
    def task_names(self) -> list[str]:
        return list(self.heads[FUSED_HEAD].names)

    def forward(self, x: Tensor) -> Forward:
        shared = self.trunk(x)
        return Forward(predictions=self.heads[FUSED_HEAD](shared), shared=shared)
