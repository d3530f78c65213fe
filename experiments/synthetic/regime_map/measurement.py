"""The measurement of the regime map (study 1): the training jobs of models A and B, run through
the context's mapper (serially, or over the worker processes of ``coremtl verify --jobs``; the
result is the same), and their raw numbers per unit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.study import Context
from experiments.synthetic.regime_map import model_a, model_b
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.methods import METHODS


@dataclass(frozen=True)
class TrainingJob:
    """Every method of ``model`` (``A`` or ``B``) trained with ``optimiser`` on the units
    ``start .. start + size - 1``."""

    model: str
    optimiser: str
    start: int
    size: int


def chunks(units: int, size: int) -> list[tuple[int, int]]:
    """``(start, size)`` of consecutive chunks of at most ``size`` of ``units`` units."""
    return [(start, min(size, units - start)) for start in range(0, units, size)]


def training_jobs(config: Config) -> list[TrainingJob]:
    """Model B's jobs (``mlp.chunk`` models each), then model A's (``chunk`` models each), per
    optimiser: the longest first, so that the workers finish together."""
    jobs = []
    if config.mlp is not None:
        units = len(model_b.unit_cells(config))
        jobs += [
            TrainingJob("B", name, start, size)
            for name in config.mlp.schedules
            for start, size in chunks(units, model_b.units_per_chunk(config))
        ]
    per_job = max(1, config.chunk // len(METHODS))
    jobs += [
        TrainingJob("A", name, start, size)
        for name in config.schedules
        for start, size in chunks(len(model_a.unit_cells(config)), per_job)
    ]
    return jobs


def run_job(
    config: Config, seed: int, job: TrainingJob, device: str = "cpu", progress: bool = False
) -> model_a.Measured:
    """Train and measure one :class:`TrainingJob`."""
    if progress:
        print(
            f"    study 1 model {job.model}, {job.optimiser}: units {job.start}-"
            f"{job.start + job.size - 1}, {job.size * len(METHODS)} models",
            flush=True,
        )
    chunk = model_a.sample_chunk if job.model == "A" else model_b.sample_chunk
    return chunk(config, seed, job.optimiser, job.start, job.size, device)


def merge(parts: list[model_a.Measured]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The measurements of consecutive chunks joined along the units."""
    return {
        length: {
            method: {
                key: np.concatenate([part[length][method][key] for part in parts])
                for key in by_method
            }
            for method, by_method in parts[0][length].items()
        }
        for length in parts[0]
    }


def measure(context: Context) -> dict:
    """Train and measure every job, after the pre-registration. Returns, per model, the raw
    measurements ``{optimiser: {length: {method: {key: values per unit}}}}`` (units in the order
    of :func:`.model_a.unit_cells` and :func:`.model_b.unit_cells`), and the registered
    predictions and S13's signs passed through unchanged for the summary."""
    config, seed = context.config, context.seed
    jobs = training_jobs(config)
    outputs = context.mapper(
        [(run_job, (config, seed, job, context.device, context.progress)) for job in jobs]
    )
    parts: dict[str, dict[str, list]] = {}
    for job, output in zip(jobs, outputs, strict=True):
        parts.setdefault(job.model, {}).setdefault(job.optimiser, []).append(output)
    return {
        "models": {
            model: {name: merge(chunked) for name, chunked in parts[model].items()}
            for model in ("A", "B")
            if model in parts
        },
        "registered": context.registration.get("data", {}).get("predicted", []),
        "s13": context.registration.get("data", {}).get("s13", []),
    }
