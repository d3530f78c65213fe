"""Dynamic weight average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention",
CVPR 2019): weights ``K softmax(r / T)`` of the loss ratios ``r_i = L_i(t-1) / L_i(t-2)`` of the two
previous epochs (``torchjd.scalarization.DWA``), rolled at the end of every epoch."""

from __future__ import annotations

from typing import Any, ClassVar

from torchjd import scalarization

from coremtl.balancers.scalarizers import ScalarizerBalancer


class DynamicWeightAverage(ScalarizerBalancer):
    name = "dwa"
    defaults: ClassVar[dict[str, Any]] = {"temperature": 2.0}
    state_attributes = ("_loss_sum", "_n_batches", "_previous_averages")

    def build(self, num_tasks: int, temperature: float) -> scalarization.Scalarizer:
        return scalarization.DWA(temperature)

    def end_epoch(self) -> None:
        self.method.step()
