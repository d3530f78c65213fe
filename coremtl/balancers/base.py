"""The interface every loss/gradient balancer implements.

A balancer turns the per-task losses of one batch into gradients in the ``.grad`` fields of the
model parameters. The trainer calls, for each batch,

    weights = balancer.backward(task_losses, forward.shared, shared_params, extra_loss)
    optimizer.step()
    if balancer.needs_losses_after_step:      # FAMO: losses recomputed on the same batch
        balancer.after_step(recomputed_task_losses)

and ``balancer.end_epoch()`` once at the end of every epoch (DWA rolls its loss history there).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter

from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

SharedRepresentation = Tensor | Sequence[Tensor]


class Balancer(ABC):
    """Combines the task losses of one batch into parameter gradients.

    ``task_names`` fixes the order of the tasks: weights, Jacobian rows and state follow it.
    ``needs_shared_parameters``: the method acts on the gradients of the shared parameters
    (Jacobian descent, GradNorm), so it needs at least one that trains.
    """

    name: str = ""
    needs_shared_parameters: bool = False

    def __init__(self, task_names: Sequence[str]) -> None:
        if isinstance(task_names, str) or not isinstance(task_names, Sequence):
            raise InvalidParameterError(
                f"task_names: expected a list of task names (strings), got "
                f"{type(task_names).__name__} {task_names!r}"
            )
        names = list(task_names)
        if not names or not all(isinstance(name, str) and name for name in names):
            raise InvalidParameterError(
                f"task_names: expected a non-empty list of non-empty strings, got {names!r}"
            )
        if len(set(names)) != len(names):
            raise InvalidParameterError(f"task_names: expected unique names, got {names!r}")
        self.task_names: list[str] = names

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """The options the constructor takes besides ``task_names``, with their defaults."""
        return {}

    @abstractmethod
    def backward(
        self,
        task_losses: Mapping[str, Tensor],
        shared: SharedRepresentation,
        shared_params: Sequence[Parameter],
        extra_loss: Tensor | None = None,
    ) -> dict[str, float]:
        """Accumulate into ``.grad`` the balanced task gradients plus the gradient of ``extra_loss``.

        ``shared`` is the last shared representation (or several tensors, none computed from
        another, that together carry every dependence of the task losses on ``shared_params``);
        ``shared_params`` are the parameters upstream of it, in module order. The graphs of
        different task losses may also share nodes downstream of ``shared`` (stacked heads, one
        loss call for all tasks). Returns the per-task weights used, keyed by task name.
        """

    def parameters(self) -> list[Parameter]:
        """Learnable balancer parameters that the trainer's optimiser must step (may be empty)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to reproduce the next step exactly after a resume."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.check_state_keys(state, set())

    def check_state_keys(self, state: Mapping[str, Any], expected: set[str]) -> None:
        if set(state) != expected:
            raise InvalidParameterError(
                f"state of balancer {self.name!r}: expected keys {sorted(expected)}, "
                f"got {sorted(state)}"
            )

    def to(self, device: torch.device | str) -> Balancer:
        """Move learnable parameters and buffers to ``device`` (no-op for stateless balancers)."""
        return self

    @property
    def needs_losses_after_step(self) -> bool:
        """Whether :meth:`after_step` must be called with the losses recomputed after the step."""
        return False

    def after_step(self, task_losses: Mapping[str, Tensor]) -> None:
        """Update internal weights from the same batch's losses after the optimiser step."""
        return None

    def end_epoch(self) -> None:
        """Called once at the end of every epoch."""
        return None

    def ordered_losses(self, task_losses: Mapping[str, Tensor]) -> list[Tensor]:
        """The losses in ``task_names`` order, after checking the keys and that each is a scalar."""
        if set(task_losses) != set(self.task_names):
            raise InvalidParameterError(
                f"task_losses: expected keys {self.task_names}, got {sorted(task_losses)}"
            )
        losses = [task_losses[name] for name in self.task_names]
        for name, loss in zip(self.task_names, losses, strict=True):
            if loss.ndim != 0:
                raise InvalidParameterError(
                    f"task_losses[{name!r}]: expected a scalar, got shape {tuple(loss.shape)}"
                )
        return losses

    def weights_dict(self, weights: Tensor) -> dict[str, float]:
        values = weights.detach().flatten().tolist()
        return dict(zip(self.task_names, (float(v) for v in values), strict=True))


def trainable(params: Sequence[Parameter]) -> list[Parameter]:
    """The parameters that take a gradient."""
    return [p for p in params if p.requires_grad]


def as_tensor_list(shared: SharedRepresentation) -> list[Tensor]:
    if isinstance(shared, Tensor):
        return [shared]
    tensors = list(shared)
    if not tensors:
        raise InvalidParameterError("shared: expected a tensor or a non-empty list of tensors")
    return tensors


class SeededRandomStream:
    """A random stream owned by one balancer, independent of the global generator.

    Call ``k`` runs with the global generators (CPU and every CUDA device) seeded with
    ``derive_seed(seed, "balancer", k)`` (:mod:`scm.seeds`) and restored afterwards, so a
    stochastic method (RLW, GradDrop, GradVac) draws the same numbers after a resume and does not
    perturb the trainer's own random stream.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.calls = 0

    def seed_of(self, call: int) -> int:
        """The seed of call ``call``: ``derive_seed(seed, "balancer", call)``."""
        return derive_seed(self.seed, "balancer", call)

    @contextmanager
    def active(self) -> Iterator[None]:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            seed = self.seed_of(self.calls)
            torch.random.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed_all(seed)
            self.calls += 1
            yield

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "calls": self.calls}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.seed = int(state["seed"])
        self.calls = int(state["calls"])
