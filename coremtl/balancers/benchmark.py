"""``coremtl bench balancers``: the cost of one training step of each balancer, relative to EW.

All balancers run in the same process on the same shared-trunk model and batch, in turn
within each repetition (so that machine load affects all alike); for each, the best of ``repeats``
timings of (forward, balancer backward) is divided by that of Equal Weighting.
"""

from __future__ import annotations

import argparse
import time


def main(args: argparse.Namespace) -> dict:
    import torch
    from torch import nn

    from coremtl.architectures import SharedBottom, mlp
    from coremtl.balancers import BALANCER_NAMES, make_balancer

    device = torch.device(args.device)
    tasks = ["t0", "t1", "t2"]
    width, batch = (32, 64) if args.quick else (256, 512)
    torch.manual_seed(0)
    model = SharedBottom(
        mlp([width, width, width, width]), {t: nn.Linear(width, 1) for t in tasks}
    ).to(device)
    x = torch.randn(batch, width, device=device)
    targets = {t: torch.randn(batch, 1, device=device) for t in tasks}
    shared_params = list(model.shared_parameters())

    def step(balancer) -> None:
        model.zero_grad(set_to_none=True)
        forward = model(x)
        losses = {t: ((forward.predictions[t] - targets[t]) ** 2).mean() for t in tasks}
        balancer.backward(losses, forward.shared, shared_params)

    def timed_step(balancer) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step(balancer)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    balancers = {name: make_balancer(name, tasks, device=device) for name in BALANCER_NAMES}
    for balancer in balancers.values():
        step(balancer)
        step(balancer)
    timings: dict[str, list[float]] = {name: [] for name in balancers}
    for _ in range(args.repeats):
        for name, balancer in balancers.items():
            timings[name].append(timed_step(balancer))
    seconds = {name: min(values) for name, values in timings.items()}
    ratios = {name: value / seconds["ew"] for name, value in seconds.items()}
    print(f"{'balancer':<12} {'seconds':>10} {'x EW':>8}   (width {width}, batch {batch})")
    for name in BALANCER_NAMES:
        print(f"{name:<12} {seconds[name]:>10.5f} {ratios[name]:>8.2f}")
    return {"width": width, "batch": batch, "seconds": seconds, "ratio_to_ew": ratios}
