"""The procedure that chooses the library's default CORE-MTL term weights (:mod:`coremtl.defaults`).

Benchmark: the rendered scenes of the shortcut suite
(:class:`experiments.synthetic.shortcuts.scenes.SceneBenchmark`: segmentation and depth, its
three-stage conv backbone), in its **source** environments only: the source law at each shortcut
strength ``p`` of ``strengths``. For each seed ``s`` (paired: the seed fixes the data of every
split and the backbone's initial weights, the same for every method), each environment ``p`` and
each method (Equal Weighting, and CORE-MTL at each point ``g = (lambda_CKA, lambda_CFA)`` of the
grid, the CFA probability and the reconstruction weight held fixed), a model is trained through
:func:`coremtl.train` on the environment's :data:`SPLITS` ``[0]`` and scored with
:func:`coremtl.evaluate` on its validation split :data:`SPLITS` ``[1]``, drawn from the same law.
A grid point is CORE-MTL exactly as ``coremtl.train("core-mtl", ...)`` runs it when the point's
weights are the defaults: the library's stage starts (:func:`coremtl.defaults.stage_starts`) and
its CKA warm-up on the run (:func:`coremtl.schedule.capped_cka_warmup`). No target split is drawn
(:func:`source_data` refuses one), and no model is scored on a law it did not train on, so the
criterion cannot see what a weight does out of distribution.

Criterion: LibMTL's ``Delta_m`` against EW on the same seed and environment (Maninis et al.,
"Attentive single-tasking of multiple tasks", CVPR 2019; Lin and Zhang, "LibMTL", JMLR 2023),
in percent with LibMTL's sign (positive = better than EW)::

    Delta(g, s, p) = 100 / T * sum_t 1 / |K_t| * sum_{k in K_t} (-1)^{l_k} (M_{g,k} - M_{EW,k}) / M_{EW,k},

the mean over the ``T`` tasks of the mean over each task's validation metrics ``K_t`` of
:data:`METRICS` (segmentation: mIoU and pixel accuracy; depth: mean squared error), ``l_k = 0``
when higher is better. A point's score is the mean over seeds and environments,
``C(g) = mean_s mean_p Delta(g, s, p)``, with the standard error over seeds of the per-seed means
``mean_p Delta(g, s, p)`` (:func:`experiments.stats.estimate`; the winner's margin over another
point is the :func:`experiments.stats.paired_difference` of their per-seed means). The winner
maximises ``C``; points with equal scores go to the smaller weights (:func:`tie_order`: smaller
``lambda_CKA + lambda_CFA``, then smaller ``lambda_CKA``).

Training-domain validation (DomainBed's term: Gulrajani and Lopez-Paz, ICLR 2021) rewards
in-distribution accuracy only; a weight that removes a shortcut costs source accuracy and gains
nothing the criterion can see, so the procedure may well favour small weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.stats import Estimate, estimate, paired_difference
from experiments.synthetic.common import jsonable, seeds_for
from experiments.synthetic.shortcuts.benchmarks import Law, inputs_and_labels
from experiments.synthetic.shortcuts.runs import Sizes
from experiments.synthetic.shortcuts.scenes import SceneBenchmark, SceneSetup
from scm.validation import InvalidParameterError, check_in_range

SPLITS = ("weights_train", "weights_val")
"""The only splits the procedure draws (training, validation); their names keep their layouts
apart from those of the shortcut suite's splits."""
METRICS = {
    "segmentation/miou": True,
    "segmentation/accuracy": True,
    "depth/mse": False,
}
"""The validation metrics of :func:`coremtl.evaluate` the criterion reads, each with whether
higher is better; a metric ``<task>/<name>`` belongs to task ``<task>``."""
EW = "ew"
"""The reference method (its name in :data:`coremtl.METHODS`)."""
Point = tuple[float, float]
"""A grid point ``(cka_weight, cfa_weight)``."""
SCENE_SIZES = Sizes(
    train=192, val=96, test=192, probe=256, epochs=8, batch_size=16, learning_rate=1e-2
)
"""The procedure's training on the rendered scenes (the record's configuration; a test keeps the
two equal, so a change here needs a rerun of ``coremtl select-weights``)."""
FULL_SCENE_SIZES = Sizes(
    train=384, val=128, test=256, probe=256, epochs=12, batch_size=16, learning_rate=1e-2
)


@dataclass(frozen=True)
class SelectionConfig:
    """The benchmark (``scene``; ``sizes``: of them the procedure reads ``train``, ``val``,
    ``epochs``, ``batch_size`` and ``learning_rate``; ``seeds`` paired seeds; source
    ``strengths``), the grid (``cka_weights`` x ``cfa_weights``) and the weights held fixed."""

    scene: SceneSetup = field(default_factory=SceneSetup)
    sizes: Sizes = SCENE_SIZES
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
        weight = self.reconstruction_weight
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise InvalidParameterError(
                f"reconstruction_weight: expected a positive weight (the reconstruction trains "
                f"the decoder that CFA decodes with), got {weight!r}"
            )

    def grid(self) -> list[Point]:
        return [(cka, cfa) for cka in self.cka_weights for cfa in self.cfa_weights]

    def weights(self, point: Point) -> dict[str, float]:
        """The record's weights of a grid point."""
        return {
            "cka": point[0],
            "cfa": point[1],
            "cfa_probability": self.cfa_probability,
            "reconstruction": self.reconstruction_weight,
        }

    def core_options(self, point: Point) -> dict[str, Any]:
        """The options of ``coremtl.train("core-mtl", ...)`` at ``point``: the objective with the
        point's weights and the CKA warm-up the library gives its default objective on this run,
        and the library's default stages (module docstring)."""
        from coremtl.defaults import stage_starts
        from coremtl.objective import CoreMTLObjective
        from coremtl.schedule import capped_cka_warmup

        epochs = self.sizes.epochs
        stages = stage_starts(epochs)
        steps_per_epoch = self.sizes.train // self.sizes.batch_size
        objective = CoreMTLObjective(
            cka_weight=point[0],
            cka_warmup_steps=capped_cka_warmup(epochs, stages[1], steps_per_epoch),
            cfa_weight=point[1],
            cfa_probability=self.cfa_probability,
            reconstruction_weight=self.reconstruction_weight,
        )
        return {"objective": objective, "stages": stages}


CONFIGS = {
    "smoke": SelectionConfig(
        scene=SceneSetup(resolution=(16, 16)),
        sizes=dataclasses.replace(SCENE_SIZES, train=32, val=16, epochs=2),
        seeds=2,
    ),
    "fast": SelectionConfig(),
    "full": SelectionConfig(sizes=FULL_SCENE_SIZES, seeds=10),
}


def point_name(point: Point) -> str:
    return f"CKA {point[0]:g}, CFA {point[1]:g}"


def source_data(benchmark: SceneBenchmark, seed: int, split: str, n: int, strength: float) -> dict:
    """``n`` samples of ``split`` (one of :data:`SPLITS`) of the source law at shortcut
    ``strength``; the target law cannot be asked for."""
    if split not in SPLITS:
        raise InvalidParameterError(f"split: expected one of {SPLITS}, got {split!r}")
    if strength is None or isinstance(strength, bool):
        raise InvalidParameterError(
            f"strength: expected a source shortcut strength in [0, 1], got {strength!r}"
        )
    law = Law("source", check_in_range(strength, "strength", 0.0, 1.0))
    return inputs_and_labels(benchmark.draw(seed, split, n, law), benchmark.tasks)


def improvement_over_ew(metrics: Mapping[str, float], ew: Mapping[str, float]) -> float:
    """``Delta(g, s, p)`` of the module docstring, in percent, positive = better than EW."""
    missing = [key for key in METRICS if key not in metrics or key not in ew]
    if missing:
        raise InvalidParameterError(f"metrics: expected {list(METRICS)}, missing {missing}")
    by_task: dict[str, list[float]] = {}
    for key, higher_is_better in METRICS.items():
        if ew[key] == 0:
            raise InvalidParameterError(f"ew[{key!r}]: the reference metric must be non-zero")
        relative = (metrics[key] - ew[key]) / ew[key]
        by_task.setdefault(key.split("/")[0], []).append(
            relative if higher_is_better else -relative
        )
    return 100.0 * float(np.mean([np.mean(values) for values in by_task.values()]))


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

    import coremtl

    benchmark = SceneBenchmark(config.scene)
    tasks, sizes = benchmark.tasks, config.sizes
    methods: list[tuple[str, str, Point | None]] = [(EW, EW, None)]
    methods += [(point_name(point), "core-mtl", point) for point in config.grid()]
    seeds = seeds_for(seed, config.seeds)
    records: list[dict] = []
    bar = tqdm(
        total=len(seeds) * len(config.strengths) * len(methods),
        desc="select-weights runs",
        disable=not progress,
    )
    for run_seed in seeds:
        for strength in config.strengths:
            train = source_data(benchmark, run_seed, SPLITS[0], sizes.train, strength)
            validation = source_data(benchmark, run_seed, SPLITS[1], sizes.val, strength)
            for name, method, point in methods:
                begin = time.perf_counter()
                result = coremtl.train(
                    method,
                    benchmark.backbone(run_seed),
                    tasks,
                    train,
                    epochs=sizes.epochs,
                    batch_size=sizes.batch_size,
                    learning_rate=sizes.learning_rate,
                    seed=run_seed,
                    device=device,
                    **(config.core_options(point) if point is not None else {}),
                )
                seconds = time.perf_counter() - begin
                records.append(
                    {
                        "seed": run_seed,
                        "strength": strength,
                        "method": name,
                        "weights": config.weights(point) if point is not None else None,
                        "source_val": coremtl.evaluate(
                            result.model, validation, tasks, device=device
                        ),
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
                improvement_over_ew(metrics[(s, p, name)], metrics[(s, p, EW)]) for s in seeds
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
            "weights": config.weights(winner),
            "criterion": points[point_name(winner)]["criterion"],
        },
        "winner_minus": margins,
    }


CRITERION = (
    "C(g) = mean over seeds and source environments of Delta_m(g vs EW, same seed and "
    "environment) on the source validation split, in percent, LibMTL's sign (positive = better "
    "than EW): the mean over tasks of the mean over each task's metrics among "
    f"{', '.join(METRICS)} (coremtl.evaluate); SE over seeds of the per-seed means (ddof = 1); "
    "winner = argmax C, equal scores to the smaller cka + cfa, then the smaller cka"
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
