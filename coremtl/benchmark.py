"""``coremtl bench step``: cost of a CORE-MTL training step against Equal Weighting and PCGrad.

One MLP dual-stream model (CelebA-like: K binary attributes from a 512-dimensional input, encoder
512-512, streams 128 + 128, linear heads on ``Z_s``, MLP decoder 256-512-512), one fixed batch of
256, and the trainer's own step (forward, losses, CORE-MTL terms, balancer backward, clipping,
AdamW). Every run below is timed in turn within each repetition (so a change of machine load
affects all alike) and the best mean over ``steps`` consecutive steps is kept.

Runs, at K = 10 and K = 40:

- ``ew``, ``pcgrad``: the balancers alone (no decoder, no terms);
- ``reconstruction``: EW + the reconstruction term (the decoder);
- ``reconstruction + CKA``: EW + reconstruction + debiased CKA, CFA drawn but never applied
  (probability 0), which is the CORE-MTL step on a step where the Bernoulli draw says no;
- ``core-mtl (feature|input CFA, p=1)``: EW + reconstruction + CKA + CFA at every step.

Heads are :class:`coremtl.representation.LinearHeads` (one product for all K) and the K binary
cross-entropies are one call on the stacked logits (``reduction='none'``, mean over the batch),
through the trainer's ``task_loss_vector`` hook;
the ``separate heads`` runs keep K ``nn.Linear`` heads and K loss calls, for comparison.

CFA is applied with a probability per step (the method's, :data:`coremtl.defaults.CFA_PROBABILITY`,
which the vision configs read too): the expected step time at probability ``p`` is
``p t(p=1) + (1 - p) t(p=0)``, reported next to the worst case ``p = 1``. Reported ratios:
CORE-MTL / EW (target <= 1.3), K=40 / K=10 (target <= 1.1 for CORE-MTL; the paper reports about 4
for PCGrad), and the CKA term's share of the CORE-MTL step (target < 2%), both as its forward and
backward timed alone and as the in-step difference ``t(reconstruction + CKA) - t(reconstruction)``.
For each run the matrix-product FLOPs of one step (forward and backward, counted by
``torch.utils.flop_counter``) are reported too: their ratios are what the time ratios tend to when
products dominate, the floor that no implementation of the same computation goes below.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

from coremtl import defaults

TASK_COUNTS = (10, 40)

TARGETS = {"core_over_ew": 1.3, "k40_over_k10": 1.1, "cka_share": 0.02}


@dataclass(frozen=True)
class Setting:
    """One timed run: balancer, CORE-MTL terms (``cfa_mode`` None: none), head layout."""

    label: str
    balancer: str
    reconstruction: bool = False
    cka: bool = False
    cfa_mode: str | None = None
    cfa_probability: float = 0.0
    stacked: bool = True


SETTINGS = (
    Setting("ew", "ew"),
    Setting("reconstruction", "ew", reconstruction=True),
    Setting("reconstruction + CKA", "ew", reconstruction=True, cka=True, cfa_mode="input"),
    Setting("core-mtl (feature CFA, p=1)", "ew", True, True, "feature", 1.0),
    Setting("core-mtl (input CFA, p=1)", "ew", True, True, "input", 1.0),
    Setting("pcgrad", "pcgrad"),
    Setting("ew, separate heads", "ew", stacked=False),
    Setting("core-mtl (input CFA, p=1), separate heads", "ew", True, True, "input", 1.0, False),
    Setting("pcgrad, separate heads", "pcgrad", stacked=False),
)
CFA_OFF = "reconstruction + CKA"
CORE_AT_ONE = {"feature": "core-mtl (feature CFA, p=1)", "input": "core-mtl (input CFA, p=1)"}


def expected_label(mode: str, probability: float) -> str:
    return f"core-mtl ({mode} CFA, p={probability:g}, expected)"


def _synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stacked_attribute_losses(predictions, batch):
    """The K binary cross-entropies from one call on the stacked logits ``(B, K)`` of
    :class:`coremtl.representation.LinearHeads`, averaged over the batch."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(
        predictions.stacked, batch["y"], reduction="none"
    ).mean(dim=0)


def _build(setting: Setting, num_tasks: int, device, workdir: str):
    import torch
    import torch.nn.functional as F

    from coremtl.balancers import make_balancer
    from coremtl.grounding import MLPDecoder
    from coremtl.objective import CoreMTLObjective
    from coremtl.representation import mlp_dual_stream
    from coremtl.trainer import Trainer, TrainerConfig

    names = [f"attr{t}" for t in range(num_tasks)]
    torch.manual_seed(0)
    decoder = MLPDecoder(128, 128, 512, hidden=(512,)) if setting.reconstruction else None
    model = mlp_dual_stream(
        512,
        names,
        hidden=(512, 512),
        semantic_dim=128,
        residual_dim=128,
        decoder=decoder,
        fused_heads=setting.stacked,
    )

    def attribute_loss(column: int):
        def loss(prediction, batch):
            return F.binary_cross_entropy_with_logits(prediction[:, 0], batch["y"][:, column])

        return loss

    objective = None
    if setting.reconstruction:
        objective = CoreMTLObjective(
            cka_weight=defaults.CKA_WEIGHT if setting.cka else 0.0,
            cka_warmup_steps=0,
            cfa_weight=defaults.CFA_WEIGHT if setting.cfa_mode is not None else 0.0,
            cfa_probability=setting.cfa_probability,
            cfa_mode=setting.cfa_mode or "feature",
        )
    trainer = Trainer(
        model,
        {name: attribute_loss(t) for t, name in enumerate(names)},
        make_balancer(setting.balancer, names),
        TrainerConfig(progress=False, device=str(device), batch_size=256),
        workdir,
        objective=objective,
        task_loss_vector=_stacked_attribute_losses if setting.stacked else None,
    )
    trainer._build_optimizer(total_steps=10_000)
    generator = torch.Generator().manual_seed(1)
    batch = {
        "x": torch.randn(256, 512, generator=generator).to(device),
        "y": (torch.rand(256, num_tasks, generator=generator) < 0.5).float().to(device),
    }
    return trainer, batch


def _interleaved_step_times(runs: Mapping, device, steps: int, repeats: int) -> dict:
    """Best mean step time of each run; the runs take turns in every repeat, so a change of
    machine load affects all of them alike."""
    for trainer, batch in runs.values():
        for _ in range(2):
            trainer.train_step(batch)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for key, (trainer, batch) in runs.items():
            _synchronise(device)
            start = time.perf_counter()
            for _ in range(steps):
                trainer.train_step(batch)
            _synchronise(device)
            best[key] = min(best[key], (time.perf_counter() - start) / steps)
    return best


def _step_flops(trainer, batch) -> int:
    """Matrix-product FLOPs (forward and backward) of one training step."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.train_step(batch)
    return int(counter.get_total_flops())


def _cka_cost(z_s, z_r, device, steps: int, repeats: int) -> tuple[float, int]:
    """Best time and FLOPs of the debiased CKA term's forward and backward on the streams."""
    from torch.utils.flop_counter import FlopCounterMode

    from coremtl.cka import linear_cka

    z_s = z_s.detach().clone().requires_grad_(True)
    z_r = z_r.detach().clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        linear_cka(z_s, z_r, debiased=True).backward()
    times = []
    for _ in range(repeats + 1):
        _synchronise(device)
        start = time.perf_counter()
        for _ in range(steps):
            linear_cka(z_s, z_r, debiased=True).backward()
        _synchronise(device)
        times.append((time.perf_counter() - start) / steps)
    return min(times[1:]), int(counter.get_total_flops())


def _with_expected(values: dict[str, dict[int, float]], probability: float) -> None:
    """Add ``p v(p=1) + (1 - p) v(p=0)`` for both CFA modes (times or FLOPs)."""
    for mode, label in CORE_AT_ONE.items():
        values[expected_label(mode, probability)] = {
            k: probability * values[label][k] + (1 - probability) * values[CFA_OFF][k]
            for k in TASK_COUNTS
        }


def main(args) -> dict:
    """Measure and print the step-time ratios (see the module docstring)."""
    import torch

    device = torch.device(args.device)
    steps = 3 if args.quick else 10
    repeats = args.repeats
    with tempfile.TemporaryDirectory() as workdir:
        runs = {
            (setting.label, k): _build(setting, k, device, workdir)
            for k in TASK_COUNTS
            for setting in SETTINGS
        }
        measured = _interleaved_step_times(runs, device, steps, repeats)
        flops_measured = {key: _step_flops(*run) for key, run in runs.items()}
        cka = {}
        for k in TASK_COUNTS:
            trainer, batch = runs[(CFA_OFF, k)]
            with torch.no_grad():
                forward = trainer.model(batch["x"])
            cka[k] = _cka_cost(forward.z_s, forward.z_r, device, steps, repeats)
    times: dict[str, dict[int, float]] = {s.label: {} for s in SETTINGS}
    flops: dict[str, dict[int, float]] = {s.label: {} for s in SETTINGS}
    for (label, k), seconds in measured.items():
        times[label][k] = seconds
        flops[label][k] = flops_measured[(label, k)]
    _with_expected(times, defaults.CFA_PROBABILITY)
    _with_expected(flops, defaults.CFA_PROBABILITY)
    core_labels = [
        CORE_AT_ONE["feature"],
        expected_label("feature", defaults.CFA_PROBABILITY),
        CORE_AT_ONE["input"],
        expected_label("input", defaults.CFA_PROBABILITY),
        "core-mtl (input CFA, p=1), separate heads",
    ]

    def baseline(label: str) -> str:
        return "ew, separate heads" if label.endswith("separate heads") else "ew"

    result = {
        "step_seconds": times,
        "step_matmul_flops": flops,
        "core_over_ew": {
            label: {k: times[label][k] / times[baseline(label)][k] for k in TASK_COUNTS}
            for label in core_labels
        },
        "core_over_ew_flops": {
            label: {k: flops[label][k] / flops[baseline(label)][k] for k in TASK_COUNTS}
            for label in core_labels
        },
        "k40_over_k10": {label: times[label][40] / times[label][10] for label in times},
        "cka_seconds": {k: cka[k][0] for k in TASK_COUNTS},
        "cka_matmul_flops": cka[TASK_COUNTS[0]][1],
        "cka_share_of_core_step": {
            label: {k: cka[k][0] / times[label][k] for k in TASK_COUNTS} for label in core_labels
        },
        "cka_share_in_step_difference": {
            k: (times[CFA_OFF][k] - times["reconstruction"][k]) / times[CFA_OFF][k]
            for k in TASK_COUNTS
        },
        "cka_flop_share_of_core_step": {
            label: {k: cka[k][1] / flops[label][k] for k in TASK_COUNTS} for label in core_labels
        },
        "cfa_probability_default": defaults.CFA_PROBABILITY,
        "targets": TARGETS,
        "batch": 256,
        "steps_per_timing": steps,
        "threads": torch.get_num_threads(),
    }
    _print(result, repeats, steps, device)
    return result


def _print(result: dict, repeats: int, steps: int, device) -> None:
    import torch

    times, flops = result["step_seconds"], result["step_matmul_flops"]
    print(
        f"step time per run (ms, best of {repeats} interleaved rounds of {steps} steps, "
        f"device {device}, {torch.get_num_threads()} threads; GFLOP: matrix products per step):"
    )
    print(f"{'run':<46}{'K=10':>8}{'K=40':>8}{'K40/K10':>9}{'GFLOP10':>9}{'GFLOP40':>9}")
    for label, by_k in times.items():
        print(
            f"{label:<46}{1e3 * by_k[10]:>8.2f}{1e3 * by_k[40]:>8.2f}{by_k[40] / by_k[10]:>9.2f}"
            f"{flops[label][10] / 1e9:>9.3f}{flops[label][40] / 1e9:>9.3f}"
        )
    print(f"CORE-MTL / EW (target <= {TARGETS['core_over_ew']}; FLOP ratio in brackets):")
    for label, ratios in result["core_over_ew"].items():
        floor = result["core_over_ew_flops"][label]
        listing = ", ".join(f"K={k}: {ratios[k]:.2f} ({floor[k]:.2f})" for k in TASK_COUNTS)
        print(f"  {label:<52}{listing}")
    print(f"K=40 / K=10 (target <= {TARGETS['k40_over_k10']} for CORE-MTL, paper ~4 for PCGrad):")
    for label, ratio in result["k40_over_k10"].items():
        print(f"  {label:<52}{ratio:.2f}")
    print(
        f"CKA term (forward + backward {1e3 * statistics.mean(result['cka_seconds'].values()):.2f}"
        f" ms, {result['cka_matmul_flops'] / 1e6:.0f} MFLOP) as a share of the CORE-MTL step "
        f"(target < {100 * TARGETS['cka_share']:.0f}%; FLOP share in brackets):"
    )
    for label, shares in result["cka_share_of_core_step"].items():
        floor = result["cka_flop_share_of_core_step"][label]
        listing = ", ".join(
            f"K={k}: {100 * shares[k]:.2f}% ({100 * floor[k]:.2f}%)" for k in TASK_COUNTS
        )
        print(f"  {label:<52}{listing}")
    difference = result["cka_share_in_step_difference"]
    print(
        "  in-step difference (reconstruction + CKA) - reconstruction: "
        + ", ".join(f"K={k}: {100 * v:.2f}%" for k, v in difference.items())
    )
