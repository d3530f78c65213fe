r"""MT-CRL: Multi-Task Causal Representation Learning (Hu et al., "Improving Multi-Task
Generalization via Regularizing Spurious Correlation", NeurIPS 2022).

Model. A shared trunk feeds ``M`` separate neural modules ``h_m = module_m(trunk(x))`` (no
parameters shared between modules). Each task ``t`` routes the modules through a task-to-module
graph with edge probabilities ``p_t = sigmoid(G_t) in (0, 1)^M`` and its head reads the gated
concatenation ``z_t = [A_{t,1} h_1 ; ... ; A_{t,M} h_M]``. ``Forward.shared`` is
``[h_1 ; ... ; h_M]`` (the last shared representation), ``extras["routing/<task>"]`` the row
``p_t`` (each task's predictions depend on its own row only), ``extras["routing"]`` the ``(T, M)``
matrix ``p`` and ``extras["modules"]`` the module outputs pooled to vectors ``(B, sum_m d_m)``.

Gates. With soft gates ``A = p`` and a linear head ``yhat_t = sum_m W_tm A_tm h_m + b_t``, the
map ``(A_tm, W_tm) -> (c A_tm, W_tm / c)`` leaves every prediction unchanged and multiplies the
sparsity penalty ``mean(A)`` by ``c``: the penalty can be driven to zero at constant predictions
(``tests/test_mtcrl.py`` does), so it does not make the graph sparse, it only rescales the heads.
The library's default (``gates="binary"``) samples the graph instead: in training each sample
draws ``A_tm ~ Bernoulli(p_tm)`` (gradient by the straight-through estimator, ``dA/dp = 1``), in
evaluation ``A = p``, the expected gate (for a linear head the expected prediction). The edges
then exist or not, ``mean(p)`` is the expected fraction of edges the graph keeps (an L0 penalty,
Louizos, Welling & Kingma, ICLR 2018), and the rescaling is no longer free: for a linear head the
expected squared loss is ``(E yhat - y)^2 + sum_m p_m (1 - p_m) (W_m h_m)^2``, and along
``(c p, W / c)`` the variance term grows like ``1 / c``. This reads the paper's "task-to-module
routing graph" as a graph whose edges are present or absent and its sparsity as their number; the
paper's own parameterisation of the graph was not available to us (see below).
``routing="none"`` fixes every gate at 1 (the ablation without routing).

Losses, as implemented here (``MTCRLRegularizer``):

- module disentanglement: with ``u_m`` the batch-standardised pooled outputs of module ``m``
  (zero mean, unit variance per coordinate), ``C_{mn} = u_m^T u_n / B`` their cross-correlation,

      L_dis = sum_{m < n} ||C_{mn}||_F^2 / (d_m d_n),

  zero exactly when the modules are linearly uncorrelated over the batch (and for ``M = 1``);
- MTL-specific invariance across environments: with ``L_t^e`` the loss of task ``t`` on the
  samples of environment ``e`` and ``g_t^e = dL_t^e / dA_t`` the gradient of that loss with
  respect to the task's routing weights,

      L_inv = sum_t sum_m Var_e(g_{t,m}^e)      (population variance over the E environments),

  zero exactly when every environment asks the same change of the task-to-module graph, i.e. when
  the routing that is optimal for one environment is optimal for all (an invariance penalty on the
  graph gradients, in the spirit of IRM / Fishr);
- graph sparsity: ``L_sparse = mean_{t,m} p_{t,m}``, so that each task keeps the modules it needs.

The total regulariser is ``w_dis L_dis + w_inv L_inv + w_sparse L_sparse``. The paper's text was
not available to us in full while writing this module: the architecture (disentangled modules and a
learned task-to-module graph) and the two ingredients (module disentanglement, an invariance
regulariser on the graph across environments) follow its abstract and method overview, and the
exact formulas above are our instantiation of them.

Environments. ``L_inv`` needs an environment label per sample (``environment_key``); the data
sets of the paper (Multi-MNIST, MovieLens, Taskonomy, CityScapes, NYUv2) have none either, so the
published method must form them somehow. We did not find how. Searched (stored public copies): the
paper's pages (arXiv 2205.09797 on ar5iv and in the SPIQA corpus, OpenReview HLzjd09oRx, the
NeurIPS 2022 virtual page: every stored copy shows the opening sections only, not the method's
details nor the appendix), the code corpus for MT-CRL / "MTL-specific invariant regularization" /
task-to-module routing, GitHub issues, the repositories of the first author (``acbull``) and
``google-research`` (no MT-CRL code), and the documentation corpus. No environment-forming
procedure is implemented, and a model trained without environment labels is labelled
"MT-CRL (no invariance)" (:func:`coremtl.labels.method_label`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from coremtl.architectures.shared_bottom import as_heads
from coremtl.forward import Forward
from coremtl.objective import TaskLossesFn
from scm.validation import InvalidParameterError


def pooled(features: Tensor) -> Tensor:
    """Vectors unchanged; maps ``(B, C, H, W)`` averaged over positions to ``(B, C)``."""
    return features.flatten(2).mean(dim=2) if features.ndim > 2 else features


ROUTINGS = ("learned", "none")
GATES = ("binary", "soft")


def _weight(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidParameterError(f"{name}: expected a non-negative number, got {value!r}")
    if value == float("inf"):
        raise InvalidParameterError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class MTCRLOptions:
    """MT-CRL's settings and the ablations of its ingredients (module docstring).

    ``modules``: ``M >= 1`` disentangled modules (the backbone's channels split between them,
    or ``width`` channels each when given);
    ``decorrelation``, ``sparsity``, ``invariance``: the weights of ``L_dis``, ``L_sparse`` and
    ``L_inv`` (the last used only when environment labels are given); ``routing``: ``"learned"``
    (the task-to-module graph) or ``"none"`` (every gate fixed at 1, no sparsity term); ``gates``:
    ``"binary"`` (sampled edges, straight-through) or ``"soft"`` (``A = sigmoid(G)``, whose
    sparsity penalty has a free direction). ``MTCRLOptions(decorrelation=0)``,
    ``MTCRLOptions(sparsity=0)``, ``MTCRLOptions(routing="none")`` and ``MTCRLOptions(modules=1)``
    are the four ablations.
    """

    modules: int = 4
    decorrelation: float = 1.0
    sparsity: float = 0.01
    invariance: float = 1.0
    routing: str = "learned"
    gates: str = "binary"
    width: int | None = None

    def __post_init__(self) -> None:
        for name in ("modules", "width"):
            value = getattr(self, name)
            if (value is not None or name == "modules") and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidParameterError(
                    f"mtcrl.{name}: expected a positive integer, got {value!r}"
                )
        for name in ("decorrelation", "sparsity", "invariance"):
            object.__setattr__(self, name, _weight(getattr(self, name), f"mtcrl.{name}"))
        if self.routing not in ROUTINGS:
            raise InvalidParameterError(
                f"mtcrl.routing: expected one of {ROUTINGS}, got {self.routing!r}"
            )
        if self.gates not in GATES:
            raise InvalidParameterError(f"mtcrl.gates: expected one of {GATES}, got {self.gates!r}")

    def ablations(self) -> list[str]:
        """The ingredients switched off, in words (empty for the full method)."""
        removed = []
        if self.decorrelation == 0 and self.modules > 1:
            removed.append("no decorrelation")
        if self.routing == "none":
            removed.append("no routing")
        elif self.sparsity == 0:
            removed.append("no sparsity")
        if self.modules == 1:
            removed.append("one module")
        if self.gates == "soft" and self.routing == "learned":
            removed.append("soft gates")
        return removed


class MTCRL(nn.Module):
    """Trunk, ``M`` disentangled modules and a task-to-module routing graph.

    ``routing="learned"``: edge logits ``G`` (T x M, a parameter); ``routing="none"``: every gate
    1. ``gates="soft"``: ``A = sigmoid(G)``; ``gates="binary"``: in training each sample draws
    ``A_tm ~ Bernoulli(sigmoid(G_tm))`` (straight-through gradient), in evaluation
    ``A = sigmoid(G)``, the expected gate (module docstring).
    """

    def __init__(
        self,
        trunk: nn.Module,
        modules: Sequence[nn.Module],
        heads: Mapping[str, nn.Module],
        routing: str = "learned",
        gates: str = "soft",
    ) -> None:
        super().__init__()
        if len(modules) < 1:
            raise InvalidParameterError("modules: expected at least one module, got 0")
        if routing not in ROUTINGS:
            raise InvalidParameterError(f"routing: expected one of {ROUTINGS}, got {routing!r}")
        if gates not in GATES:
            raise InvalidParameterError(f"gates: expected one of {GATES}, got {gates!r}")
        self.trunk = trunk
        self.disentangled = nn.ModuleList(modules)
        self.heads = as_heads(heads)
        self.routing = routing
        self.gates = gates
        shape = (len(self.heads), len(modules))
        if routing == "learned":
            self.routing_logits = nn.Parameter(torch.zeros(shape))
        else:
            self.register_parameter("routing_logits", None)

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.trunk.parameters()
        yield from self.disentangled.parameters()

    def edge_probabilities(self, reference: Tensor) -> Tensor:
        """``sigmoid(G)`` (T x M), or ones without routing."""
        if self.routing_logits is None:
            return reference.new_ones(len(self.heads), len(self.disentangled))
        return torch.sigmoid(self.routing_logits)

    def _sampled(self, probabilities: Tensor, batch: int) -> Tensor:
        """``(B, M)`` gates of one task: Bernoulli draws whose gradient is that of their mean."""
        if self.gates == "soft" or not self.training or self.routing_logits is None:
            return probabilities.expand(batch, -1)
        draws = torch.bernoulli(probabilities.detach().expand(batch, -1))
        return draws + probabilities - probabilities.detach()

    def forward(self, x: Tensor) -> Forward:
        features = self.trunk(x)
        outputs = [module(features) for module in self.disentangled]
        shared = torch.cat(outputs, dim=1)
        pieces = shared.split([o.shape[1] for o in outputs], dim=1)
        probabilities = self.edge_probabilities(shared)
        predictions = {}
        extras: dict[str, Tensor] = {}
        for index, (task, head) in enumerate(self.heads.items()):
            edges = probabilities[index]
            extras[f"routing/{task}"] = edges
            gates = self._sampled(edges, shared.shape[0])
            gated = [
                gates[:, m].view(-1, *[1] * (piece.ndim - 1)) * piece
                for m, piece in enumerate(pieces)
            ]
            predictions[task] = head(torch.cat(gated, dim=1))
        extras["routing"] = probabilities
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
    Without a learned graph (``routing="none"``) the invariance and sparsity terms are left out:
    they would be constants.
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
        learned = forward.extras["routing"].requires_grad
        if self.invariance_weight > 0 and learned:
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
        if self.sparsity_weight > 0 and learned:
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
