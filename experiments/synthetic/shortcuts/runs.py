"""One run of the shortcut suite: a method trained on a benchmark for one seed, then scored.

A run is a :class:`Job` (benchmark, method, seed). It draws the seed's splits (the same for every
method: paired data), builds the seed's backbone (the same initial weights for every method),
trains the method through :func:`coremtl.train` (AdamW, a fixed number of epochs, the source
validation split scored every epoch), and measures:

- the task metrics (:func:`coremtl.evaluate`) on the source validation split, the random and the
  permuted target's validation and test splits;
- the probes of :mod:`experiments.synthetic.shortcuts.probes` on shortcut-free data, MT-CRL's
  routing matrix, and the benchmark's own probes (the streams' hold on the true albedo of the
  rendered scenes, a hard-grounding model's decomposition);
- the parameters on the prediction path (:func:`coremtl.capacity.prediction_parameters`) and the
  wall time of training.

The calibration row trains EW on the target law (its own training and validation splits), so its
target numbers say what is learnable without the shortcut.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from experiments.synthetic.shortcuts.benchmarks import Benchmark, Law, inputs_and_labels
from experiments.synthetic.shortcuts.methods import METHODS


@dataclass(frozen=True)
class Sizes:
    """Split sizes and training settings of one benchmark."""

    train: int
    val: int
    test: int
    probe: int
    epochs: int
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class Job:
    """One run: ``method`` on ``benchmark`` for ``seed`` with a source of shortcut ``strength``."""

    benchmark: str
    method: str
    seed: int
    strength: float


SCORED_SPLITS = {
    "source_val": ("source_val", "source"),
    "target_val": ("target_val", "target"),
    "target_test": ("target_test", "target"),
    "permuted_val": ("permuted_val", "permuted"),
    "permuted_test": ("permuted_test", "permuted"),
}
"""Scored split -> (split name drawn, law kind); the two targets draw the same split names, so
they share everything but the nuisance."""


def draw(benchmark: Benchmark, seed: int, split: str, n: int, kind: str, strength: float) -> dict:
    """One split of ``benchmark``: the permuted target at strength 1, the source at ``strength``."""
    law = Law(kind, strength if kind == "source" else 1.0)
    return benchmark.draw(seed, split, n, law)


def run(benchmark: Benchmark, sizes: Sizes, job: Job, device: str = "cpu") -> dict[str, Any]:
    """Train ``job.method`` on ``benchmark`` and measure it (module docstring)."""
    import coremtl
    from coremtl.capacity import prediction_path_parameters
    from experiments.synthetic.shortcuts.probes import routing, stream_probes

    method = METHODS[job.method]
    strength = job.strength
    calibration = method.family == "calibration"
    kind = "target" if calibration else "source"
    prefix = "calibration_" if calibration else ""
    train = draw(benchmark, job.seed, f"{prefix}train", sizes.train, kind, strength)
    validation = draw(benchmark, job.seed, f"{prefix}source_val", sizes.val, kind, strength)
    tasks = benchmark.tasks
    begin = time.perf_counter()
    result = coremtl.train(
        method.method,
        benchmark.backbone(job.seed),
        tasks,
        inputs_and_labels(train, tasks),
        val_data=inputs_and_labels(validation, tasks),
        epochs=sizes.epochs,
        batch_size=sizes.batch_size,
        learning_rate=sizes.learning_rate,
        seed=job.seed,
        device=device,
        **method.build_options(),
    )
    seconds = time.perf_counter() - begin
    model = result.model.eval()
    metrics = {"source_val": dict(result.val)}
    for scored, (split, law) in SCORED_SPLITS.items():
        if scored == "source_val":
            continue
        size = sizes.val if scored.endswith("_val") else sizes.test
        data = draw(benchmark, job.seed, split, size, law, strength)
        metrics[scored] = coremtl.evaluate(
            model, inputs_and_labels(data, tasks), tasks, device=device
        )
    fit = draw(benchmark, job.seed, "probe_fit", sizes.probe, "target", strength)
    evaluate = draw(benchmark, job.seed, "probe_eval", sizes.probe, "target", strength)
    shortcut = next(task for task in tasks if task.name == benchmark.shortcut_task)
    with torch.no_grad():
        probes = stream_probes(model, fit, evaluate, shortcut, device)
        graph = routing(model, evaluate["x"], device)
    intrinsic = benchmark.extra_probes(model, fit, evaluate)
    return {
        "benchmark": job.benchmark,
        "method": job.method,
        "seed": job.seed,
        "strength": strength,
        "label": result.preset.label,
        "metrics": metrics,
        "probes": probes,
        "routing": graph,
        "intrinsic": intrinsic,
        "parameters": prediction_path_parameters(result.preset.model),
        "train_seconds": seconds,
        "final_losses": {
            key: value for key, value in result.history[-1].get("train", {}).items()
        } if result.history else {},
    }  # fmt: skip
