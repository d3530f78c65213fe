"""Full-batch training on the exact population risks of setting S (S3, S4), in torch float64.

The task risks are S1's closed form (``rho = 0``)

    R_t = (beta_t - c w_t)^T Sigma_s (beta_t - c w_t) + s^2 w_t^T Sigma_S w_t
          + (s w_t^T mu_S + b_t)^2 + sigma_t^2,

differentiable in the heads and in ``psi``; every balancer of :mod:`coremtl.balancers` is driven
through its ``backward(task_losses, shared, shared_params)`` interface and a plain SGD step.
Training runs in float32 (the dtype the balancers are written for); the final gradients are
re-evaluated in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class PopulationRisk:
    """The tensors of one SCM's source environment."""

    sigma_s: Tensor
    residual_cov: Tensor
    residual_mean: Tensor
    beta: Tensor
    noise_var: Tensor
    scm: object

    @classmethod
    def of(cls, scm, env: str = "source", dtype=torch.float64, device=None) -> PopulationRisk:
        law = scm.law(env)

        def tensor(value):
            return torch.as_tensor(np.asarray(value), dtype=dtype, device=device)

        return cls(
            tensor(scm.sigma_s),
            tensor(law.cov),
            tensor(law.mean),
            tensor(scm.beta),
            tensor(scm.noise_std**2),
            scm,
        )

    def task_risk(self, t: int, c: Tensor, s: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """``R_t`` for head ``(w, b)`` at ``c = cos psi``, ``s = sin psi``."""
        direction = self.beta[t] - c * w
        return (
            direction @ self.sigma_s @ direction
            + s * s * (w @ self.residual_cov @ w)
            + (s * (w @ self.residual_mean) + b) ** 2
            + self.noise_var[t]
        )

    def head_hessian(self, psi: float) -> np.ndarray:
        """Hessian of ``R_t`` in ``(w, b)``, the same for every task:
        ``2 [[c^2 Sigma_s + s^2 (Sigma_S + mu mu^T), s mu], [s mu^T, 1]]``."""
        c, s = np.cos(psi), np.sin(psi)
        mean = self.residual_mean.cpu().numpy()
        top = c * c * self.sigma_s.cpu().numpy() + s * s * (
            self.residual_cov.cpu().numpy() + np.outer(mean, mean)
        )
        k = mean.shape[0]
        hessian = np.zeros((k + 1, k + 1))
        hessian[:k, :k], hessian[:k, k], hessian[k, :k], hessian[k, k] = top, s * mean, s * mean, 1
        return 2.0 * hessian


def _balancer(name: str, task_names: Sequence[str]):
    from coremtl.balancers import make_balancer

    return make_balancer(name, task_names)


def train_heads_fixed_psi(
    risk: PopulationRisk,
    psi: float,
    method: str,
    steps: int,
    learning_rate: float,
    initial: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Train all heads ``theta = [W | b]`` (K x (k+1)) with ``psi`` fixed, the balancer
    aggregating the per-task gradients over every head parameter (``theta`` is its shared
    parameter, ``shared = theta`` its representation). Returns ``theta`` and the last gradients
    of each task's risk in its own head (K x (k+1))."""
    num_tasks = risk.beta.shape[0]
    names = [f"task{t}" for t in range(num_tasks)]
    balancer = _balancer(method, names)
    dtype = risk.beta.dtype
    theta = torch.nn.Parameter(torch.as_tensor(initial, dtype=dtype).clone())
    optimiser = torch.optim.SGD([theta, *balancer.parameters()], lr=learning_rate)
    c = torch.tensor(np.cos(psi), dtype=dtype)
    s = torch.tensor(np.sin(psi), dtype=dtype)
    for _ in range(steps):
        optimiser.zero_grad()
        shared = theta * 1.0
        losses = {
            name: risk.task_risk(t, c, s, shared[t, :-1], shared[t, -1])
            for t, name in enumerate(names)
        }
        balancer.backward(losses, shared, [theta])
        optimiser.step()
        if balancer.needs_losses_after_step:
            with torch.no_grad():
                after = {
                    name: risk.task_risk(t, c, s, theta[t, :-1], theta[t, -1])
                    for t, name in enumerate(names)
                }
            balancer.after_step(after)
    exact = PopulationRisk.of(risk.scm)
    final = theta.detach().double().clone().requires_grad_(True)
    c64, s64 = torch.tensor(np.cos(psi)), torch.tensor(np.sin(psi))
    total = sum(exact.task_risk(t, c64, s64, final[t, :-1], final[t, -1]) for t in range(num_tasks))
    (gradient,) = torch.autograd.grad(total, final)
    return final.detach().numpy(), gradient.numpy()


@dataclass(frozen=True)
class JointRun:
    """Where joint training of ``psi`` and the heads ended."""

    psi: np.ndarray
    heads: np.ndarray
    weight_sums: np.ndarray


def train_jointly(
    risk: PopulationRisk,
    psi0: float,
    heads0: np.ndarray,
    method: str,
    steps: int,
    learning_rate: float,
    profile: bool = False,
) -> JointRun:
    """Train ``psi`` (shared, representation ``(cos psi, sin psi)``) and the heads (task-specific)
    with a balancer. With ``profile=True`` the heads are reset to their source optimum before every
    step (heads kept at their optimum, S4's profile dynamics). Returns the ``psi`` trajectory, the
    final heads and the sum of the task weights the balancer used at each step."""
    from scm import optimal_heads

    num_tasks = risk.beta.shape[0]
    names = [f"task{t}" for t in range(num_tasks)]
    balancer = _balancer(method, names)
    dtype = risk.beta.dtype
    psi = torch.nn.Parameter(torch.tensor(psi0, dtype=dtype))
    heads = [
        torch.nn.Parameter(torch.as_tensor(heads0[t], dtype=dtype).clone())
        for t in range(num_tasks)
    ]
    optimiser = torch.optim.SGD([psi, *heads, *balancer.parameters()], lr=learning_rate)
    trajectory, weight_sums = [psi0], []
    for _ in range(steps):
        if profile:
            with torch.no_grad():
                weights, bias = optimal_heads(risk.scm, float(psi.clamp(0, np.pi / 2)))
                for t in range(num_tasks):
                    heads[t].copy_(torch.as_tensor(np.append(weights[t], bias[t]), dtype=dtype))
        optimiser.zero_grad()
        shared = torch.stack([torch.cos(psi), torch.sin(psi)])
        losses = {
            name: risk.task_risk(t, shared[0], shared[1], heads[t][:-1], heads[t][-1])
            for t, name in enumerate(names)
        }
        used = balancer.backward(losses, shared, [psi])
        weight_sums.append(sum(abs(value) for value in used.values()))
        optimiser.step()
        if balancer.needs_losses_after_step:
            with torch.no_grad():
                c, s = torch.cos(psi), torch.sin(psi)
                after = {
                    name: risk.task_risk(t, c, s, heads[t][:-1], heads[t][-1])
                    for t, name in enumerate(names)
                }
            balancer.after_step(after)
        trajectory.append(float(psi.detach()))
    final = np.stack([head.detach().numpy() for head in heads])
    return JointRun(np.asarray(trajectory), final, np.asarray(weight_sums))
