"""Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022): the weights solve
``(G^T G) w = 1 / w`` by a sequence of convex programs (``torchjd.aggregation.NashMTL``), updated
every ``update_weights_every`` steps; its solver state is numpy, checkpointed as tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor
from torchjd import aggregation

from coremtl.balancers.aggregators import AggregatorBalancer


class NashMTL(AggregatorBalancer):
    name = "nashmtl"
    defaults: ClassVar[dict[str, Any]] = {
        "max_norm": 1.0,
        "update_weights_every": 1,
        "optim_niter": 20,
    }
    state_attributes = ("weighting.step", "weighting.prvs_alpha", "weighting.normalization_factor")

    def build(self, num_tasks: int, **options: Any) -> aggregation.Aggregator:
        return aggregation.NashMTL(num_tasks, **options)

    def restore_attribute(self, path: str, value: Any) -> Any:
        return value.numpy().copy() if isinstance(value, Tensor) else value

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.method.weighting.step > 0:
            self.method.weighting._init_optim_problem()
