"""Hard parameter sharing: one trunk, one head per task (the Equal-Weighting base model).

``h = trunk(x)``, ``yhat_t = head_t(h)``; ``h`` is the last shared representation. Works for vector
trunks (MLPs) and for convolutional trunks whose heads take feature maps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from torch import Tensor, nn

from coremtl.forward import Forward
from scm.validation import InvalidParameterError


def as_heads(heads: Mapping[str, nn.Module]) -> nn.ModuleDict:
    """The task heads as a ``ModuleDict``, checking that there is at least one."""
    if not heads:
        raise InvalidParameterError("heads: expected at least one task head")
    return heads if isinstance(heads, nn.ModuleDict) else nn.ModuleDict(dict(heads))


class SharedBottom(nn.Module):
    """``trunk`` shared by every task, ``heads[t]`` specific to task ``t``."""

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = as_heads(heads)

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.trunk.parameters()

    def forward(self, x: Tensor) -> Forward:
        shared = self.trunk(x)
        predictions = {task: head(shared) for task, head in self.heads.items()}
        return Forward(predictions=predictions, shared=shared)
