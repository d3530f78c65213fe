"""The random numbers of a batched run (:mod:`coremtl.batched.training`), drawn step by step.

For every model and step: the minibatch rows, a derangement of the batch (CFA's swap partner)
and PCGrad's visiting orders from one generator seeded with ``(seed, step)``, nothing stored;
RLW's normals are those the library's RLW balancer draws with seed :meth:`Draws.balancer_seed`
(its :class:`~coremtl.balancers.base.SeededRandomStream`, call ``k`` at step ``k``), one
generator per model and step, so model ``m`` of a batched RLW run is that balancer's run and the
per-model reference loop (:mod:`coremtl.batched.reference`) sees the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from coremtl.balancers.base import SeededRandomStream
from scm.seeds import derive_seed


def random_cycles(shape: tuple[int, ...], n: int, generator: torch.Generator) -> Tensor:
    """Uniformly random ``n``-cycles ``pi`` (derangements: ``pi(i) != i``) of shape ``(*shape, n)``:
    ``pi(sigma(i)) = sigma(i + 1 mod n)`` for a uniformly random permutation ``sigma``."""
    sigma = torch.rand((*shape, n), generator=generator).argsort(dim=-1)
    cycle = torch.empty_like(sigma)
    cycle.scatter_(-1, sigma, sigma.roll(-1, dims=-1))
    return cycle


@dataclass(frozen=True)
class Draws:
    """The random numbers of a run, drawn step by step from a generator seeded with
    ``(seed, step)`` (nothing is stored): for every model, the minibatch rows ``(M, b)`` (None:
    full batch), a derangement of the batch ``(M, b)`` and PCGrad's visiting orders ``(M, K, K)``;
    RLW's normals come from :meth:`balancer_normals`."""

    seed: int
    num_models: int
    n: int
    batch: int
    num_tasks: int

    def at(self, step: int) -> tuple[Tensor | None, Tensor, Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        shape = (self.num_models,)
        rows = None
        if self.batch < self.n:
            rows = torch.rand((*shape, self.n), generator=generator).argsort(-1)[..., : self.batch]
        permutation = random_cycles(shape, self.batch, generator)
        orders = torch.rand((*shape, self.num_tasks, self.num_tasks), generator=generator)
        return rows, permutation, orders.argsort(-1)

    def balancer_seed(self, model: int) -> int:
        """The seed of model ``model``'s balancer stream: ``derive_seed(seed, "balancer", m)``."""
        return _balancer_seed(self.seed, model)

    def balancer_normals(self, step: int, models: Sequence[int], dtype: torch.dtype) -> Tensor:
        """RLW's normals ``(len(models), K)`` at ``step``: what ``torch.randn(K, dtype=dtype)``
        draws inside call ``step`` of :class:`~coremtl.balancers.base.SeededRandomStream` seeded
        with :meth:`balancer_seed` (on the CPU generator)."""
        rows = []
        generator = torch.Generator()
        for model in models:
            generator.manual_seed(SeededRandomStream(self.balancer_seed(model)).seed_of(step))
            rows.append(torch.randn(self.num_tasks, generator=generator, dtype=dtype))
        return torch.stack(rows) if rows else torch.zeros(0, self.num_tasks, dtype=dtype)


@cache
def _balancer_seed(seed: int, model: int) -> int:
    return derive_seed(seed, "balancer", model)
