"""Single-task learning: one independent trunk and head per task, nothing shared.

``yhat_t = head_t(trunk_t(x))``. For a uniform interface, ``Forward.shared`` is the concatenation
of the task trunks' outputs along dimension 1 and each head reads its own slice of it, so a
multi-task balancer can still be run (the Jacobian rows then have disjoint supports; with Equal
Weighting, training is exactly that of the separate models).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from coremtl.architectures.shared_bottom import as_heads
from coremtl.forward import Forward
from scm.validation import InvalidParameterError


class SingleTaskModels(nn.Module):
    """A separate ``trunks[t]`` and ``heads[t]`` for every task ``t``."""

    def __init__(self, trunks: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.heads = as_heads(heads)
        if set(trunks) != set(self.heads):
            raise InvalidParameterError(
                f"trunks: expected one trunk per head {sorted(self.heads)}, got {sorted(trunks)}"
            )
        self.trunks = nn.ModuleDict({task: trunks[task] for task in self.heads})
        parameter_ids = [id(p) for task in self.heads for p in self._task_parameters(task)]
        if len(parameter_ids) != len(set(parameter_ids)):
            raise InvalidParameterError("trunks, heads: tasks must not share any parameter")

    @classmethod
    def from_factories(
        cls,
        task_names: Sequence[str],
        make_trunk: Callable[[], nn.Module],
        make_head: Callable[[str], nn.Module],
    ) -> SingleTaskModels:
        """Build one fresh trunk (``make_trunk()``) and head (``make_head(task)``) per task."""
        return cls({t: make_trunk() for t in task_names}, {t: make_head(t) for t in task_names})

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def _task_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.trunks[task].parameters(), *self.heads[task].parameters()]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.trunks.parameters()

    def forward(self, x: Tensor) -> Forward:
        features = [self.trunks[task](x) for task in self.heads]
        shared = torch.cat(features, dim=1)
        slices = shared.split([f.shape[1] for f in features], dim=1)
        predictions = {
            task: head(piece)
            for (task, head), piece in zip(self.heads.items(), slices, strict=True)
        }
        extras = {f"trunk/{task}": piece for task, piece in zip(self.heads, slices, strict=True)}
        return Forward(predictions=predictions, shared=shared, extras=extras)
