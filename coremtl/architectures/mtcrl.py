r"""MT-CRL: Multi-Task Causal Representation Learning (Hu et al., "Improving Multi-Task
Generalization via Regularizing Spurious Correlation", NeurIPS 2022).

Model. A shared trunk feeds ``M`` separate neural modules ``h_m = module_m(trunk(x))`` (no
parameters shared between modules). Each task ``t`` routes the modules through a learnable
task-to-module graph ``A_t = sigmoid(G_t) in (0, 1)^M`` and its head reads the gated
concatenation ``z_t = [A_{t,1} h_1 ; ... ; A_{t,M} h_M]``. ``Forward.shared`` is
``[h_1 ; ... ; h_M]`` (the last shared representation), ``extras["routing/<task>"]`` the row
``A_t`` (computed separately per task, so that the task graphs meet only at ``Forward.shared``),
``extras["routing"]`` the ``(T, M)`` matrix ``A`` and ``extras["modules"]`` the module outputs pooled to vectors ``(B, sum_m d_m)``.

Losses, as implemented here (``MTCRLRegularizer``):

- module disentanglement: with ``u_m`` the batch-standardised pooled outputs of module ``m``
  (zero mean, unit variance per coordinate), ``C_{mn} = u_m^T u_n / B`` their cross-correlation,

      L_dis = sum_{m < n} ||C_{mn}||_F^2 / (d_m d_n),

  zero exactly when the modules are linearly uncorrelated over the batch;
- MTL-specific invariance across environments: with ``L_t^e`` the loss of task ``t`` on the
  samples of environment ``e`` and ``g_t^e = dL_t^e / dA_t`` the gradient of that loss with
  respect to the task's routing weights,

      L_inv = sum_t sum_m Var_e(g_{t,m}^e)      (population variance over the E environments),

  zero exactly when every environment asks the same change of the task-to-module graph, i.e. when
  the routing that is optimal for one environment is optimal for all (an invariance penalty on the
  graph gradients, in the spirit of IRM / Fishr);
- graph sparsity: ``L_sparse = mean_{t,m} A_{t,m}``, so that each task keeps the modules it needs.

The total regulariser is ``w_dis L_dis + w_inv L_inv + w_sparse L_sparse``. The paper's text was
not available to us in full while writing this module: the architecture (disentangled modules and a
learned task-to-module graph) and the two ingredients (module disentanglement, an invariance
regulariser on the graph across environments) follow its abstract and method overview, and the
exact formulas above are our instantiation of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from coremtl.architectures.shared_bottom import as_heads
from coremtl.forward import Forward
from coremtl.objective import TaskLossesFn
from scm.validation import InvalidParameterError


def pooled(features: Tensor) -> Tensor:
    """Vectors unchanged; maps ``(B, C, H, W)`` averaged over positions to ``(B, C)``."""
    return features.flatten(2).mean(dim=2) if features.ndim > 2 else features


class MTCRL(nn.Module):
    """Trunk, ``M`` disentangled modules and a learned task-to-module routing graph."""

    def __init__(
        self,
        trunk: nn.Module,
        modules: Sequence[nn.Module],
        heads: Mapping[str, nn.Module],
    ) -> None:
        super().__init__()
        if len(modules) < 2:
            raise InvalidParameterError(
                f"modules: expected at least two modules, got {len(modules)}"
            )
        self.trunk = trunk
        self.disentangled = nn.ModuleList(modules)
        self.heads = as_heads(heads)
        self.routing_logits = nn.Parameter(torch.zeros(len(self.heads), len(modules)))

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.trunk.parameters()
        yield from self.disentangled.parameters()

    def forward(self, x: Tensor) -> Forward:
        features = self.trunk(x)
        outputs = [module(features) for module in self.disentangled]
        shared = torch.cat(outputs, dim=1)
        pieces = shared.split([o.shape[1] for o in outputs], dim=1)
        predictions = {}
        extras: dict[str, Tensor] = {}
        for index, (task, head) in enumerate(self.heads.items()):
            gates = torch.sigmoid(self.routing_logits[index])
            extras[f"routing/{task}"] = gates
            gated = torch.cat([gates[m] * piece for m, piece in enumerate(pieces)], dim=1)
            predictions[task] = head(gated)
        extras["routing"] = torch.stack([extras[f"routing/{task}"] for task in self.heads])
        extras["modules"] = torch.cat([pooled(o) for o in outputs], dim=1)
        extras["module_sizes"] = torch.tensor([o.shape[1] for o in outputs])
        return Forward(predictions=predictions, shared=shared, extras=extras)


def module_decorrelation(modules: Tensor, sizes: Sequence[int]) -> Tensor:
    """``sum_{m<n} ||C_mn||_F^2 / (d_m d_n)`` for batch-standardised module outputs."""
    batch = modules.shape[0]
    centred = modules - modules.mean(dim=0, keepdim=True)
    scale = centred.pow(2).mean(dim=0, keepdim=True).sqrt().clamp_min(1e-12)
    standardised = centred / scale
    blocks = standardised.split(list(sizes), dim=1)
    total = modules.new_zeros(())
    for m in range(len(blocks)):
        for n in range(m + 1, len(blocks)):
            correlation = blocks[m].T @ blocks[n] / batch
            total = total + correlation.pow(2).sum() / (sizes[m] * sizes[n])
    return total


def _subset(values: Mapping[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
    return {
        key: value[mask] if isinstance(value, Tensor) and value.ndim > 0 else value
        for key, value in values.items()
    }


def routing_invariance(
    forward: Forward,
    batch: Mapping[str, Tensor],
    task_losses_fn: TaskLossesFn,
    environments: Tensor,
) -> Tensor:
    """``sum_t sum_m Var_e(dL_t^e / dA_{t,m})`` over the environments present in the batch."""
    task_names = list(forward.predictions)
    routing = [forward.extras[f"routing/{task}"] for task in task_names]
    labels = environments.unique()
    if len(labels) < 2:
        return routing[0].new_zeros(())
    per_environment = []
    for label in labels:
        mask = environments == label
        losses = task_losses_fn(_subset(forward.predictions, mask), _subset(batch, mask))
        rows = []
        for task, gates in zip(task_names, routing, strict=True):
            (gradient,) = torch.autograd.grad(
                losses[task], gates, create_graph=True, allow_unused=True
            )
            rows.append(torch.zeros_like(gates) if gradient is None else gradient)
        per_environment.append(torch.stack(rows))
    gradients = torch.stack(per_environment)
    return gradients.var(dim=0, unbiased=False).sum()


class MTCRLRegularizer:
    """The MT-CRL terms, with the trainer's objective interface ``terms(...) -> dict``.

    ``environment_key`` names the batch entry holding each sample's environment label (integers).
    """

    def __init__(
        self,
        decorrelation_weight: float = 1.0,
        invariance_weight: float = 1.0,
        sparsity_weight: float = 0.01,
        environment_key: str = "environment",
    ) -> None:
        for value, name in (
            (decorrelation_weight, "decorrelation_weight"),
            (invariance_weight, "invariance_weight"),
            (sparsity_weight, "sparsity_weight"),
        ):
            if not value >= 0.0:
                raise InvalidParameterError(f"{name}: expected a non-negative number, got {value}")
        self.decorrelation_weight = float(decorrelation_weight)
        self.invariance_weight = float(invariance_weight)
        self.sparsity_weight = float(sparsity_weight)
        self.environment_key = environment_key

    def terms(
        self,
        model: nn.Module,
        batch: Mapping[str, Tensor],
        forward: Forward,
        step: int,
        task_losses_fn: TaskLossesFn | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        if "routing" not in forward.extras or "modules" not in forward.extras:
            raise InvalidParameterError("forward: MT-CRL terms need an MTCRL model's extras")
        terms: dict[str, Tensor] = {}
        if self.decorrelation_weight > 0:
            sizes = [int(s) for s in forward.extras["module_sizes"]]
            terms["mtcrl_decorrelation"] = self.decorrelation_weight * module_decorrelation(
                forward.extras["modules"], sizes
            )
        if self.invariance_weight > 0:
            if task_losses_fn is None:
                raise InvalidParameterError("task_losses_fn: the invariance term needs the losses")
            if self.environment_key not in batch:
                raise InvalidParameterError(
                    f"batch: the invariance term needs environment labels under "
                    f"{self.environment_key!r}, got keys {sorted(batch)}"
                )
            terms["mtcrl_invariance"] = self.invariance_weight * routing_invariance(
                forward, batch, task_losses_fn, batch[self.environment_key]
            )
        if self.sparsity_weight > 0:
            terms["mtcrl_sparsity"] = self.sparsity_weight * forward.extras["routing"].mean()
        return terms

    def regularizer(
        self,
        model: nn.Module,
        batch: Mapping[str, Tensor],
        forward: Forward,
        task_losses_fn: TaskLossesFn | None = None,
    ) -> Tensor:
        """The weighted sum of :meth:`terms`, to pass to a balancer as ``extra_loss``."""
        terms = self.terms(model, batch, forward, 0, task_losses_fn)
        return torch.stack(list(terms.values())).sum() if terms else forward.shared.new_zeros(())
