"""Training ``M`` stacked models at once, and the per-model loop it must reproduce.

Per model ``m`` and step, with task losses ``L_t`` (squared error) on the model's batch:

    loss_m = balanced(L_1..L_K) + l_cka max(0, CKA_u(Z_s, Z_r)) + l_cfa L_cfa + l_rec L_rec

(:mod:`coremtl.batched.terms`; the weights may differ per model). A model whose weights say
``conditional`` penalises ``max(0, CKA_u(U^T Z_s, U^T Z_r))`` instead, the CKA after partialling out
its batch's labels (docs/THEORY.md S13); with full batches ``U`` is computed once. A Gramian-weighted balancer
(:data:`~coremtl.batched.balancing.GRAMIAN_WEIGHTINGS`) acts on the shared parameters only; heads
get their task gradients, and every parameter the gradient of the CORE-MTL terms. A loss weighting
(Equal Weighting, RLW) back-propagates ``sum_t w_t L_t`` into every parameter. The optimiser is
plain gradient descent (``torch.optim.SGD``) or AdamW, applied to the stacked tensors: both are
elementwise, so each model takes exactly its own step.

Randomness (minibatch rows, CFA derangements, PCGrad's visiting orders, RLW's normals) comes
from :class:`coremtl.batched.draws.Draws`, so the batched run and
:func:`coremtl.batched.reference.loop_reference` (one library model at a time) see the same
draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from coremtl.batched.balancing import (
    GRAMIAN_WEIGHTINGS,
    LOSS_WEIGHTINGS,
    PROJECTION_EPS,
    check_balancer,
    rlw_weights,
    task_weights,
)
from coremtl.batched.draws import Draws
from coremtl.batched.term_weights import TermWeights
from coremtl.batched.terms import (
    conditional_cka,
    counterfactual_loss,
    gather_rows,
    label_complements,
    positive_cka,
    reconstruction_loss,
    squared_task_losses,
)
from scm.validation import InvalidParameterError

OPTIMIZERS = ("gd", "adamw")


@dataclass(frozen=True)
class Settings:
    """Optimiser and schedule shared by every model of one batched run; ``balancer`` is one name
    for every model or a tuple with one name per model. ``mgda_*`` and ``cagrad_c`` are those
    balancers' registry options ``epsilon``, ``max_iters`` and ``c`` (the registry's default ``c``
    is 0.4)."""

    steps: int
    lr: float
    optimizer: str = "gd"
    weight_decay: float = 0.0
    balancer: str | tuple[str, ...] = "ew"
    batch_size: int | None = None
    mgda_epsilon: float = 1e-3
    mgda_max_iters: int = 100
    cagrad_c: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 0:
            raise InvalidParameterError(f"steps: expected an integer >= 0, got {self.steps!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidParameterError(
                f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if not self.cagrad_c > 0:
            raise InvalidParameterError(f"cagrad_c: expected a number > 0, got {self.cagrad_c!r}")
        for name in self.names:
            check_balancer(name)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.balancer,) if isinstance(self.balancer, str) else self.balancer

    def balancer_of(self, index: int) -> str:
        return self.balancer if isinstance(self.balancer, str) else self.balancer[index]

    def options_of(self, name: str) -> dict[str, float | int]:
        """The registry options (:func:`coremtl.balancers.balancer_options`) of balancer ``name``
        in this run."""
        if name == "mgda":
            return {"epsilon": self.mgda_epsilon, "max_iters": self.mgda_max_iters}
        if name == "cagrad":
            return {"c": self.cagrad_c, "norm_eps": PROJECTION_EPS}
        return {}

    def models_of(self, name: str, num_models: int) -> Tensor:
        """Which of ``num_models`` models use balancer ``name``, ``(M,)`` booleans."""
        if isinstance(self.balancer, str):
            return torch.full((num_models,), self.balancer == name)
        return torch.tensor([item == name for item in self.balancer])

    @property
    def only_loss_weighting(self) -> bool:
        return all(name in LOSS_WEIGHTINGS for name in self.names)


def draws(settings: Settings, num_models: int, n: int, num_tasks: int, seed: int) -> Draws:
    """The draws of a run of ``num_models`` models on ``n`` rows each."""
    batch = settings.batch_size or n
    if batch < 4 or batch > n:
        raise InvalidParameterError(f"batch_size: expected 4 <= batch_size <= {n}, got {batch}")
    return Draws(int(seed), num_models, n, batch, num_tasks)


def make_optimizer(settings: Settings, params: Sequence[Tensor]) -> torch.optim.Optimizer:
    if settings.optimizer == "gd":
        return torch.optim.SGD(params, lr=settings.lr)
    return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)


def _flat(tensors: Sequence[Tensor], num_models: int) -> Tensor:
    return torch.cat([t.reshape(num_models, -1) for t in tensors], dim=1)


def _weight(value: Tensor | float, like: Tensor) -> Tensor | float:
    return value.to(like) if isinstance(value, Tensor) else value


def conditional_models(weights: TermWeights, num_models: int) -> Tensor | None:
    """The indices of the models whose CKA term is label-conditional (None: none is)."""
    if not (weights.active("cka") and weights.active("conditional")):
        return None
    flags = torch.as_tensor(weights.conditional).reshape(-1).expand(num_models)
    return torch.nonzero(flags != 0).flatten()


def independence_term(z_s: Tensor, z_r: Tensor, conditional, complements) -> Tensor:
    """``max(0, CKA_u(Z_s, Z_r))`` per model, the label-conditional estimate for the models
    ``conditional`` (with their label complements ``complements``)."""
    cka = positive_cka(z_s, z_r)
    if conditional is None:
        return cka
    index = conditional.to(z_s.device)
    values = conditional_cka(z_s[index], z_r[index], complements).clamp(min=0.0)
    return cka.index_put((index,), values)


def extra_terms(
    model, x: Tensor, y: Tensor, z_s, z_r, weights: TermWeights, permutation,
    conditional: Tensor | None = None, complements: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """``l_cka max(0, CKA) + l_cfa L_cfa + l_rec L_rec`` per model, ``(M,)``; the models
    ``conditional`` (:func:`conditional_models`) take the CKA given their labels, with
    ``complements`` their :func:`~coremtl.batched.terms.label_complements`."""
    extra = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    if weights.active("cka"):
        cka = independence_term(z_s, z_r, conditional, complements)
        extra = extra + _weight(weights.cka, extra) * cka
    if weights.active("cfa"):
        cfa = counterfactual_loss(model, z_s, z_r, permutation, y)
        extra = extra + _weight(weights.cfa, extra) * cfa
    if weights.active("reconstruction"):
        rec = reconstruction_loss(model, z_s, z_r, x)
        extra = extra + _weight(weights.reconstruction, extra) * rec
    return extra


def loss_scales(settings: Settings, random: Draws | None, step: int, losses: Tensor):
    """The loss weights ``(M, K)`` of the loss weightings at ``step`` (1 for Equal Weighting and
    for the Gramian weightings, ``softmax(xi)`` for RLW), or None when no model uses RLW."""
    if "rlw" not in settings.names:
        return None
    chosen = settings.models_of("rlw", losses.shape[0])
    if random is None:
        raise InvalidParameterError("random: RLW draws its weights from the run's Draws")
    models = torch.nonzero(chosen).flatten().tolist()
    normals = random.balancer_normals(step, models, losses.dtype)
    scales = torch.ones(losses.shape, dtype=losses.dtype, device=losses.device)
    scales[chosen.to(losses.device)] = rlw_weights(normals).to(losses.device)
    return scales


def balanced_backward(
    model, settings: Settings, losses: Tensor, extra: Tensor, orders, scales=None
) -> None:
    """Fill ``.grad`` from task losses ``(M, K)`` (balanced on the shared parameters, or weighted
    by the loss weights ``scales`` ``(M, K)`` of :func:`loss_scales`) and extra terms ``(M,)``; a
    parameter that no term reaches keeps ``grad = None``, as in the per-model loop, so AdamW skips
    it."""
    everything = list(model.params.values())
    weighted = losses.sum() if scales is None else (scales * losses).sum()
    if settings.only_loss_weighting:
        total = weighted + extra.sum()
        grads = list(torch.autograd.grad(total, everything, allow_unused=True))
    else:
        shared = model.group(model.shared_names)
        heads = model.group(model.head_names)
        num_models = losses.shape[0]
        rows = [
            _flat(torch.autograd.grad(losses[:, t].sum(), shared, retain_graph=True), num_models)
            for t in range(losses.shape[1])
        ]
        jacobian = torch.stack(rows, dim=1)
        gramian = torch.bmm(jacobian, jacobian.transpose(1, 2))
        balance = torch.ones(gramian.shape[:2], dtype=gramian.dtype, device=gramian.device)
        if scales is not None:
            balance = scales.clone()
        for name in GRAMIAN_WEIGHTINGS:
            if name not in settings.names:
                continue
            chosen = settings.models_of(name, num_models)
            picked = None if orders is None else orders[chosen].to(gramian.device)
            chosen = chosen.to(gramian.device)
            options = settings.options_of(name)
            balance[chosen] = task_weights(name, gramian[chosen], picked, **options)
        update = torch.einsum("mk,mkp->mp", balance, jacobian)
        pieces = update.split([p[0].numel() for p in shared], dim=1)
        by_name = {
            name: piece.reshape(p.shape)
            for name, piece, p in zip(model.shared_names, pieces, shared, strict=True)
        }
        head_grads = torch.autograd.grad(weighted, heads, retain_graph=True)
        by_name.update(zip(model.head_names, head_grads, strict=True))
        extra_grads = [None] * len(everything)
        if extra.requires_grad:
            extra_grads = torch.autograd.grad(extra.sum(), everything, allow_unused=True)
        grads = []
        for name, g in zip(model.params, extra_grads, strict=True):
            base = by_name.get(name)
            grads.append(g if base is None else base if g is None else base + g)
    for tensor, grad in zip(everything, grads, strict=True):
        tensor.grad = None if grad is None else grad.detach()


def train_objective(
    model,
    settings: Settings,
    objective: Callable[[int], tuple[Tensor, Tensor]],
    random: Draws | None = None,
    snapshots: Sequence[int] = (),
) -> dict[int, dict[str, Tensor]]:
    """Train ``model`` in place on ``objective(step) -> (task losses (M, K), extra terms (M,))``
    (e.g. an exact population risk); ``random`` gives PCGrad's visiting orders and RLW's weights
    per step.

    Returns copies of the parameters after each step count in ``snapshots`` (0 = initial).
    """
    optimizer = make_optimizer(settings, list(model.params.values()))
    saved: dict[int, dict[str, Tensor]] = {}

    def save(step: int) -> None:
        if step in snapshots:
            saved[step] = {name: p.detach().clone() for name, p in model.params.items()}

    save(0)
    for step in range(settings.steps):
        optimizer.zero_grad(set_to_none=True)
        losses, extra = objective(step)
        orders = None if random is None else random.at(step)[2]
        scales = loss_scales(settings, random, step, losses)
        balanced_backward(model, settings, losses, extra, orders, scales)
        optimizer.step()
        save(step + 1)
    return saved


def train(
    model,
    x: Tensor,
    y: Tensor,
    settings: Settings,
    weights: TermWeights,
    random: Draws,
    snapshots: Sequence[int] = (),
) -> dict[int, dict[str, Tensor]]:
    """Train the stacked ``model`` in place on ``x`` (M, n, d), ``y`` (M, n, K) with the squared
    task losses and the CORE-MTL terms; snapshots as in :func:`train_objective`."""

    conditional = conditional_models(weights, x.shape[0])
    full_batch = None
    if conditional is not None and random.batch == random.n:
        full_batch = label_complements(y[conditional.to(y.device)])

    def objective(step: int) -> tuple[Tensor, Tensor]:
        rows, permutation, _ = random.at(step)
        permutation = permutation.to(x.device)
        batch_x, batch_y = x, y
        if rows is not None:
            rows = rows.to(x.device)
            batch_x, batch_y = gather_rows(x, rows), gather_rows(y, rows)
        complements = full_batch
        if conditional is not None and complements is None:
            complements = label_complements(batch_y[conditional.to(y.device)])
        z_s, z_r = model.encode(batch_x)
        losses = squared_task_losses(model.predict(z_s), batch_y)
        extra = extra_terms(
            model, batch_x, batch_y, z_s, z_r, weights, permutation, conditional, complements
        )
        return losses, extra

    return train_objective(model, settings, objective, random, snapshots)
