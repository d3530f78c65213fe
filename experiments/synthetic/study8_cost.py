"""Study 8: training-step cost against the number of tasks K (paper: PCGrad about 4x from K = 10
to 40, CORE-MTL flat).

One dual-stream MLP per ``K`` (:func:`coremtl.representation.mlp_dual_stream` with an MLP
decoder and its ``K`` linear heads as one :class:`~coremtl.representation.LinearHeads`, the ``K``
losses from one call), inputs from a random SCM of setting S with ``K`` tasks, one minibatch. A
step is the toolkit trainer's: forward, task losses, (for CORE-MTL) the CKA, feature-level CFA and
reconstruction terms, the balancer's backward and an Adam step. The time of a step is the median
over ``repeats`` timed blocks of ``steps`` steps each (after one warm-up block), all methods and
``K`` measured in the same process; the study reports ratios ``t(K) / t(K_min)`` per method and
``t(method) / t(EW)`` per ``K``, never absolute claims.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.synthetic.common import jsonable

NAME = "Step cost against the number of tasks"
STATEMENTS = ("cost",)
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


def step_time(config: Config, method: str, num_tasks: int, device: str, seed: int) -> list[float]:
    """Seconds per step of ``method`` with ``num_tasks`` tasks, one value per timed block; a step
    is the toolkit trainer's :meth:`~coremtl.trainer.Trainer.train_step` on one fixed batch."""
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
        if (method == "core-mtl")
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

    def synchronise() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(config.steps):
        trainer.train_step(batch)
    times = []
    for _ in range(config.repeats):
        synchronise()
        begin = time.perf_counter()
        for _ in range(config.steps):
            trainer.train_step(batch)
        synchronise()
        times.append((time.perf_counter() - begin) / config.steps)
    return times


def run(config: Config, seed: int = 0, device: str = "cpu", progress: bool = False) -> dict:
    from tqdm import tqdm

    jobs = [(m, k) for k in config.task_counts for m in METHODS]
    blocks = {}
    for method, num_tasks in tqdm(jobs, desc="study 8 cost", disable=not progress):
        blocks[f"{method}|{num_tasks}"] = step_time(config, method, num_tasks, device, seed)
    median = {key: statistics.median(values) for key, values in blocks.items()}
    smallest, largest = min(config.task_counts), max(config.task_counts)
    growth = {m: median[f"{m}|{largest}"] / median[f"{m}|{smallest}"] for m in METHODS}
    relative = {
        f"{m}|{k}": median[f"{m}|{k}"] / median[f"ew|{k}"]
        for m in METHODS
        for k in config.task_counts
    }
    finding = (
        f"step time t(K={largest}) / t(K={smallest}) on {device}: "
        + ", ".join(f"{m} {growth[m]:.2f}x" for m in METHODS)
        + f"; at K={largest} relative to EW: "
        + ", ".join(f"{m} {relative[f'{m}|{largest}']:.2f}x" for m in METHODS)
        + " (paper: PCGrad ~4x, CORE-MTL flat)"
    )
    agrees = growth["pcgrad"] > growth["core-mtl"]
    return jsonable(
        {
            "config": config,
            "device": device,
            "blocks_seconds_per_step": blocks,
            "median_seconds_per_step": median,
            "growth": growth,
            "relative_to_ew": relative,
            "finding": finding,
            "verdict": "agrees" if agrees else "contradicts",
        }
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    counts = result["config"]["task_counts"]
    figure, axes = new_figure(1, 1, width=4.5)
    axis = axes[0, 0]
    for colour, method in zip(colours(len(METHODS)), METHODS, strict=True):
        base = result["median_seconds_per_step"][f"{method}|{counts[0]}"]
        ratios = [result["median_seconds_per_step"][f"{method}|{k}"] / base for k in counts]
        spread = [
            [min(result["blocks_seconds_per_step"][f"{method}|{k}"]) / base for k in counts],
            [max(result["blocks_seconds_per_step"][f"{method}|{k}"]) / base for k in counts],
        ]
        axis.errorbar(
            counts,
            ratios,
            yerr=[
                [r - lo for r, lo in zip(ratios, spread[0], strict=True)],
                [hi - r for r, hi in zip(ratios, spread[1], strict=True)],
            ],
            fmt="o-",
            color=colour,
            capsize=2,
            label=method,
        )
    axis.set_xlabel("number of tasks K")
    axis.set_ylabel(f"step time / step time at K={counts[0]} (ratio)")
    axis.set_title(f"Cost: step time vs K on {result['device']} (median, min-max of blocks)")
    axis.legend()
    return save_figure(figure, directory, "study8_cost")


def main(args) -> dict:
    """``coremtl bench mtl-cost``: the study's ratios as a benchmark (``--quick``: smoke setting)."""
    from dataclasses import replace

    config = replace(CONFIGS["smoke" if args.quick else "fast"], repeats=args.repeats)
    result = run(config, 0, args.device)
    print(f"{'method':10s} " + " ".join(f"K={k:<6d}" for k in config.task_counts))
    for method in METHODS:
        base = result["median_seconds_per_step"][f"{method}|{config.task_counts[0]}"]
        ratios = [
            result["median_seconds_per_step"][f"{method}|{k}"] / base for k in config.task_counts
        ]
        print(f"{method:10s} " + " ".join(f"{ratio:<8.2f}" for ratio in ratios))
    print(result["finding"])
    return result
