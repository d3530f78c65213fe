"""A per-epoch seeded batch order, sharded across distributed ranks.

Epoch ``e`` visits ``randperm(n)`` drawn from a generator seeded by ``(seed, e)``; rank ``r`` of
``w`` takes positions ``r, r + w, ...`` of it; batches are consecutive chunks of ``batch_size``
(the last incomplete one dropped, since batch norm and the debiased CKA need full batches). A run
resumed at the start of epoch ``e`` therefore sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int = 0,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.max_batches = max_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full = (self.num_samples // self.world_size) // self.batch_size
        return min(full, self.max_batches) if self.max_batches else full

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        usable = (self.num_samples // self.world_size) * self.world_size
        shard = order[:usable][self.rank :: self.world_size].tolist()
        for i in range(len(self)):
            yield shard[i * self.batch_size : (i + 1) * self.batch_size]
