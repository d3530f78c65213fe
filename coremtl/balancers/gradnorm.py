r"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

With task weights ``w_i(t)`` and ``W`` the weights of the last shared layer, GradNorm defines

    G_W^(i)(t) = || grad_W  w_i(t) L_i(t) ||_2,          G_bar_W(t) = mean_i G_W^(i)(t),
    L_tilde_i(t) = L_i(t) / L_i(0),                      r_i(t) = L_tilde_i(t) / mean_j L_tilde_j(t),

and the gradient loss (eq. 2 of the paper)

    L_grad(t; w(t)) = sum_i | G_W^(i)(t) - G_bar_W(t) * r_i(t)^alpha |_1,

whose target ``G_bar_W(t) r_i(t)^alpha`` is treated as a constant. The network receives the
gradient of ``sum_i w_i(t) L_i(t)`` (plus any auxiliary loss); the weights receive only
``grad_w L_grad`` and are then renormalised so that ``sum_i w_i(t+1) = K`` (Algorithm 1).

Because ``w_i`` is a scalar, ``grad_W w_i L_i = w_i grad_W L_i``, hence ``G_W^(i) = w_i n_i`` with
``n_i = ||grad_W L_i||`` independent of ``w`` and ``dL_grad/dw_i = n_i sign(w_i n_i - target_i)``:
no second-order differentiation is needed. The weights are updated by their own Adam optimiser
(learning rate ``lr``); weights that would become negative are floored at ``min_weight`` before the
renormalisation (the paper keeps ``w_i > 0`` implicitly). ``W`` is the last parameter with at least
two dimensions in ``shared_params`` (the trainer passes them in module order), or the last parameter
when all are vectors.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter

from coremtl.balancers.base import Balancer, SharedRepresentation, trainable
from scm.validation import InvalidParameterError

GRADNORM_OPTIONS: dict[str, Any] = {"alpha": 1.5, "lr": 0.025, "min_weight": 1e-3}


def last_shared_layer(shared_params: Sequence[Parameter]) -> Parameter:
    """The last parameter with ``ndim >= 2`` (a layer's weights), else the last parameter."""
    params = trainable(shared_params)
    if not params:
        raise InvalidParameterError(
            "shared_params: GradNorm needs at least one trainable parameter"
        )
    matrices = [p for p in params if p.ndim >= 2]
    return (matrices or params)[-1]


def _gradient_norm(loss: Tensor, layer: Parameter) -> Tensor:
    """``||dL/dW||``, zero when the loss does not depend on ``W``."""
    if not loss.requires_grad:
        return loss.new_zeros(()).detach()
    (gradient,) = torch.autograd.grad(loss, layer, retain_graph=True, allow_unused=True)
    return loss.new_zeros(()).detach() if gradient is None else torch.linalg.vector_norm(gradient)


class GradNorm(Balancer):
    """GradNorm loss weighting with asymmetry ``alpha`` (Chen et al., ICML 2018, eq. 1-2)."""

    name = "gradnorm"
    needs_shared_parameters = True

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return dict(GRADNORM_OPTIONS)

    def __init__(
        self,
        task_names: Sequence[str],
        alpha: float = GRADNORM_OPTIONS["alpha"],
        lr: float = GRADNORM_OPTIONS["lr"],
        min_weight: float = GRADNORM_OPTIONS["min_weight"],
    ) -> None:
        super().__init__(task_names)
        if not alpha >= 0.0:
            raise InvalidParameterError(f"alpha: expected a non-negative number, got {alpha}")
        if not lr > 0.0:
            raise InvalidParameterError(f"lr: expected a positive number, got {lr}")
        if not 0.0 < min_weight < 1.0:
            raise InvalidParameterError(
                f"min_weight: expected a number in (0, 1), got {min_weight}"
            )
        self.alpha = float(alpha)
        self.lr = float(lr)
        self.min_weight = float(min_weight)
        self.weights = torch.ones(self.num_tasks)
        self.initial_losses: Tensor | None = None
        self._weights_optimizer_state: dict[str, Any] | None = None
        self.last_gradient_norms: Tensor | None = None

    def to(self, device: torch.device | str) -> GradNorm:
        self.weights = self.weights.to(device)
        if self.initial_losses is not None:
            self.initial_losses = self.initial_losses.to(device)
        return self

    def backward(
        self,
        task_losses: Mapping[str, Tensor],
        shared: SharedRepresentation,
        shared_params: Sequence[Parameter],
        extra_loss: Tensor | None = None,
    ) -> dict[str, float]:
        losses = torch.stack(self.ordered_losses(task_losses))
        layer = last_shared_layer(shared_params)
        weights = self.weights.to(device=losses.device, dtype=losses.dtype)
        if self.initial_losses is None:
            self.initial_losses = losses.detach().clone()
        norms = torch.stack([_gradient_norm(loss, layer) for loss in losses.unbind()])
        total = (weights * losses).sum()
        if extra_loss is not None:
            total = total + extra_loss
        total.backward()
        self.last_gradient_norms = weights * norms
        self._update_weights(weights, norms, losses.detach())
        return self.weights_dict(weights)

    def gradnorm_targets(self, weights: Tensor, norms: Tensor, losses: Tensor) -> Tensor:
        """``G_bar_W r_i^alpha`` of eq. 2, from the current weights, gradient norms and losses."""
        initial = self.initial_losses.to(losses.device).clamp_min(torch.finfo(losses.dtype).tiny)
        ratios = losses / initial
        inverse_rates = ratios / ratios.mean().clamp_min(torch.finfo(losses.dtype).tiny)
        return (weights * norms).mean() * inverse_rates**self.alpha

    def _update_weights(self, weights: Tensor, norms: Tensor, losses: Tensor) -> None:
        targets = self.gradnorm_targets(weights, norms, losses)
        parameter = Parameter(weights.detach().clone())
        optimizer = torch.optim.Adam([parameter], lr=self.lr)
        if self._weights_optimizer_state is not None:
            optimizer.load_state_dict(self._weights_optimizer_state)
        parameter.grad = norms * torch.sign(weights * norms - targets)
        optimizer.step()
        self._weights_optimizer_state = optimizer.state_dict()
        floored = parameter.detach().clamp_min(self.min_weight)
        self.weights = self.num_tasks * floored / floored.sum()

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.clone(),
            "initial_losses": None if self.initial_losses is None else self.initial_losses.clone(),
            "optimizer": copy.deepcopy(self._weights_optimizer_state),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.check_state_keys(state, {"weights", "initial_losses", "optimizer"})
        self.weights = state["weights"].clone()
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else initial.clone()
        self._weights_optimizer_state = copy.deepcopy(state["optimizer"])
