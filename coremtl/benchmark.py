"""``coremtl bench step``: cost of a CORE-MTL training step against Equal Weighting and PCGrad.

One MLP dual-stream model (CelebA-like: K binary attributes from a 512-dimensional input, encoder
512-512, streams 128 + 128, one linear head per attribute, MLP decoder), one fixed batch, and the
trainer's own step (forward, losses, CORE-MTL terms, balancer backward, clipping, AdamW). Printed
ratios, all measured in this run:

- CORE-MTL (CKA + CFA with probability 1 + reconstruction, EW task weights) / EW, for the
  feature-level and the input-level CFA (target <= 1.3);
- step time at K = 40 over K = 10, for CORE-MTL and for PCGrad (targets <= 1.1 and, reported by
  the paper, about 4 for PCGrad);
- the share of the CORE-MTL step spent on the CKA term (its forward and backward, target < 2%).
"""

from __future__ import annotations

import statistics
import tempfile
import time


def _synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(num_tasks: int, balancer_name: str, cfa_mode: str | None, device, workdir: str):
    import torch
    import torch.nn.functional as F

    from coremtl.balancers import make_balancer
    from coremtl.grounding import MLPDecoder
    from coremtl.objective import CoreMTLObjective
    from coremtl.representation import mlp_dual_stream
    from coremtl.trainer import Trainer, TrainerConfig

    names = [f"attr{t}" for t in range(num_tasks)]
    torch.manual_seed(0)
    decoder = MLPDecoder(128, 128, 512, hidden=(512,)) if cfa_mode is not None else None
    model = mlp_dual_stream(
        512, names, hidden=(512, 512), semantic_dim=128, residual_dim=128, decoder=decoder
    )

    def attribute_loss(column: int):
        def loss(prediction, batch):
            return F.binary_cross_entropy_with_logits(prediction[:, 0], batch["y"][:, column])

        return loss

    objective = None
    if cfa_mode is not None:
        objective = CoreMTLObjective(
            cka_weight=0.1,
            cfa_weight=0.5,
            cfa_probability=1.0,
            reconstruction_weight=1.0,
            cfa_mode=cfa_mode,
        )
    trainer = Trainer(
        model,
        {name: attribute_loss(t) for t, name in enumerate(names)},
        make_balancer(balancer_name, names),
        TrainerConfig(progress=False, device=str(device), batch_size=256),
        workdir,
        objective=objective,
    )
    trainer._build_optimizer(total_steps=10_000)
    generator = torch.Generator().manual_seed(1)
    batch = {
        "x": torch.randn(256, 512, generator=generator).to(device),
        "y": (torch.rand(256, num_tasks, generator=generator) < 0.5).float().to(device),
    }
    return trainer, batch


def _interleaved_step_times(runs: dict, device, steps: int, repeats: int) -> dict:
    """Best mean step time of each run; the runs take turns in every repeat, so a change of
    machine load affects all of them alike."""
    for trainer, batch in runs.values():
        for _ in range(2):
            trainer._train_step(batch)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for key, (trainer, batch) in runs.items():
            _synchronise(device)
            start = time.perf_counter()
            for _ in range(steps):
                trainer._train_step(batch)
            _synchronise(device)
            best[key] = min(best[key], (time.perf_counter() - start) / steps)
    return best


def _cka_time(z_s, z_r, device, steps: int, repeats: int) -> float:
    from coremtl.cka import linear_cka

    z_s = z_s.detach().clone().requires_grad_(True)
    z_r = z_r.detach().clone().requires_grad_(True)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(steps):
            linear_cka(z_s, z_r, debiased=True).backward()
        _synchronise(device)
        times.append((time.perf_counter() - start) / steps)
    return min(times[1:])


def main(args) -> dict:
    """Measure and print the step-time ratios (see the module docstring)."""
    import torch

    device = torch.device(args.device)
    steps = 3 if args.quick else 10
    repeats = args.repeats
    task_counts = (10, 40)
    settings = [
        ("ew", "ew", None),
        ("core-mtl (feature CFA)", "ew", "feature"),
        ("core-mtl (input CFA)", "ew", "input"),
        ("pcgrad", "pcgrad", None),
    ]
    times: dict[str, dict[int, float]] = {label: {} for label, _, _ in settings}
    cka_share: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as workdir:
        runs = {
            (label, num_tasks): _build(num_tasks, balancer_name, cfa_mode, device, workdir)
            for num_tasks in task_counts
            for label, balancer_name, cfa_mode in settings
        }
        measured = _interleaved_step_times(runs, device, steps, repeats)
        for (label, num_tasks), seconds in measured.items():
            times[label][num_tasks] = seconds
        for num_tasks in task_counts:
            trainer, batch = runs[("core-mtl (input CFA)", num_tasks)]
            forward = trainer.model(batch["x"])
            cka = _cka_time(forward.z_s, forward.z_r, device, steps, repeats)
            cka_share[num_tasks] = cka / times["core-mtl (input CFA)"][num_tasks]
    result = {
        "step_seconds": {label: dict(by_k) for label, by_k in times.items()},
        "core_over_ew": {
            label: {k: times[label][k] / times["ew"][k] for k in task_counts}
            for label in ("core-mtl (feature CFA)", "core-mtl (input CFA)")
        },
        "k40_over_k10": {label: times[label][40] / times[label][10] for label in times},
        "cka_share_of_core_step": cka_share,
        "batch": 256,
        "steps_per_timing": steps,
    }
    print(
        f"step time per method (seconds, best of {repeats} interleaved rounds of {steps} steps, "
        f"device {device}, {torch.get_num_threads()} threads):"
    )
    print(f"{'method':<24}{'K=10':>10}{'K=40':>10}{'K40/K10':>10}")
    for label, by_k in times.items():
        print(f"{label:<24}{by_k[10]:>10.4f}{by_k[40]:>10.4f}{by_k[40] / by_k[10]:>10.2f}")
    for label, ratios in result["core_over_ew"].items():
        listing = ", ".join(f"K={k}: {value:.2f}" for k, value in ratios.items())
        print(f"{label} / ew: {listing}   (target <= 1.3)")
    print(
        f"K=40 / K=10: core-mtl (input CFA) {result['k40_over_k10']['core-mtl (input CFA)']:.2f} "
        f"(target <= 1.1), pcgrad {result['k40_over_k10']['pcgrad']:.2f} (paper ~4)"
    )
    shares = ", ".join(f"K={k}: {100 * v:.2f}%" for k, v in cka_share.items())
    print(f"CKA term share of the CORE-MTL step: {shares}   (target < 2%)")
    print(f"median CKA share: {100 * statistics.median(cka_share.values()):.2f}%")
    return result
