"""The pre-registration of the regime map (study 1), computed before any model is trained on
samples: the predicted outcome of every comparison, from the exact population dynamics of model A.

For every optimiser, every method of model A is trained on the population risk from each seed's
SCM and initialisation (same optimiser, rate and steps as the measurement; deterministic given the
seed, RLW's random weights included). The best balancer of a cell is the one with the lowest
population source risk, and the mean over seeds of ``gap(variant) - gap(baseline)`` is classified
by :func:`.rules.classify`. Model B's prediction is model A's at ``psi_0 = pi/4`` (a random MLP
starts mixed) over model B's number of seeds, an extrapolation from setting S that S10 says need
not hold for a free encoder.
"""

from __future__ import annotations

import math
from dataclasses import replace

from experiments.study import Context
from experiments.synthetic.regime_map import model_a
from experiments.synthetic.regime_map.cells import grid, statement_of
from experiments.synthetic.regime_map.comparisons import Row, compare
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.label_mediated import registered_signs
from experiments.synthetic.regime_map.methods import penalty_of
from experiments.synthetic.regime_map.rules import band_of, classify

MIXED_START = round(math.pi / 4, 6)
"""The angle at which model B's prediction is read: a random MLP starts mixed."""


def rules_text(config: Config) -> dict[str, str]:
    """The registered rules, in words."""
    return {
        "prediction": (
            "predicted from the exact population dynamics of model A (no samples); 'better' if the "
            "mean over seeds of gap(variant) - gap(best balancer) < -band, 'worse' if > band, else "
            f"'no difference', band = {config.band_relative} |gap(baseline)| + "
            f"{config.band_absolute}; best balancer by population source risk; model B takes "
            "model A's prediction at psi_0 = pi/4 (an extrapolation, S10)"
        ),
        "held": (
            f"the two-sided {config.confidence:.0%} Student-t interval of the measured mean "
            "difference (paired seeds) lies below 0 (better), above 0 (worse), or contains 0 "
            "(no difference)"
        ),
        "diagnosis": (
            "a reading beside the rule, never scoring a prediction: a prediction not held is "
            "'contradicted' when the measured interval is disjoint from the predicted region "
            "(d < -band, d > band, |d| <= band), 'off in size' when it overlaps that region but "
            "excludes the predicted mean, 'inconclusive' otherwise (with the seeds its test "
            "needs), 'diverged' when a run ended non-finite"
        ),
        "selection": (
            "headline: best balancer per cell by held-out source validation risk (training-domain "
            "validation); oracle rows: by target risk; no other hyperparameter is tuned"
        ),
        "claim": (
            "per model, optimiser and regime (long runs, worst-case shift of the headline size): "
            "CORE-MTL is reliably better when the interval of its paired difference from the best "
            "balancer, averaged per seed over the regime's cells, lies below 0"
        ),
        "seeds": seeds_text(config),
    }


def seeds_text(config: Config) -> str:
    plan = config.plan
    how = (
        "set by hand"
        if plan is None
        else f"planned before the measurement: the {plan.quantile:.0%} quantile of the registered "
        f"tests' needs at a pilot's spread ({plan.pilot_seeds} seeds from {plan.pilot_seed}), "
        f"within [{plan.minimum}, {plan.cap}]"
    )
    b = "" if config.mlp is None else f"; model B: {config.mlp.seeds}"
    return f"paired seeds per cell, model A: {config.seeds} ({how}){b}"


def prediction_jobs(config: Config, seed: int, device: str) -> list[tuple]:
    """The population dynamics to run, as ``(function, arguments)`` jobs: model A's cells for
    every optimiser, then model B's cells at ``psi_0 = pi/4``."""
    jobs = [
        (
            model_a.population_chunk,
            (config, seed, name, model_a.measured_cells(config), config.seeds, device),
        )
        for name in config.schedules
    ]
    if config.mlp is not None:
        cells = grid(config.mlp.variances, config.mlp.rhos, (MIXED_START,))
        jobs += [
            (model_a.population_chunk, (config, seed, name, cells, config.mlp.seeds, device))
            for name in config.mlp.schedules
        ]
    return jobs


def predicted_rows(config: Config, outputs: list) -> list[Row]:
    """The registered rows from the outputs of :func:`prediction_jobs` (in their order)."""
    settings = [
        ("A", name, model_a.measured_cells(config), config.seeds) for name in config.schedules
    ]
    if config.mlp is not None:
        cells = grid(config.mlp.variances, config.mlp.rhos, (MIXED_START,))
        settings += [("B", name, cells, config.mlp.seeds) for name in config.mlp.schedules]
    rows = []
    for (model, name, cells, seeds), measured in zip(settings, outputs, strict=True):
        unit_cells = [cell for cell in cells for _ in range(seeds)]
        for length, arrays in measured.items():
            for row in compare(arrays, unit_cells, config, (model, name, length)):
                rows.append(
                    replace(
                        row,
                        prediction=classify(row.difference.mean, row.reference_gap, config),
                        band=band_of(row.reference_gap, config),
                        statement=statement_of(row.cell, penalty_of(config, row.variant)),
                    )
                )
    return rows


def register(context: Context) -> dict:
    """The pre-registration: the rules, the seeds, and every comparison's predicted outcome
    (:func:`predicted_rows`) and S13's signs in the label-mediated cells
    (:func:`.label_mediated.registered_signs`), computed before any model is trained on samples."""
    config = context.config
    if context.progress:
        print("    study 1: population dynamics of the pre-registration", flush=True)
    outputs = context.mapper(prediction_jobs(config, context.seed, context.device))
    return {
        "rules": rules_text(config),
        "seeds": {"A": config.seeds, "B": None if config.mlp is None else config.mlp.seeds},
        "predicted": [row.to_dict() for row in predicted_rows(config, outputs)],
        "s13": registered_signs(config, model_a.measured_cells(config)),
    }
