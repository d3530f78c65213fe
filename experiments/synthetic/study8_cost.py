"""Study 8: the cost of a training step against the number of tasks K (paper: PCGrad about 4x from
K = 10 to 40, CORE-MTL flat).

One dual-stream MLP per ``K`` (:func:`coremtl.representation.mlp_dual_stream` with an MLP
decoder and its ``K`` linear heads as one :class:`~coremtl.representation.LinearHeads`, the ``K``
losses from one call), inputs from a random SCM of setting S with ``K`` tasks, one minibatch. A
step is the toolkit trainer's: forward, task losses, (for CORE-MTL) the CKA, feature-level CFA and
reconstruction terms, the balancer's backward and an Adam step.

The cost is counted in units that mean the same on any machine:

- ``F_m(K)``, the floating-point operations of one step of method ``m``, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products: ``2 n m p`` for an
  ``(n, m) x (m, p)`` product, forward and backward);
- the backward passes through the shared encoder: the encoder's FLOPs in the step less those of
  its forward, divided by the FLOPs of one backward pass of a scalar through it. Equal Weighting
  makes one; a Jacobian balancer (PCGrad, torchjd's ``mtl_backward``) one per task.

The terms' cost is ``A(K) = F_CORE-MTL(K) - F_EW(K)``. The CKA and reconstruction terms act on
the streams, whose sizes do not depend on ``K``; feature-level CFA runs the ``K`` heads once more
on the swapped ``Z_s``, so ``A`` may grow by at most what the extra tasks add to an EW step,
``A(K_max) - A(K_min) <= F_EW(K_max) - F_EW(K_min)``. Wall times (median over ``repeats`` timed
blocks of ``steps`` steps, after one warm-up block) are kept in the measurements only: they differ
between machines and runs, and neither the figure nor the report reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from experiments.study import (
    FAILS,
    HOLDS,
    QUALIFIED,
    Context,
    Finding,
    Outcome,
    Prediction,
    Study,
    Table,
    held_text,
)
from proofs.headline import Headline

METHODS = ("ew", "pcgrad", "core-mtl")


@dataclass(frozen=True)
class Config:
    task_counts: tuple[int, ...] = (10, 20, 40)
    k: int = 8
    hidden: int = 128
    stream_dim: int = 16
    batch: int = 256
    steps: int = 10
    repeats: int = 3


CONFIGS = {
    "smoke": Config(task_counts=(2, 4), hidden=16, stream_dim=4, batch=32, steps=2, repeats=3),
    "fast": Config(),
    "full": Config(hidden=512, stream_dim=64, batch=512, steps=20, repeats=5),
}


def squared_loss_vector(predictions, batch):
    """``(mean_i (yhat_it - y_it)^2)_t``: every task's squared error from one call on the stacked
    predictions of :class:`coremtl.representation.LinearHeads`."""
    return (predictions.stacked - batch["y"]).square().mean(dim=0)


def trainer_for(config: Config, method: str, num_tasks: int, device: str, seed: int):
    """The trainer of ``method`` with ``num_tasks`` tasks, and its fixed batch."""
    import torch

    from coremtl.balancers import make_balancer
    from coremtl.grounding import MLPDecoder
    from coremtl.objective import CoreMTLObjective
    from coremtl.representation import mlp_dual_stream
    from coremtl.trainer import Trainer
    from experiments.synthetic.models import adam_settings, squared_loss_of
    from scm.generate import random_scm
    from scm.sampling import sample

    torch.manual_seed(seed)
    scm = random_scm(k=config.k, num_tasks=num_tasks, seed=seed)
    drawn = sample(scm, config.batch, "source", seed, backend="torch", device=device)
    batch = {"x": drawn["x"], "y": drawn["y"]}
    names = [f"t{index}" for index in range(num_tasks)]
    decoder = MLPDecoder(config.stream_dim, config.stream_dim, 2 * config.k, (config.hidden,))
    model = mlp_dual_stream(
        2 * config.k,
        names,
        hidden=(config.hidden, config.hidden),
        semantic_dim=config.stream_dim,
        residual_dim=config.stream_dim,
        decoder=decoder,
        fused_heads=True,
    )
    objective = (
        CoreMTLObjective(
            cka_weight=1.0,
            cka_warmup_steps=0,
            cfa_weight=1.0,
            cfa_probability=1.0,
            reconstruction_weight=1.0,
            cfa_mode="feature",
        )
        if method == "core-mtl"
        else None
    )
    trainer = Trainer(
        model,
        {name: squared_loss_of(index) for index, name in enumerate(names)},
        make_balancer("ew" if method == "core-mtl" else method, names, device=device),
        adam_settings(config.batch, 1e-3, seed, device),
        None,
        objective=objective,
        task_loss_vector=squared_loss_vector,
    )
    trainer.prepare(batch)
    return trainer, batch


def counted(function) -> tuple[int, dict[str, int]]:
    """Run ``function()`` under :class:`~torch.utils.flop_counter.FlopCounterMode`: the total
    FLOPs and the FLOPs per module name."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        function()
    per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    return counter.get_total_flops(), per_module


def step_cost(config: Config, method: str, num_tasks: int, device: str, seed: int) -> dict:
    """FLOPs of one step, of the shared encoder within it, of the encoder's forward and of one
    backward pass through it; and the wall seconds per step of each timed block."""
    import torch

    trainer, batch = trainer_for(config, method, num_tasks, device, seed)
    model, encoder = trainer.model, trainer.model.encoder

    def synchronise() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(config.steps):
        trainer.train_step(batch)
    seconds = []
    for _ in range(config.repeats):
        synchronise()
        begin = time.perf_counter()
        for _ in range(config.steps):
            trainer.train_step(batch)
        synchronise()
        seconds.append((time.perf_counter() - begin) / config.steps)
    step_flops, per_module = counted(lambda: trainer.train_step(batch))
    with torch.no_grad():
        forward_flops, _ = counted(lambda: encoder(batch["x"]))
    output = encoder(batch["x"]).sum()
    backward_flops, _ = counted(lambda: torch.autograd.grad(output, list(encoder.parameters())))
    return {
        "method": method,
        "tasks": num_tasks,
        "step_flops": step_flops,
        "encoder_flops": per_module[f"{type(model).__name__}.encoder"],
        "encoder_forward_flops": forward_flops,
        "backward_pass_flops": backward_flops,
        "seconds_per_step": seconds,
    }


def measure(context: Context) -> dict:
    from tqdm import tqdm

    config = context.config
    jobs = [(method, count) for count in config.task_counts for method in METHODS]
    rows = [
        step_cost(config, method, count, context.device, context.seed)
        for method, count in tqdm(jobs, desc="study 8 cost", disable=not context.progress)
    ]
    return {"device": context.device, "rows": rows}


def summarise(config: Config, measurements: dict) -> dict:
    """Per method, lists in the order of ``task_counts``: FLOPs per step, the encoder's backward
    FLOPs and backward passes; the growth ``F(K_max) / F(K_min)``; the terms' cost ``A(K)``."""
    counts = list(config.task_counts)
    rows = {(row["method"], row["tasks"]): row for row in measurements["rows"]}
    methods = {}
    for method in METHODS:
        chosen = [rows[(method, count)] for count in counts]
        backward = [r["encoder_flops"] - r["encoder_forward_flops"] for r in chosen]
        one_pass = [r["backward_pass_flops"] for r in chosen]
        flops = [r["step_flops"] for r in chosen]
        methods[method] = {
            "flops": flops,
            "encoder_backward_flops": backward,
            "backward_pass_flops": one_pass,
            "backward_passes": [b / p for b, p in zip(backward, one_pass, strict=True)],
            "growth": flops[-1] / flops[0],
        }
    ew, core = methods["ew"]["flops"], methods["core-mtl"]["flops"]
    added = [c - e for c, e in zip(core, ew, strict=True)]
    return {
        "task_counts": counts,
        "methods": methods,
        "added": {
            "flops": added,
            "growth": added[-1] / added[0],
            "increase": added[-1] - added[0],
            "per_task": (added[-1] - added[0]) / (counts[-1] - counts[0]),
        },
        "ew_increase": ew[-1] - ew[0],
    }


def _passes_text(summary: dict, method: str) -> str:
    passes = summary["methods"][method]["backward_passes"]
    return f"{method} " + ", ".join(f"{p:g}" for p in passes)


def predictions(config: Config) -> list[Prediction]:
    counts = ", ".join(str(k) for k in config.task_counts)

    def core_passes(summary: dict) -> Outcome:
        methods = summary["methods"]
        core, ew = (methods[m]["encoder_backward_flops"] for m in ("core-mtl", "ew"))
        text = f"passes at K = {counts}: {_passes_text(summary, 'core-mtl')}; "
        return Outcome(core == ew, text + _passes_text(summary, "ew"))

    def jacobian_passes(summary: dict) -> Outcome:
        pcgrad = summary["methods"]["pcgrad"]
        held = all(
            backward == count * one
            for backward, one, count in zip(
                pcgrad["encoder_backward_flops"],
                pcgrad["backward_pass_flops"],
                config.task_counts,
                strict=True,
            )
        )
        return Outcome(held, f"passes at K = {counts}: {_passes_text(summary, 'pcgrad')}")

    def added_cost(summary: dict) -> Outcome:
        increase, heads = summary["added"]["increase"], summary["ew_increase"]
        return Outcome(
            increase <= heads,
            f"A grows by {increase:,} FLOPs from K = {config.task_counts[0]} to "
            f"{config.task_counts[-1]}, an EW step by {heads:,}",
        )

    return [
        Prediction(
            "P1",
            "CORE-MTL's step makes as many backward passes through the shared encoder as EW's "
            "at every K",
            "the terms are added to the scalar loss that EW differentiates once",
            core_passes,
        ),
        Prediction(
            "P2",
            "PCGrad's step makes K backward passes through the shared encoder",
            "a Jacobian balancer needs one vector-Jacobian product per task",
            jacobian_passes,
        ),
        Prediction(
            "P3",
            "the FLOPs CORE-MTL's terms add to an EW step grow from the smallest to the largest K "
            "by at most what the extra tasks add to the EW step itself",
            "CKA and reconstruction act on the streams, whose sizes do not depend on K; "
            "feature-level CFA runs the K heads once more",
            added_cost,
        ),
    ]


def _compared(value: float, reference: float) -> str:
    return "less than" if value < reference else "equal to" if value == reference else "more than"


def _count(number: float, noun: str) -> str:
    return f"{number:g} {noun}" + ("" if number == 1 else "es")


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """*holds* when the terms add no backward pass (P1) and a cost that does not change with K;
    *holds only as stated here* when that cost grows, but by no more than the extra tasks add to
    an EW step (P3); *fails* otherwise."""
    held = {outcome.id: outcome.held for outcome in outcomes}
    added, methods = summary["added"], summary["methods"]
    if not (held["P1"] and held["P3"]):
        verdict = FAILS
    else:
        verdict = HOLDS if added["increase"] == 0 else QUALIFIED
    low, high = config.task_counts[0], config.task_counts[-1]
    pcgrad = methods["pcgrad"]
    headline = Headline(
        f"FLOPs CORE-MTL's terms add per step, K={high} / K={low}",
        added["growth"],
        threshold=f"1 = flat; PCGrad's whole step {pcgrad['growth']:.2f}",
    )
    passes = {m: methods[m]["backward_passes"] for m in ("core-mtl", "ew")}
    result = (
        f"CORE-MTL's terms add {added['flops'][0] / 1e6:.2f} M FLOPs per step at K = {low} and "
        f"{added['flops'][-1] / 1e6:.2f} M at K = {high} ({added['per_task']:+,.0f} per extra "
        f"task, {_compared(added['increase'], summary['ew_increase'])} what each extra task adds "
        f"to an EW step) and make {_count(passes['core-mtl'][-1], 'backward pass')} through the "
        f"shared encoder (EW: {passes['ew'][-1]:g}). PCGrad's step makes "
        f"{_count(pcgrad['backward_passes'][-1], 'backward pass')} at K = {high} and its FLOPs "
        f"grow {pcgrad['growth']:.2f}x from K = {low}."
    )
    rows = [
        (
            method,
            f"{entry['flops'][0] / 1e6:.2f}",
            f"{entry['flops'][-1] / 1e6:.2f}",
            f"{entry['growth']:.2f}",
            f"{entry['backward_passes'][0]:g}, {entry['backward_passes'][-1]:g}",
        )
        for method, entry in methods.items()
    ]
    extra_passes = [c - e for c, e in zip(passes["core-mtl"], passes["ew"], strict=True)]
    rows.append(
        (
            "CORE-MTL's terms (core-mtl - ew)",
            f"{added['flops'][0] / 1e6:.2f}",
            f"{added['flops'][-1] / 1e6:.2f}",
            f"{added['growth']:.2f}",
            f"{extra_passes[0]:g}, {extra_passes[-1]:g}",
        )
    )
    table = Table(
        ("method", f"M FLOPs/step, K={low}", f"K={high}", "growth", "encoder backward passes"),
        tuple(rows),
    )
    return Finding(
        verdict,
        headline,
        result,
        table,
        details=(
            f"Predictions: {held_text(outcomes)}.",
            "FLOPs of one step counted by torch.utils.flop_counter.FlopCounterMode; the wall "
            "times per step are in the results file only.",
        ),
        captions={
            "study8_cost": "FLOPs of one training step (left) and backward passes through the "
            "shared encoder (right) against the number of tasks K; dashed: the FLOPs CORE-MTL's "
            "terms add to an EW step."
        },
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    summary = result["summary"]
    counts = summary["task_counts"]
    figure, axes = new_figure(2, 1, width=4.0)
    flops_axis, passes_axis = axes[0]
    styles = ("o-", "s-", "^:")
    for colour, style, method in zip(colours(len(METHODS)), styles, METHODS, strict=True):
        entry = summary["methods"][method]
        flops_axis.plot(
            counts, [f / 1e6 for f in entry["flops"]], style, color=colour, label=method
        )
        passes_axis.plot(counts, entry["backward_passes"], style, color=colour, label=method)
    flops_axis.plot(
        counts,
        [f / 1e6 for f in summary["added"]["flops"]],
        "D--",
        color="k",
        label="added by CORE-MTL's terms",
    )
    flops_axis.set_yscale("log")
    flops_axis.set_xlabel("number of tasks K")
    flops_axis.set_ylabel("M FLOPs per training step")
    flops_axis.set_title("FLOPs of a step against K")
    flops_axis.legend()
    passes_axis.set_xlabel("number of tasks K")
    passes_axis.set_ylabel("backward passes through the shared encoder")
    passes_axis.set_title("Backward passes per step")
    passes_axis.legend()
    return save_figure(figure, directory, "study8_cost")


STUDY = Study(
    number=8,
    name="Step cost against the number of tasks",
    statements=("cost",),
    claim="CORE-MTL's terms add a cost per step that does not grow with the number of tasks (the "
    "Jacobian balancers' does)",
    expected=QUALIFIED,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
)


def main(args) -> dict:
    """``coremtl bench mtl-cost``: wall time (median of the blocks) and FLOPs per step, each as a
    ratio to the smallest K (``--quick``: the smoke setting)."""
    import statistics
    from dataclasses import replace

    config = replace(CONFIGS["smoke" if args.quick else "fast"], repeats=args.repeats)
    result = STUDY.run(config, 0, args.device)
    rows = {(row["method"], row["tasks"]): row for row in result["measurements"]["rows"]}
    print(f"{'method':10s} {'per step':9s} " + " ".join(f"K={k:<6d}" for k in config.task_counts))
    for method in METHODS:
        times = [
            statistics.median(rows[(method, k)]["seconds_per_step"]) for k in config.task_counts
        ]
        flops = result["summary"]["methods"][method]["flops"]
        for unit, values in (("time", times), ("FLOPs", flops)):
            ratios = " ".join(f"{value / values[0]:<8.2f}" for value in values)
            print(f"{method:10s} {unit:9s} {ratios}")
    print(result["finding"]["result"])
    return result
