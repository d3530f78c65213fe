"""The only module that imports torchjd: its aggregators and scalarizers behind our ``Balancer``.

Gradient aggregators (Jacobian descent). With ``L = (L_1, ..., L_K)`` the task losses, ``h`` the
shared representation and ``theta`` the shared parameters, ``torchjd.autojac.mtl_backward`` stores
the Jacobian ``J = dL/dtheta = (dL/dh)(dh/dtheta)`` (one row ``g_i`` per task) in ``theta.jac`` and
the ordinary gradients of each ``L_i`` in its task-specific parameters' ``.grad``; the aggregator
``A`` then writes ``A(J)`` into ``theta.grad`` (``torchjd.autojac.jac_to_grad``). For weighted
aggregators ``A(J) = J^T w`` and ``w`` is returned; for GradDrop and ConFIG, which are not a linear
combination with known weights, the returned number for task ``i`` is the coefficient of the
projection of the update on ``g_i``: ``<A(J), g_i> / ||g_i||^2`` (0 when ``g_i = 0``).

Scalarizers (loss weighting) compute ``S(L)`` and back-propagate it; the returned weights are
``dS/dL_i`` (for Equal Weighting, the plain sum, they are all 1).

The methods and their papers (torchjd's docstrings give the equations):
PCGrad (Yu et al., NeurIPS 2020), MGDA (Sener & Koltun, NeurIPS 2018, Frank-Wolfe solver),
CAGrad (Liu et al., NeurIPS 2021), Nash-MTL (Navon et al., ICML 2022), IMTL-G (Liu et al., ICLR
2021), FairGrad (Ban & Ji, ICML 2024), Aligned-MTL (Senushkin et al., CVPR 2023), UPGrad and
DualProj (Quinton & Rey, 2024, "Jacobian Descent for Multi-Objective Optimization"), GradVac (Wang
et al., ICLR 2021), GradDrop (Chen et al., NeurIPS 2020), ConFIG (Liu et al., ICLR 2025);
Equal Weighting (sum), UW (Kendall et al., CVPR 2018), DWA (Liu et al., CVPR 2019), RLW (Lin et
al., TMLR 2022), STCH (Lin et al., ICML 2024), FAMO (Liu et al., NeurIPS 2023), GLS (Chennupati et
al., CVPRW 2019).

Written against torchjd 0.18 (``torchjd.autojac.mtl_backward``/``jac_to_grad``,
``torchjd.aggregation``, ``torchjd.scalarization``); private attributes read for exact resume are
listed in ``_STATE_ATTRIBUTES``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter
from torchjd import aggregation, scalarization
from torchjd.autojac import jac_to_grad, mtl_backward

from coremtl.balancers.base import (
    Balancer,
    SeededRandomStream,
    SharedRepresentation,
    as_tensor_list,
    trainable,
)
from scm.validation import InvalidParameterError

AggregatorFactory = Callable[..., aggregation.Aggregator]
ScalarizerFactory = Callable[..., scalarization.Scalarizer]

AGGREGATORS: dict[str, tuple[AggregatorFactory, dict[str, Any]]] = {
    "pcgrad": (lambda num_tasks: aggregation.PCGrad(), {}),
    "mgda": (
        lambda num_tasks, epsilon, max_iters: aggregation.MGDA(epsilon, max_iters),
        {"epsilon": 1e-3, "max_iters": 100},
    ),
    "cagrad": (
        lambda num_tasks, c, norm_eps: aggregation.CAGrad(c, norm_eps),
        {"c": 0.4, "norm_eps": 1e-4},
    ),
    "nashmtl": (
        lambda num_tasks, **o: aggregation.NashMTL(num_tasks, **o),
        {"max_norm": 1.0, "update_weights_every": 1, "optim_niter": 20},
    ),
    "imtl": (lambda num_tasks: aggregation.IMTLG(), {}),
    "fairgrad": (
        lambda num_tasks, alpha, max_iters: aggregation.FairGrad(alpha, max_iters),
        {"alpha": 1.0, "max_iters": None},
    ),
    "alignedmtl": (
        lambda num_tasks, scale_mode: aggregation.AlignedMTL(scale_mode=scale_mode),
        {"scale_mode": "min"},
    ),
    "upgrad": (lambda num_tasks: aggregation.UPGrad(), {}),
    "dualproj": (lambda num_tasks: aggregation.DualProj(), {}),
    "gradvac": (
        lambda num_tasks, beta, eps: aggregation.GradVac(beta, eps),
        {"beta": 0.5, "eps": 1e-8},
    ),
    "graddrop": (lambda num_tasks: aggregation.GradDrop(), {}),
    "config": (lambda num_tasks: aggregation.ConFIG(), {}),
}

SCALARIZERS: dict[str, tuple[ScalarizerFactory, dict[str, Any]]] = {
    "ew": (lambda num_tasks: scalarization.Sum(), {}),
    "uw": (lambda num_tasks: scalarization.UW(num_tasks), {}),
    "dwa": (lambda num_tasks, temperature: scalarization.DWA(temperature), {"temperature": 2.0}),
    "rlw": (lambda num_tasks: scalarization.Random(), {}),
    "stch": (lambda num_tasks, mu: scalarization.STCH(mu), {"mu": 1.0}),
    "famo": (
        lambda num_tasks, lr, weight_decay: scalarization.FAMO(num_tasks, None, lr, weight_decay),
        {"lr": 0.025, "weight_decay": 1e-3},
    ),
    "gls": (lambda num_tasks: scalarization.GeometricMean(), {}),
}

STOCHASTIC = frozenset({"rlw", "graddrop", "gradvac"})
"""Methods that draw random numbers; they get a ``seed`` option and their own random stream."""

_STATE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "gradvac": ("gramian_weighting._phi_t", "gramian_weighting._state_key"),
    "nashmtl": ("weighting.step", "weighting.prvs_alpha", "weighting.normalization_factor"),
    "dwa": ("_loss_sum", "_n_batches", "_previous_averages"),
    "famo": ("_prev_losses",),
}
"""Private torchjd attributes that hold the state of stateful methods beyond their parameters."""


def method_options(name: str) -> dict[str, Any]:
    """The options (with defaults) that the torchjd method ``name`` accepts."""
    table = AGGREGATORS if name in AGGREGATORS else SCALARIZERS
    options = dict(table[name][1])
    if name in STOCHASTIC:
        options["seed"] = 0
    return options


def _build(name: str, num_tasks: int, options: Mapping[str, Any]) -> Any:
    factory = (AGGREGATORS if name in AGGREGATORS else SCALARIZERS)[name][0]
    try:
        return factory(num_tasks, **options)
    except (ValueError, TypeError) as error:
        raise InvalidParameterError(f"options of balancer {name!r}: {error}") from None


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set_path(obj: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def _to_checkpoint(value: Any) -> Any:
    """Numpy arrays become tensors so the state loads with ``torch.load(weights_only=True)``."""
    if hasattr(value, "__array__") and not isinstance(value, Tensor):
        return torch.as_tensor(value)
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, list | tuple):
        return type(value)(_to_checkpoint(v) for v in value)
    return value


class _TorchjdMethod(Balancer):
    """State handling shared by the aggregator and scalarizer balancers."""

    def __init__(self, name: str, task_names: Sequence[str], **options: Any) -> None:
        super().__init__(task_names)
        self.name = name
        self.options = {**method_options(name), **options}
        seed = self.options.pop("seed", None)
        self.random_stream = SeededRandomStream(seed) if name in STOCHASTIC else None
        self.method = _build(name, self.num_tasks, self.options)

    def _random_context(self) -> Any:
        return self.random_stream.active() if self.random_stream is not None else nullcontext()

    def to(self, device: torch.device | str) -> Balancer:
        self.method.to(device)
        return self

    def parameters(self) -> list[Parameter]:
        return list(self.method.parameters()) if self.name == "uw" else []

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"module": self.method.state_dict()}
        for path in _STATE_ATTRIBUTES.get(self.name, ()):
            state[path] = _to_checkpoint(_get_path(self.method, path))
        if self.random_stream is not None:
            state["random_stream"] = self.random_stream.state_dict()
        if self.name == "famo" and self.method._optimizer is not None:
            state["famo_optimizer"] = copy.deepcopy(self.method._optimizer.state_dict())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        expected = {"module", *_STATE_ATTRIBUTES.get(self.name, ())}
        if self.random_stream is not None:
            expected.add("random_stream")
        self.check_state_keys(state, expected | ({"famo_optimizer"} & set(state)))
        for path in _STATE_ATTRIBUTES.get(self.name, ()):
            _set_path(self.method, path, _from_checkpoint(self.name, path, state[path]))
        self.method.load_state_dict(state["module"])
        if self.random_stream is not None:
            self.random_stream.load_state_dict(state["random_stream"])
        if self.name == "famo":
            self.method._optimizer = None
            if "famo_optimizer" in state:
                self.method._optimizer = torch.optim.Adam(
                    [self.method._w], lr=self.method.lr, weight_decay=self.method.weight_decay
                )
                self.method._optimizer.load_state_dict(state["famo_optimizer"])
        if self.name == "nashmtl" and self.method.weighting.step > 0:
            self.method.weighting._init_optim_problem()


def _from_checkpoint(name: str, path: str, value: Any) -> Any:
    if isinstance(value, Tensor) and name == "nashmtl":
        return value.numpy().copy()
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, list):
        return [_from_checkpoint(name, path, v) for v in value]
    return value


class AggregatorBalancer(_TorchjdMethod):
    """Jacobian descent on the shared parameters with a torchjd aggregator.

    A task loss without a graph (a constant, e.g. a batch with no valid target for that task)
    contributes an exactly zero Jacobian row. The task losses' graphs may share nodes after
    ``shared`` (stacked heads, one loss call for all tasks): each task is differentiated with the
    graph retained, and the graph is freed with the step's tensors.
    """

    def backward(
        self,
        task_losses: Mapping[str, Tensor],
        shared: SharedRepresentation,
        shared_params: Sequence[Parameter],
        extra_loss: Tensor | None = None,
    ) -> dict[str, float]:
        features = as_tensor_list(shared)
        anchor = 0.0 * features[0].sum()
        losses = [
            loss if loss.requires_grad else loss + anchor
            for loss in self.ordered_losses(task_losses)
        ]
        params = trainable(shared_params)
        if extra_loss is not None:
            extra_loss.backward(retain_graph=True)
        with self._random_context(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not DPP", category=UserWarning)
            mtl_backward(losses, features=features, shared_params=params, retain_graph=True)
            if isinstance(self.method, aggregation.WeightedAggregator):
                weights = jac_to_grad(params, self.method)
            else:
                weights = _aggregate_unweighted(params, self.method)
        return self.weights_dict(weights)


def _aggregate_unweighted(params: list[Parameter], aggregator: aggregation.Aggregator) -> Tensor:
    """Accumulate ``A(J)`` into ``.grad`` and return ``<A(J), g_i> / ||g_i||^2`` per task."""
    jacobian = torch.cat([p.jac.reshape(p.jac.shape[0], -1) for p in params], dim=1)
    for p in params:
        del p.jac
    update = aggregator(jacobian)
    for p, piece in zip(params, update.split([p.numel() for p in params]), strict=True):
        piece = piece.reshape(p.shape).to(p.dtype)
        p.grad = piece if p.grad is None else p.grad + piece
    squared_norms = (jacobian * jacobian).sum(dim=1)
    projections = jacobian @ update
    return torch.where(squared_norms > 0, projections / squared_norms.clamp_min(1e-30), 0.0)


class ScalarizerBalancer(_TorchjdMethod):
    """Back-propagation of a torchjd scalarisation ``S(L_1, ..., L_K)`` of the task losses."""

    def backward(
        self,
        task_losses: Mapping[str, Tensor],
        shared: SharedRepresentation,
        shared_params: Sequence[Parameter],
        extra_loss: Tensor | None = None,
    ) -> dict[str, float]:
        values = torch.stack(self.ordered_losses(task_losses))
        if values.requires_grad:
            values.retain_grad()
        else:
            values.requires_grad_()
        with self._random_context():
            total = self.method(values)
        if extra_loss is not None:
            total = total + extra_loss
        total.backward()
        return self.weights_dict(values.grad)

    @property
    def needs_losses_after_step(self) -> bool:
        return self.name == "famo"

    def after_step(self, task_losses: Mapping[str, Tensor]) -> None:
        if self.name == "famo":
            self.method.update(torch.stack(self.ordered_losses(task_losses)).detach())

    def end_epoch(self) -> None:
        if self.name == "dwa":
            self.method.step()


def make_torchjd_balancer(name: str, task_names: Sequence[str], **options: Any) -> Balancer:
    """The balancer for torchjd method ``name`` (options already validated by the caller)."""
    cls = AggregatorBalancer if name in AGGREGATORS else ScalarizerBalancer
    return cls(name, task_names, **options)
