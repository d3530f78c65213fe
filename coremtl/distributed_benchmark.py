"""``coremtl bench ddp``: exact against local distributed balancing, and both against plain data
parallelism with Equal Weighting.

Two gloo processes on this machine (127.0.0.1) train, through the trainer's own step
(:class:`coremtl.step.TrainingStep`: forward, losses, balancer, gradient all-reduce, AdamW), a
float32 MLP trunk ``64 -> width -> width`` with one linear head per task on a fixed batch per
process, for K = 2, 10 and 40 tasks. For each K, and balancers of the three kinds exact mode
handles (DWA: the losses; GradNorm: the losses and the gradients of one layer; UPGrad: the whole
Jacobian of the shared parameters), both modes run in turn within each repetition (so machine load
affects all alike); the best mean over ``steps`` steps of rank 0 is kept, and the payload bytes
rank 0 handed to collectives per step (:func:`coremtl.distributed.communicated_bytes`).
``ew / local`` is plain data parallelism, the reference of the ratios.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

TASK_COUNTS = (2, 10, 40)
SETTINGS = (
    ("ew", "local"),
    ("ew", "exact"),
    ("dwa", "local"),
    ("dwa", "exact"),
    ("gradnorm", "local"),
    ("gradnorm", "exact"),
    ("upgrad", "local"),
    ("upgrad", "exact"),
)
WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _build(num_tasks: int, balancer: str, mode: str, width: int, batch: int, rank: int):
    import torch
    from torch import nn

    from coremtl.architectures import SharedBottom, mlp
    from coremtl.balancers import make_balancer
    from coremtl.step import TrainingStep
    from coremtl.trainer_config import TrainerConfig

    tasks = [f"t{i}" for i in range(num_tasks)]
    torch.manual_seed(0)
    model = SharedBottom(mlp([64, width, width]), {t: nn.Linear(width, 1) for t in tasks})
    config = TrainerConfig(
        batch_size=batch, learning_rate=1e-3, distributed_balancing=mode, progress=False
    )
    losses = {t: (lambda p, b, t=t: ((p.squeeze(-1) - b[t]) ** 2).mean()) for t in tasks}
    step = TrainingStep(model, losses, make_balancer(balancer, tasks), config)
    step._build_optimizer(10_000)
    generator = torch.Generator().manual_seed(rank)
    x = torch.randn(batch, 64, generator=generator)
    data = {"x": x, **{t: torch.randn(batch, generator=generator) for t in tasks}}
    return step, data


def _worker(rank: int, port: int, output: str, quick: bool, repeats: int) -> None:
    import torch
    import torch.distributed as dist

    from coremtl import distributed

    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        width, batch, steps = (32, 16, 2) if quick else (256, 64, 5)
        counts = TASK_COUNTS[:2] if quick else TASK_COUNTS
        runs = {(k, b, m): _build(k, b, m, width, batch, rank) for k in counts for b, m in SETTINGS}
        seconds = {key: float("inf") for key in runs}
        traffic = {}
        for key, (step, data) in runs.items():
            step.train_step(data)
            before = distributed.communicated_bytes()
            step.train_step(data)
            traffic[key] = distributed.communicated_bytes() - before
        for _ in range(repeats):
            for key, (step, data) in runs.items():
                dist.barrier()
                start = time.perf_counter()
                for _ in range(steps):
                    step.train_step(data)
                seconds[key] = min(seconds[key], (time.perf_counter() - start) / steps)
        if rank == 0:
            rows = [
                {
                    "tasks": k,
                    "balancer": b,
                    "mode": m,
                    "seconds": seconds[(k, b, m)],
                    "ratio_to_ew_data_parallel": seconds[(k, b, m)] / seconds[(k, "ew", "local")],
                    "bytes_per_step": traffic[(k, b, m)],
                }
                for k, b, m in runs
            ]
            result = {"width": width, "batch_per_process": batch, "steps": steps, "rows": rows}
            torch.save(result, Path(output) / "result.pt")
    finally:
        dist.destroy_process_group()


def main(args: argparse.Namespace) -> dict:
    import torch
    import torch.multiprocessing as mp

    if args.device != "cpu":
        raise ValueError("--device: bench ddp runs two gloo processes on the CPU; use cpu")
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(
            _worker,
            args=(_free_port(), folder, args.quick, args.repeats),
            nprocs=WORLD_SIZE,
            join=True,
        )
        result = torch.load(Path(folder) / "result.pt", weights_only=True)
    print(
        f"{WORLD_SIZE} gloo processes, MLP 64-{result['width']}-{result['width']}, "
        f"batch {result['batch_per_process']} per process, best of {args.repeats} x "
        f"{result['steps']} steps"
    )
    print(f"{'K':>3} {'balancer':<10} {'mode':<6} {'ms/step':>9} {'x EW-DP':>8} {'bytes/step':>11}")
    for row in result["rows"]:
        print(
            f"{row['tasks']:>3} {row['balancer']:<10} {row['mode']:<6} "
            f"{1e3 * row['seconds']:>9.2f} {row['ratio_to_ew_data_parallel']:>8.2f} "
            f"{row['bytes_per_step']:>11,}"
        )
    return {"world_size": WORLD_SIZE, **result}
