"""Gradient vaccine (Wang et al., "Gradient Vaccine: Investigating and Improving Multi-task
Optimization in Massively Multilingual Models", ICLR 2021): pairwise gradient alignment towards an
exponential moving average ``phi`` of the observed cosine similarities, visiting the task pairs in
random order (``torchjd.aggregation.GradVac``); seeded, and ``phi`` is checkpointed."""

from __future__ import annotations

from typing import Any, ClassVar

from torchjd import aggregation

from coremtl.balancers.aggregators import AggregatorBalancer


class GradVac(AggregatorBalancer):
    name = "gradvac"
    defaults: ClassVar[dict[str, Any]] = {"beta": 0.5, "eps": 1e-8}
    stochastic = True
    state_attributes = ("gramian_weighting._phi_t", "gramian_weighting._state_key")

    def build(self, num_tasks: int, beta: float, eps: float) -> aggregation.Aggregator:
        return aggregation.GradVac(beta, eps)
