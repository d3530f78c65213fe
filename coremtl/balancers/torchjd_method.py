"""What every balancer built on a torchjd aggregator or scalarizer shares: options, a seeded random
stream for stochastic methods and exact resume.

Each method is a subclass (:mod:`.aggregators`, :mod:`.scalarizers` and one module per method
whose behaviour differs: :mod:`.nashmtl`, :mod:`.gradvac`, :mod:`.famo`, :mod:`.dwa`, :mod:`.uw`)
that names the torchjd object it wraps in :meth:`TorchjdBalancer.build`. Written against torchjd
0.18 (``torchjd.autojac.mtl_backward``/``jac_to_grad``, ``torchjd.aggregation``,
``torchjd.scalarization``); the private torchjd attributes read for exact resume are each method's
``state_attributes``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any, ClassVar

import torch
from torch import Tensor

from coremtl.balancers.base import Balancer, SeededRandomStream
from scm.validation import InvalidParameterError


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set_path(obj: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def to_checkpoint(value: Any) -> Any:
    """Numpy arrays become tensors so the state loads with ``torch.load(weights_only=True)``."""
    if hasattr(value, "__array__") and not isinstance(value, Tensor):
        return torch.as_tensor(value)
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, list | tuple):
        return type(value)(to_checkpoint(v) for v in value)
    return value


def from_checkpoint(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, list):
        return [from_checkpoint(v) for v in value]
    return value


class TorchjdBalancer(Balancer):
    """A balancer around one torchjd object ``self.method``.

    Subclasses set ``name``, ``defaults`` (the options and their defaults), ``stochastic`` (the
    method draws random numbers: it gets a ``seed`` option and its own random stream) and
    ``state_attributes`` (private torchjd attributes holding state beyond ``state_dict``).
    """

    defaults: ClassVar[dict[str, Any]] = {}
    stochastic: ClassVar[bool] = False
    state_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, task_names: Sequence[str], **options: Any) -> None:
        super().__init__(task_names)
        self.options = {**self.option_defaults(), **options}
        seed = self.options.pop("seed", None)
        self.random_stream = SeededRandomStream(seed) if self.stochastic else None
        try:
            self.method = self.build(self.num_tasks, **self.options)
        except (ValueError, TypeError) as error:
            raise InvalidParameterError(f"options of balancer {self.name!r}: {error}") from None

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {**cls.defaults, **({"seed": 0} if cls.stochastic else {})}

    @abstractmethod
    def build(self, num_tasks: int, **options: Any) -> Any:
        """The torchjd aggregator or scalarizer of this method."""

    def random_context(self) -> Any:
        return self.random_stream.active() if self.random_stream is not None else nullcontext()

    def to(self, device: torch.device | str) -> Balancer:
        self.method.to(device)
        return self

    def restore_attribute(self, path: str, value: Any) -> Any:
        """The value of ``state_attributes`` entry ``path`` to set from its checkpointed form."""
        return from_checkpoint(value)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"module": self.method.state_dict()}
        for path in self.state_attributes:
            state[path] = to_checkpoint(_get_path(self.method, path))
        if self.random_stream is not None:
            state["random_stream"] = self.random_stream.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        expected = {"module", *self.state_attributes}
        if self.random_stream is not None:
            expected.add("random_stream")
        self.check_state_keys(state, expected)
        for path in self.state_attributes:
            _set_path(self.method, path, self.restore_attribute(path, state[path]))
        self.method.load_state_dict(state["module"])
        if self.random_stream is not None:
            self.random_stream.load_state_dict(state["random_stream"])
