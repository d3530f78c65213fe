"""``coremtl bench batched``: many small models trained batched against one at a time.

The same ``M`` dual-stream MLPs (:class:`~coremtl.batched.stacked.StackedMLP`, float32), the same
data and the same random draws, trained for a few steps by :func:`~coremtl.batched.training.train`
(one computation) and by :func:`~coremtl.batched.reference.loop_reference` (each model alone through
the library's balancer, CKA, counterfactual and reconstruction code), measured side by side in one
run; the ratio loop / batched is printed per method (every batched balancer, and CORE-MTL).
"""

from __future__ import annotations

import argparse
import time

import torch

from coremtl.batched.balancing import BATCHED_BALANCERS
from coremtl.batched.reference import loop_reference
from coremtl.batched.stacked import StackedMLP
from coremtl.batched.term_weights import TermWeights
from coremtl.batched.training import Settings, draws, train
from coremtl.objective import CoreMTLObjective

CORE_MTL = CoreMTLObjective(
    cka_weight=1.0,
    cka_warmup_steps=0,
    cfa_weight=1.0,
    cfa_probability=1.0,
    reconstruction_weight=1.0,
)
"""CORE-MTL as the batched step computes it: every term at every step, at weight 1."""
METHODS = {
    **{name: (name, TermWeights()) for name in BATCHED_BALANCERS},
    "core-mtl": ("ew", TermWeights.of(CORE_MTL)),
}


def _problem(models: int, rows: int, dim: int, tasks: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(models, rows, dim, generator=generator)
    y = torch.tanh(x[..., :tasks]) + 0.1 * torch.randn(models, rows, tasks, generator=generator)
    return x, y


def main(args: argparse.Namespace) -> dict:
    models = 32 if args.quick else 256
    steps = 2 if args.quick else 5
    rows, dim, hidden, k, tasks = 128, 4, (16, 16), 2, 2
    x, y = _problem(models, rows, dim, tasks, 0)
    table = {}
    warm = Settings(steps=1, lr=1e-3, balancer="pcgrad")
    warm_draws = draws(warm, 4, rows, tasks, 1)
    warm_model = StackedMLP(4, dim, hidden, k, tasks, (16,), torch.Generator().manual_seed(2))
    train(warm_model, x[:4], y[:4], warm, METHODS["core-mtl"][1], warm_draws)
    loop_reference([warm_model.module(0)], x[:1], y[:1], warm, METHODS["core-mtl"][1], warm_draws)
    print(
        f"{models} dual-stream MLPs {dim}-{hidden}-({k}+{k}), {tasks} tasks, {rows} rows, "
        f"{steps} full-batch steps each, best of {args.repeats}"
    )
    print(f"{'method':<10} {'loop s':>9} {'batched s':>10} {'loop/batched':>13}")
    for method, (balancer, weights) in METHODS.items():
        settings = Settings(steps=steps, lr=1e-3, optimizer="adamw", balancer=balancer)
        random = draws(settings, models, rows, tasks, 1)
        timings = {"loop": [], "batched": []}
        for _ in range(args.repeats):
            stacked = StackedMLP(
                models, dim, hidden, k, tasks, (16,), torch.Generator().manual_seed(2)
            )
            modules = [stacked.module(m) for m in range(models)]
            begin = time.perf_counter()
            train(stacked, x, y, settings, weights, random)
            timings["batched"].append(time.perf_counter() - begin)
            begin = time.perf_counter()
            loop_reference(modules, x, y, settings, weights, random)
            timings["loop"].append(time.perf_counter() - begin)
        loop, batched = min(timings["loop"]), min(timings["batched"])
        table[method] = {"loop_s": loop, "batched_s": batched, "ratio": loop / batched}
        print(f"{method:<10} {loop:>9.3f} {batched:>10.3f} {loop / batched:>12.1f}x")
    return {
        "models": models,
        "steps": steps,
        "rows": rows,
        "hidden": list(hidden),
        "methods": table,
    }
