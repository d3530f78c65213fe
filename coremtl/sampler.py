"""The deterministic, sharded order in which a run visits its training data.

Epoch ``e`` of a run seeded ``s`` visits the ``n`` samples in the order ``randperm(n)`` drawn
from a generator seeded by ``(s, e)``; of ``w`` processes, rank ``r`` takes positions
``r, r + w, ...`` of it (the first ``floor(n / w) w``, so the shares are disjoint and equally
long), cut into batches. The order depends on the seed and the epoch only, so a run resumed at
any step sees the batches an uninterrupted run sees.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from coremtl import distributed
from scm.seeds import derive_seed
from scm.validation import InvalidParameterError


def epoch_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    """The visiting order of epoch ``epoch``: ``randperm`` from a generator seeded by both."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "epoch order", epoch))
    return torch.randperm(num_samples, generator=generator)


def num_samples(data: Any) -> int:
    """The length of ``data``: a mapping of tensors with one common first dimension, or a dataset."""
    if isinstance(data, Mapping):
        sizes = {int(value.shape[0]) for value in data.values()}
        if len(sizes) != 1:
            raise InvalidParameterError(
                f"data: expected tensors with one common first dimension, got sizes {sorted(sizes)}"
            )
        return sizes.pop()
    return len(data)


def epoch_batches(
    data: Any,
    seed: int,
    epoch: int,
    batch_size: int,
    drop_last: bool = True,
    max_batches: int = 0,
) -> list[Tensor]:
    """The index batches this process visits in ``epoch``: its share of :func:`epoch_order`, cut
    into ``batch_size`` chunks, the last incomplete one dropped when ``drop_last``, at most
    ``max_batches`` of them (0: all)."""
    order = epoch_order(num_samples(data), seed, epoch)
    world = distributed.world_size()
    usable = (len(order) // world) * world
    share = order[:usable][distributed.rank() :: world]
    batches = list(share.split(batch_size))
    if drop_last and len(batches) > 0 and len(batches[-1]) < batch_size:
        batches = batches[:-1]
    if max_batches:
        batches = batches[:max_batches]
    return batches


def iterate_batches(
    data: Any,
    batches: Sequence[Tensor],
    seed: int,
    epoch: int,
    first_batch: int,
    num_workers: int = 0,
) -> Iterator[Mapping[str, Tensor]]:
    """The batches of ``data`` in the given index order (``first_batch``: the position of the
    first of them in the epoch). A dataset goes through a DataLoader whose worker seeds come from
    its own generator (seeded by run, epoch and position), so loading never draws from the global
    torch generator that the model's dropout uses; a dataset with ``set_epoch(epoch)`` (seeded
    augmentation) is told the epoch first."""
    if isinstance(data, Mapping):
        for indices in batches:
            yield {key: value[indices] for key, value in data.items()}
        return
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    loader_seed = derive_seed(seed, "loader", epoch, first_batch)
    loader = torch.utils.data.DataLoader(
        data,
        batch_sampler=[b.tolist() for b in batches],
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    yield from loader
