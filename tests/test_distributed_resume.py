"""A two-process run stopped and resumed ends bit-exact in both distributed balancing modes
(per-rank RNG, CFA, balancer and buffer states in the checkpoint, coremtl/rank_state.py), and a
worker whose torchrun agent dies exits (coremtl/distributed.py ``exit_when_parent_dies``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from gloo import free_port, init_gloo
from torch import nn

from coremtl.balancers import make_balancer
from coremtl.checkpoint import load_checkpoint, save_checkpoint
from coremtl.forward import Forward
from coremtl.trainer import Trainer, TrainerConfig

WORLD = 2
TASKS = ["a", "b", "c"]
CASES = [("pcgrad", "exact"), ("pcgrad", "local"), ("gradnorm", "local"), ("famo", "exact")]
"""PCGrad draws its task order from the global generator; GradNorm's weights are per rank in
local mode; FAMO recomputes the losses after the step with batch norm frozen (running
statistics, per rank) and, in exact mode, averages them."""
STOP_AT = 5


class NoisyMultiTask(nn.Module):
    """Batch norm and dropout before the heads, so per-rank statistics and masks matter."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 8)
        )
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in TASKS})

    def forward(self, x):
        shared = torch.tanh(self.encoder(x))
        return Forward({t: head(shared).squeeze(-1) for t, head in self.heads.items()}, shared)


def _data() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(64, 5, generator=generator)
    return {
        "x": x,
        **{t: x[:, i] + 0.1 * torch.randn(64, generator=generator) for i, t in enumerate(TASKS)},
    }


def _noisy_validation(model) -> dict[str, float]:
    """Like an evaluation loader on rank 0 only: draws from the global generator."""
    return {"score": float(torch.rand(()))}


def _fit(name: str, mode: str, folder: Path, stop: int | None, resume: bool) -> Trainer:
    torch.manual_seed(123 if not resume else 99)
    config = TrainerConfig(
        epochs=2,
        batch_size=8,
        learning_rate=0.05,
        distributed_balancing=mode,
        stop_after_steps=stop,
        progress=False,
    )
    losses = {t: (lambda p, b, t=t: ((p - b[t]) ** 2).mean()) for t in TASKS}
    trainer = Trainer(
        NoisyMultiTask(),
        losses,
        make_balancer(name, TASKS),
        config,
        folder,
        validate=_noisy_validation,
    )
    trainer.fit(_data(), resume=resume)
    return trainer


def _scramble_generators(rank: int) -> None:
    """What a fresh process starts from: anything but the states of the stopped run."""
    random.seed(10_000 + rank)
    np.random.seed(10_000 + rank)  # noqa: NPY002 (the global state the trainer saves)
    torch.manual_seed(10_000 + rank)


def _state_vector(trainer: Trainer) -> torch.Tensor:
    tensors = [p.detach().flatten() for p in trainer.model.parameters()]
    tensors += [b.detach().float().flatten() for b in trainer.model.buffers()]
    return torch.cat(tensors)


def _resume_worker(rank: int, port: int, root: str) -> None:
    import torch.distributed as dist

    init_gloo(rank, WORLD, port)
    try:
        results = {}
        for name, mode in CASES:
            case = Path(root) / f"{name}-{mode}"
            full = _fit(name, mode, case / "full", None, False)
            _fit(name, mode, case / "cut", STOP_AT, False)
            _scramble_generators(rank)
            resumed = _fit(name, mode, case / "cut", None, True)
            results[f"{name}/{mode}"] = {
                "full": _state_vector(full),
                "resumed": _state_vector(resumed),
                "full_balancer": full.balancer.state_dict(),
                "resumed_balancer": resumed.balancer.state_dict(),
                "steps": (full.step, resumed.step),
            }
        name, mode = CASES[0]
        control = Path(root) / "control"
        _fit(name, mode, control, STOP_AT, False)
        dist.barrier()
        if rank == 0:
            state = load_checkpoint(control / "last.pt")
            del state["ranks"]
            save_checkpoint(state, control / "last.pt")
        dist.barrier()
        _scramble_generators(rank)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            without_ranks = _fit(name, mode, control, None, True)
        results["control"] = {
            "vector": _state_vector(without_ranks),
            "warned": any("not an exact resume" in str(w.message) for w in caught),
        }
        torch.save(results, Path(root) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _flat(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state.flatten().double()]
    if isinstance(state, dict):
        return [t for key in sorted(state) for t in _flat(state[key])]
    if isinstance(state, list | tuple):
        return [t for item in state for t in _flat(item)]
    if isinstance(state, int | float) and not isinstance(state, bool):
        return [torch.tensor([float(state)], dtype=torch.float64)]
    return []


@pytest.mark.slow
def test_a_stopped_two_process_run_resumes_bit_exact_in_both_modes(tmp_path):
    mp.spawn(_resume_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name, mode in CASES:
        for rank in range(WORLD):
            result = ranks[rank][f"{name}/{mode}"]
            assert result["steps"] == (8, 8)
            assert torch.equal(result["full"], result["resumed"]), (name, mode, rank)
            for a, b in zip(
                _flat(result["full_balancer"]), _flat(result["resumed_balancer"]), strict=True
            ):
                assert torch.equal(a, b), (name, mode, rank)
    control = ranks[1]["control"]
    assert control["warned"]
    full = ranks[1][f"{CASES[0][0]}/{CASES[0][1]}"]["full"]
    assert not torch.equal(control["vector"], full)


AGENT = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
print(worker.pid, flush=True)
time.sleep(600)
"""

WORKER = """
import sys, time
from coremtl.distributed import exit_when_parent_dies
exit_when_parent_dies(poll_seconds=0.1)
while True:
    with open(sys.argv[1], "a") as log:
        log.write("step\\n")
    time.sleep(0.05)
"""


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


def test_a_worker_exits_when_its_torchrun_agent_is_killed(tmp_path):
    log = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, WORKER, str(log)], stdout=subprocess.PIPE, env=env, text=True
    )
    worker = int(agent.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().count("step") >= 3):
            assert time.monotonic() < deadline, "the worker never started writing"
            time.sleep(0.1)
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
        written = log.read_text().count("step")
        time.sleep(0.5)
        assert log.read_text().count("step") == written
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
