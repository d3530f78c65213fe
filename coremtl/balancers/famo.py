"""Fast adaptive multitask optimisation (Liu et al., "FAMO: Fast Adaptive Multitask Optimization",
NeurIPS 2023): the logits of the weights are updated after each optimiser step from the change of
the log-losses on the same batch (``torchjd.scalarization.FAMO``), so the trainer recomputes the
losses after the step (``needs_losses_after_step``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchjd import scalarization

from coremtl.balancers.scalarizers import ScalarizerBalancer


class FAMO(ScalarizerBalancer):
    name = "famo"
    defaults: ClassVar[dict[str, Any]] = {"lr": 0.025, "weight_decay": 1e-3}
    state_attributes = ("_prev_losses",)

    def build(self, num_tasks: int, lr: float, weight_decay: float) -> scalarization.Scalarizer:
        return scalarization.FAMO(num_tasks, None, lr, weight_decay)

    @property
    def needs_losses_after_step(self) -> bool:
        return True

    def after_step(self, task_losses: Mapping[str, Tensor]) -> None:
        self.method.update(torch.stack(self.ordered_losses(task_losses)).detach())

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.method._optimizer is not None:
            state["famo_optimizer"] = copy.deepcopy(self.method._optimizer.state_dict())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        optimizer_state = state.pop("famo_optimizer", None)
        super().load_state_dict(state)
        self.method._optimizer = None
        if optimizer_state is not None:
            self.method._optimizer = torch.optim.Adam(
                [self.method._w], lr=self.method.lr, weight_decay=self.method.weight_decay
            )
            self.method._optimizer.load_state_dict(optimizer_state)
