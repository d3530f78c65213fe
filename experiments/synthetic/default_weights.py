"""The procedure that chooses the library's default CORE-MTL term weights (:mod:`coremtl.defaults`).

Benchmark: the rendered scenes of study 9 (:mod:`experiments.synthetic.shortcut_scenes`: the
dual-stream conv net, segmentation and depth, the toolkit's trainer), in its **source**
environments only: the source law at each shortcut strength ``p`` of ``strengths``. For each
seed ``s`` (paired: the seed fixes the data of every split and the initialisation, the same for
every method), each environment ``p`` and each method (Equal Weighting, and EW plus the CORE-MTL
terms at each point ``g = (lambda_CKA, lambda_CFA)`` of the grid, the CFA probability and the
reconstruction weight held fixed), a model trains on the environment's :data:`SPLITS` ``[0]`` and
is scored on its validation split :data:`SPLITS` ``[1]``, drawn from the same law. No target
split is rendered (:func:`source_data` refuses one), and no model is scored on a law it did not
train on, so the criterion cannot see what a weight does out of distribution.

Criterion: LibMTL's ``Delta_m`` against EW on the same seed and environment (Maninis et al.,
"Attentive single-tasking of multiple tasks", CVPR 2019; Lin and Zhang, "LibMTL", JMLR 2023),
in percent with LibMTL's sign (positive = better than EW)::

    Delta(g, s, p) = 100 / |K| * sum_{k in K} (-1)^{l_k} (M_{g,k} - M_{EW,k}) / M_{EW,k},

``l_k = 0`` when higher is better, over the validation metrics ``K`` of :data:`METRICS` (two per
task, so the mean over ``K`` is LibMTL's mean over tasks of the per-task means;
:func:`experiments.vision.metrics.delta_m`). A point's score is the mean over seeds and
environments, ``C(g) = mean_s mean_p Delta(g, s, p)``, with the standard error over seeds of the
per-seed means ``mean_p Delta(g, s, p)`` (:func:`experiments.stats.estimate`; the winner's margin
over another point is the :func:`experiments.stats.paired_difference` of their per-seed means). The winner maximises ``C``; points with
equal scores go to the smaller weights (:func:`tie_order`: smaller ``lambda_CKA + lambda_CFA``,
then smaller ``lambda_CKA``).

Training-domain validation (DomainBed's term: Gulrajani and Lopez-Paz, ICLR 2021) rewards
in-distribution accuracy only; a weight that removes a shortcut costs source accuracy and gains
nothing the criterion can see, so the procedure may well favour small weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from experiments.stats import Estimate, estimate, paired_difference
from experiments.synthetic.common import jsonable, seeds_for
from experiments.synthetic.shortcut_scenes import (
    Method,
    ShortcutSetup,
    render,
    scene_config,
    task_metrics,
    train,
)
from scm.validation import InvalidParameterError, check_in_range

SPLITS = ("weights_train", "weights_val")
"""The only splits the procedure renders (training, validation); their names keep their layouts
apart from those of study 9's splits."""
METRICS = (
    "segmentation/miou",
    "segmentation/pixel_accuracy",
    "depth/abs_err",
    "depth/rel_err",
)
Point = tuple[float, float]
"""A grid point ``(cka_weight, cfa_weight)``."""


@dataclass(frozen=True)
class SelectionConfig:
    """The benchmark (``setup``, ``seeds`` paired seeds, source ``strengths``), the grid
    (``cka_weights`` x ``cfa_weights``) and the weights held fixed."""

    setup: ShortcutSetup = field(default_factory=ShortcutSetup)
    seeds: int = 5
    strengths: tuple[float, ...] = (0.0, 0.95)
    cka_weights: tuple[float, ...] = (0.01, 0.1, 1.0)
    cfa_weights: tuple[float, ...] = (0.1, 0.5, 2.0)
    cfa_probability: float = 0.5
    reconstruction_weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 2:
            raise InvalidParameterError(
                f"seeds: expected an integer >= 2 (the SE is over seeds), got {self.seeds!r}"
            )
        if not self.strengths:
            raise InvalidParameterError("strengths: expected at least one source strength")
        for strength in self.strengths:
            check_in_range(strength, "strengths", 0.0, 1.0)
        for name in ("cka_weights", "cfa_weights"):
            weights = getattr(self, name)
            if not weights or any(
                not isinstance(w, int | float) or not math.isfinite(w) or w <= 0 for w in weights
            ):
                raise InvalidParameterError(
                    f"{name}: expected a non-empty tuple of positive weights, got {weights!r}"
                )
        check_in_range(self.cfa_probability, "cfa_probability", 0.0, 1.0)
        check_in_range(self.reconstruction_weight, "reconstruction_weight", 0.0, math.inf)

    def grid(self) -> list[Point]:
        return [(cka, cfa) for cka in self.cka_weights for cfa in self.cfa_weights]

    def method(self, point: Point) -> Method:
        cka, cfa = point
        return Method(
            point_name(point), "ew", cka, cfa, self.cfa_probability, self.reconstruction_weight
        )


CONFIGS = {
    "smoke": SelectionConfig(
        setup=ShortcutSetup(resolution=(16, 16), train=64, val=32, epochs=3), seeds=2
    ),
    "fast": SelectionConfig(),
    "full": SelectionConfig(setup=ShortcutSetup(train=384, val=256, epochs=8), seeds=10),
}


def point_name(point: Point) -> str:
    return f"CKA {point[0]:g}, CFA {point[1]:g}"


def source_data(setup: ShortcutSetup, seed: int, split: str, n: int, strength: float) -> dict:
    """``n`` samples of ``split`` (one of :data:`SPLITS`) of the source law at shortcut
    ``strength``; the target law cannot be asked for."""
    if split not in SPLITS:
        raise InvalidParameterError(f"split: expected one of {SPLITS}, got {split!r}")
    if strength is None or isinstance(strength, bool):
        raise InvalidParameterError(
            f"strength: expected a source shortcut strength in [0, 1], got {strength!r}"
        )
    return render(setup, seed, split, n, check_in_range(strength, "strength", 0.0, 1.0))


def improvement_over_ew(metrics: Mapping[str, float], ew: Mapping[str, float]) -> float:
    """``Delta(g, s, p)`` of the module docstring, in percent, positive = better than EW."""
    from experiments.vision.metrics import delta_m

    missing = [key for key in METRICS if key not in metrics or key not in ew]
    if missing:
        raise InvalidParameterError(f"metrics: expected {list(METRICS)}, missing {missing}")
    return delta_m({k: metrics[k] for k in METRICS}, {k: ew[k] for k in METRICS}, sign=1)


def record_of(found: Estimate) -> dict:
    """The record's ``{mean, se, n}`` of an estimate over seeds (:mod:`experiments.stats`)."""
    return {"mean": found.mean, "se": found.se, "n": found.n}


def tie_order(point: Point) -> tuple[float, float, float]:
    """Sort key of equal scores: the smaller total weight first, then the smaller CKA weight."""
    return (point[0] + point[1], point[0], point[1])


def select(scores: Mapping[Point, float]) -> Point:
    """The point of highest score; equal scores go to the first in :func:`tie_order`."""
    if not scores:
        raise InvalidParameterError("scores: expected at least one grid point")
    for point, score in scores.items():
        if not isinstance(score, int | float) or not math.isfinite(score):
            raise InvalidParameterError(
                f"scores[{point_name(point)}]: expected a finite number, got {score!r}"
            )
    best = max(scores.values())
    return min((point for point, score in scores.items() if score == best), key=tie_order)


def train_and_score(
    config: SelectionConfig, seed: int, device: str, progress: bool = False
) -> list[dict]:
    """One record per (seed, strength, method): the source-validation metrics of EW and of every
    grid point, each trained on the source training split of its environment."""
    from tqdm import tqdm

    setup = config.setup
    num_classes = scene_config(setup, 0).num_classes
    methods = [Method("EW"), *(config.method(point) for point in config.grid())]
    seeds = seeds_for(seed, config.seeds)
    records: list[dict] = []
    bar = tqdm(
        total=len(seeds) * len(config.strengths) * len(methods),
        desc="select-weights runs",
        disable=not progress,
    )
    for run_seed in seeds:
        for strength in config.strengths:
            train_data = source_data(setup, run_seed, SPLITS[0], setup.train, strength)
            val_data = source_data(setup, run_seed, SPLITS[1], setup.val, strength)
            for method in methods:
                begin = time.perf_counter()
                model = train(setup, method, train_data, run_seed, device)
                seconds = time.perf_counter() - begin
                records.append(
                    {
                        "seed": run_seed,
                        "strength": strength,
                        "method": method.name,
                        "weights": method.weights() if method.is_core else None,
                        "source_val": task_metrics(model, val_data, num_classes, device),
                        "train_seconds": seconds,
                    }
                )
                bar.update(1)
    bar.close()
    return records


def summarise(config: SelectionConfig, records: list[dict]) -> dict:
    """Per grid point: ``Delta`` per seed and environment, its per-seed means, the score ``C``
    with its SE; the winner, and its paired margin over every other point."""
    metrics = {(r["seed"], r["strength"], r["method"]): r["source_val"] for r in records}
    seeds = sorted({r["seed"] for r in records})
    points: dict[str, dict] = {}
    per_seed: dict[Point, list[float]] = {}
    for point in config.grid():
        name = point_name(point)
        by_strength = {
            f"{p:g}": [
                improvement_over_ew(metrics[(s, p, name)], metrics[(s, p, "EW")]) for s in seeds
            ]
            for p in config.strengths
        }
        per_seed[point] = [
            float(np.mean([by_strength[f"{p:g}"][i] for p in config.strengths]))
            for i in range(len(seeds))
        ]
        points[name] = {
            "cka_weight": point[0],
            "cfa_weight": point[1],
            "delta_by_strength": by_strength,
            "per_strength": {p: record_of(estimate(values)) for p, values in by_strength.items()},
            "per_seed": per_seed[point],
            "criterion": record_of(estimate(per_seed[point])),
        }
    scores = {point: points[point_name(point)]["criterion"]["mean"] for point in config.grid()}
    winner = select(scores)
    ranking = sorted(config.grid(), key=lambda point: (-scores[point], tie_order(point)))
    margins = {
        point_name(point): record_of(paired_difference(per_seed[winner], per_seed[point]))
        for point in ranking
        if point != winner
    }
    return {
        "seeds": seeds,
        "points": points,
        "ranking": [point_name(point) for point in ranking],
        "winner": {
            "name": point_name(winner),
            "weights": config.method(winner).weights(),
            "criterion": points[point_name(winner)]["criterion"],
        },
        "winner_minus": margins,
    }


CRITERION = (
    "C(g) = mean over seeds and source environments of Delta_m(g vs EW, same seed and "
    "environment) on the source validation split, in percent, LibMTL's sign (positive = better "
    f"than EW), over {', '.join(METRICS)} (two metrics per task); SE over seeds of the per-seed "
    "means (ddof = 1); winner = argmax C, equal scores to the smaller cka + cfa, then the "
    "smaller cka"
)


def run(config: SelectionConfig, seed: int = 0, device: str = "cpu", progress: bool = False):
    """The whole procedure: train, score and select; JSON values only."""
    cpu_start = time.process_time()
    begin = time.perf_counter()
    records = train_and_score(config, seed, device, progress)
    result = {
        "procedure": "experiments.synthetic.default_weights (module docstring)",
        "criterion": CRITERION,
        "splits_rendered": list(SPLITS),
        "config": jsonable(config),
        "grid": {
            "cka_weight": list(config.cka_weights),
            "cfa_weight": list(config.cfa_weights),
            "fixed": {
                "cfa_probability": config.cfa_probability,
                "reconstruction": config.reconstruction_weight,
            },
        },
        "records": records,
        **summarise(config, records),
        "train_seconds": time.perf_counter() - begin,
        "cpu_seconds": time.process_time() - cpu_start,
    }
    return jsonable(result)
