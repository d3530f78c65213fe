"""Study 1: the pre-registered regime map of CORE-MTL against gradient balancing (docs/THEORY.md
S3, S4, S6, S10, S11; claims C1, C4).

Where does CORE-MTL's OOD gap beat the best balancer's, where does it lose, and why? Grid: source
residual variance ``v`` (``Sigma_s = I``, ``Sigma_S = v I``; ``v = 1`` is the control
``Sigma_S = Sigma_s``), source-only correlation ``rho``, initial angle ``psi_0`` (model A), plain
gradient descent and AdamW, a short and a long run, random and worst-case shift directions and
``||dSigma||_F`` (``delta``).

Models. (A) the setting-S angle encoder ``R(psi) G^T`` with heads on ``Zhat_s`` and the exact
tied decoder (:mod:`experiments.synthetic.regime_angle`), trained full batch on ``a_train`` source
samples and evaluated in closed form (S1); (B) dual-stream MLPs with streams of width ``k`` (no
room to carry all of ``x`` in ``Z_s``), on linear and nonlinear mixing
(:mod:`experiments.synthetic.regime_mlp`), evaluated by Monte Carlo. All models of one balancer
are trained as one batched computation (:mod:`coremtl.batched`).

Methods. The balancers of :data:`~experiments.synthetic.regime_cells.BALANCERS` (EW, PCGrad,
MGDA, RLW, Aligned-MTL, UPGrad, CAGrad); CORE-MTL (EW + ``max(0, CKA_u)`` + the paper's
input-level CFA with gradient into the encoder + reconstruction), CKA only, and CORE-MTL with each
term dropped.

Pre-registration. Before any model is trained, :func:`predictions` (which takes the configuration
and the seed only) runs the exact population dynamics of every method of model A from each seed's
SCM and initialisation (same optimiser, rate and steps as the measurement, on the population risk
instead of samples; deterministic given the seed, RLW's random weights included), selects the
best balancer by population source risk, and classifies the mean over seeds of
``gap(CORE variant) - gap(best balancer)``: *better* below ``-band``, *worse* above ``band``,
else *no difference*, with ``band = band_relative |gap(best)| + band_absolute``. Model B's prediction is model A's at ``psi_0 = pi/4`` (a random MLP starts mixed),
an extrapolation from setting S that S10 says need not hold for a free encoder. The predictions
are computed (``registered_at``) before any model is trained on samples
(``measurement_started_at``).

Measurement and statistics. Paired seeds (same SCM, data and initialisation for every method);
per cell the difference ``CORE variant - best balancer`` per seed, its mean and standard error;
the best balancer is chosen per cell by the held-out source validation risk (training-domain
validation, the headline) and, in a labelled oracle row, by the target risk. No other
hyperparameter is tuned: weights, rates and steps are fixed in the configuration. A prediction
*held* when the two-sided 95% Student-t interval of the mean difference lies below 0 (better),
above 0 (worse), or contains 0 (no difference); that rule gives the verdict.

Diagnosis (a reading beside the registered rule, added after its first runs, never changing the
verdict): a prediction that did not hold is *contradicted* when the interval lies outside the
region the prediction asserts (``d < -band``, ``d > band`` or ``|d| <= band``, the regions of the
rule that made it), *off in size* when the interval overlaps that region but excludes the
predicted mean, else *inconclusive*; for an inconclusive better/worse prediction the number of
paired seeds the registered test would need to find the predicted mean with 80% power is given.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from experiments.synthetic.common import jsonable
from experiments.synthetic.regime_cells import (
    DIAGNOSES,
    GROUPS,
    METHODS,
    VARIANTS,
    Config,
    MLPConfig,
    Schedule,
    attach,
    balancer_names,
    band_of,
    classify,
    comparisons,
    display_delta,
    method_weights,
    summaries,
)

NAME = "Regime map: CORE-MTL against the best balancer (pre-registered)"
STATEMENTS = ("S3", "S4", "S6", "S10", "S11", "C1", "C4")


SMOKE_SCHEDULES = {
    "gd": Schedule(lr=0.1, short=5, long=40),
    "adamw": Schedule(lr=0.01, short=5, long=40, weight_decay=1e-2),
}
FAST_MLP = MLPConfig(
    variances=(0.1, 1.0),
    rhos=(0.0, 0.9),
    train=256,
    validation=256,
    evaluation=20_000,
    jacobian_points=1024,
    schedules={
        "gd": Schedule(lr=0.05, short=30, long=150),
        "adamw": Schedule(lr=3e-3, short=30, long=150, weight_decay=1e-2),
    },
)
"""The fast subset of model B: v in {0.1, 1}, rho in {0, 0.9}, both mixings, 256 training
samples, 150 steps, 20k Monte Carlo samples per environment (the full setting: the whole grid,
512 samples, 400 steps, 50k; sized to run in under 30 minutes on 2 cores with
``coremtl verify --full --jobs 2``)."""
CONFIGS = {
    "smoke": Config(
        seeds=4,
        variances=(0.1, 1.0),
        rhos=(0.0, 0.9),
        starts=(0.6,),
        deltas=(1.0,),
        a_train=128,
        a_validation=128,
        schedules=SMOKE_SCHEDULES,
        mlp=None,
    ),
    "fast": Config(
        variances=(0.01, 0.1, 1.0, 3.0),
        rhos=(0.0, 0.9),
        starts=(0.6,),
        deltas=(1.0, 4.0),
        a_train=256,
        a_validation=256,
        schedules={
            "gd": Schedule(lr=0.1, short=30, long=150),
            "adamw": Schedule(lr=0.01, short=30, long=150, weight_decay=1e-2),
        },
        mlp=FAST_MLP,
    ),
    "full": Config(),
}


def angle_units(config: Config, seed: int, starts: tuple[float, ...]) -> list[dict]:
    """One unit per (v, rho, psi_0, seed): the SCM draws (``beta``, ``G``, heads at start, random
    shift direction) depend on the seed only, so cells are paired as well as methods."""
    from experiments.synthetic.regime_angle import random_direction
    from scm.generate import haar_orthogonal

    units = []
    for v in config.variances:
        for rho in config.rhos:
            for psi0 in starts:
                for index in range(config.seeds):
                    rng = np.random.default_rng([seed, index, 1])
                    k, tasks = config.k, config.tasks
                    units.append(
                        {
                            "cell": (v, rho, psi0),
                            "seed": seed + index,
                            "v": v,
                            "rho": rho,
                            "psi0": psi0,
                            "noise_var": config.noise_std**2,
                            "beta": rng.standard_normal((k, tasks)),
                            "mixing": haar_orthogonal(2 * k, rng),
                            "head_w": config.head_scale
                            * rng.standard_normal((k, tasks))
                            / math.sqrt(k),
                            "direction": random_direction(k, rng),
                        }
                    )
    return units


def angle_scm(config: Config, unit: dict):
    from scm.model import LinearGaussianSCM, ResidualLaw

    k = config.k
    law = ResidualLaw(np.zeros(k), unit["v"] * np.eye(k))
    return LinearGaussianSCM(
        sigma_s=np.eye(k),
        source=law,
        target=law,
        beta=unit["beta"].T,
        noise_std=np.full(config.tasks, config.noise_std),
        mixing=unit["mixing"],
        rho=unit["rho"],
    )


def angle_runs(
    config: Config, units: list[dict], name: str, population: bool, data=None, device="cpu"
) -> dict:
    """Train every method of model A on ``units`` with optimiser ``name`` on ``device``; returns
    ``{method: {step: params}}`` at the short and long step counts. ``population=True`` trains on
    the exact population risk (the prediction), otherwise on ``data`` (the measurement)."""
    import torch

    from coremtl.batched import Settings, StackedAngle, draws, train, train_objective
    from experiments.synthetic import regime_angle as exact

    tensors = exact.unit_tensors(units, device=device)
    schedule = config.schedules[name]
    count = len(units)
    out: dict = {}
    for methods in GROUPS:
        reps = len(methods)

        def tile(t, reps=reps):
            return t.repeat(reps, *([1] * (t.ndim - 1)))

        head_b = torch.zeros(count * reps, 1, config.tasks, dtype=torch.float64, device=device)
        model = StackedAngle(
            tile(tensors["mixing"]), tile(tensors["psi0"]), tile(tensors["head_w"]), head_b
        )
        settings = Settings(
            steps=schedule.long,
            lr=schedule.lr,
            optimizer=name,
            weight_decay=schedule.weight_decay,
            balancer=balancer_names(methods, count),
        )
        weights = method_weights(config, list(methods), count, device)
        snapshots = (schedule.short, schedule.long)
        if population:
            joint = tile(exact.joint_covariance(tensors["v"], tensors["rho"], config.k))
            beta, noise = tile(tensors["beta"]), tile(tensors["noise_var"])[:, None]

            def objective(step, model=model, beta=beta, joint=joint, noise=noise, weights=weights):
                losses = exact.task_risks(model.params, beta, joint, noise)
                cka = exact.stream_cka(model.params["psi"], joint)
                swap = exact.swap_loss(model.params, beta, joint, noise)
                return losses, weights.cka * cka + weights.cfa * swap

            random = draws(settings, count * reps, 8, config.tasks, 0)
            saved = train_objective(model, settings, objective, random, snapshots)
        else:
            x, y = tile(data["x"].to(device)), tile(data["y"].to(device))
            random = draws(settings, count * reps, x.shape[1], config.tasks, 17)
            saved = train(model, x, y, settings, weights, random, snapshots)
        for index, method in enumerate(methods):
            rows = slice(index * count, (index + 1) * count)
            out[method] = {
                step: {key: value[rows] for key, value in params.items()}
                for step, params in saved.items()
            }
    return out


def angle_data(config: Config, units: list[dict], seed: int) -> tuple[dict, dict]:
    """Training and held-out validation source samples of every unit (float64 tensors)."""
    import torch

    from scm.sampling import sample

    splits = []
    for size, offset in ((config.a_train, 0), (config.a_validation, 500_000)):
        xs, ys = [], []
        for index, unit in enumerate(units):
            drawn = sample(angle_scm(config, unit), size, "source", [seed, index, offset, 7])
            xs.append(drawn.x)
            ys.append(drawn.y)
        splits.append({"x": torch.as_tensor(np.stack(xs)), "y": torch.as_tensor(np.stack(ys))})
    return splits[0], splits[1]


def angle_validation(params: dict, units: list[dict], validation: dict) -> np.ndarray:
    """Held-out source risk (mean over tasks) of each trained angle model."""
    import torch

    from coremtl.batched import StackedAngle
    from experiments.synthetic.regime_angle import to_numpy, unit_tensors

    device = params["psi"].device
    mixing = unit_tensors(units, device=device)["mixing"]
    x, y = validation["x"].to(device), validation["y"].to(device)
    with torch.no_grad():
        model = StackedAngle(mixing, params["psi"], params["head_w"], params["head_b"])
        predictions = model.predict(model.encode_semantic(x))
        return to_numpy((predictions - y).square().mean(dim=(1, 2)))


def evaluate_runs(runs: dict, units: list[dict], config: Config, validation=None) -> dict:
    """``{method: {step: measurements}}`` of model-A runs (closed form; validation risk from the
    held-out split when given, else the population source risk)."""
    from experiments.synthetic.regime_angle import evaluate, unit_tensors

    out: dict = {}
    for method, by_step in runs.items():
        out[method] = {}
        for step, params in by_step.items():
            tensors = unit_tensors(units, device=params["psi"].device)
            numbers = evaluate(params, tensors, config.deltas)
            numbers["validation"] = (
                angle_validation(params, units, validation)
                if validation is not None
                else numbers["source_risk"]
            )
            out[method][step] = numbers
    return out


def prediction_job(config: Config, seed: int, name: str, device: str = "cpu") -> dict:
    """The pre-registration of optimiser ``name``: predicted outcome per cell from the exact
    population dynamics of model A (no sample, no trained measurement enters). Returns
    ``{"A": rows, "B": rows}`` with ``rows`` keyed by ``"<optimiser>|<short or long>"``."""
    out: dict = {"A": {}, "B": {}}
    starts = tuple(dict.fromkeys((*config.starts, round(math.pi / 4, 6))))
    units = angle_units(config, seed, starts)
    unit_cells = [u["cell"] for u in units]
    cells = list(dict.fromkeys(unit_cells))
    schedule = config.schedules[name]
    runs = angle_runs(config, units, name, population=True, device=device)
    evaluated = evaluate_runs(runs, units, config)
    for label, step in (("short", schedule.short), ("long", schedule.long)):
        rows = comparisons(evaluated, cells, unit_cells, config, step)
        for row in rows:
            row["prediction"] = classify(row["mean"], row["reference_gap"], config)
            row["band"] = band_of(row["reference_gap"], config)
            row["statement"] = statement_of(row["cell"][0], row["cell"][1], row["variant"])
        key = f"{name}|{label}"
        out["A"][key] = [r for r in rows if r["cell"][2] in config.starts]
        out["B"][key] = [r for r in rows if r["cell"][2] == round(math.pi / 4, 6)]
    return out


def serial_map(jobs: list[tuple]) -> list:
    """Run ``(function, arguments)`` jobs one after the other (``coremtl verify --jobs`` maps
    them over worker processes instead; every job is a pure function of its arguments)."""
    return [function(*arguments) for function, arguments in jobs]


def predictions(config: Config, seed: int, mapper=serial_map, device: str = "cpu") -> dict:
    """The pre-registration of every optimiser (:func:`prediction_job`)."""
    out: dict = {"A": {}, "B": {}}
    jobs = [(prediction_job, (config, seed, name, device)) for name in config.schedules]
    for part in mapper(jobs):
        for model in out:
            out[model].update(part[model])
    return out


def statement_of(v: float, rho: float, variant: str) -> str:
    """The statement that drives the prediction of a cell (for the reader; the prediction itself
    comes from the population dynamics)."""
    from experiments.synthetic.regime_angle import critical_angle

    uses_cka = variant in VARIANTS and "cka" not in VARIANTS[variant]
    if rho != 0 and uses_cka:
        return f"S11: CKA is zero at psi_c = {critical_angle(v, rho):.3f}, not at 0"
    if v == 1.0 and uses_cka:
        return "S6: CKA blind at Sigma_S = Sigma_s"
    if v <= 0.01:
        return "S4: flat valley, source pull O(v)"
    return "S4 + S6: CKA pulls psi to the nearer of 0 and pi/2" if uses_cka else "S3/S4: no CKA"


def regime_of(v: float, rho: float) -> str:
    base = (
        "v -> 0 (v = 0.01)"
        if v <= 0.01
        else "control Sigma_S = Sigma_s (v = 1)"
        if v == 1.0
        else "v > 1"
        if v > 1
        else "small v (0.1, 0.3)"
    )
    return f"{base}, " + ("rho = 0" if rho == 0 else "rho > 0")


def angle_job(
    config: Config, seed: int, name: str, progress: bool = False, device: str = "cpu"
) -> dict:
    """Model A trained on samples with optimiser ``name``: ``{method: {step: measurements}}``
    (closed form; validation risk on a held-out source split)."""
    units = angle_units(config, seed, config.starts)
    train_split, validation = angle_data(config, units, seed)
    if progress:
        print(f"    study 1 model A, {name}: {len(units) * len(METHODS)} models", flush=True)
    runs = angle_runs(config, units, name, population=False, data=train_split, device=device)
    return evaluate_runs(runs, units, config, validation)


def angle_tables(config: Config, seed: int, evaluated: dict, predicted: dict) -> dict:
    """Model A's comparisons per optimiser and step label, with the predictions attached;
    ``evaluated`` is :func:`angle_job`'s output per optimiser."""
    unit_cells = [u["cell"] for u in angle_units(config, seed, config.starts)]
    cells = list(dict.fromkeys(unit_cells))
    out: dict = {}
    for name, schedule in config.schedules.items():
        for label, step in (("short", schedule.short), ("long", schedule.long)):
            key = f"{name}|{label}"
            headline = comparisons(evaluated[name], cells, unit_cells, config, step)
            oracle = comparisons(evaluated[name], cells, unit_cells, config, step, oracle=True)
            out[key] = {
                "validation": attach(headline, predicted[key], 3),
                "oracle": attach([r for r in oracle if r["baseline"] == "best"], predicted[key], 3),
                "summary": summaries(
                    evaluated[name], cells, unit_cells, step, display_delta(config)
                ),
            }
    return out


def measurement_jobs(
    config: Config, seed: int, progress: bool = False, device: str = "cpu"
) -> list[tuple]:
    """The training jobs of the measurement, ``(model, optimiser, function, arguments)``: model A
    per optimiser, model B per optimiser and chunk of units."""
    jobs = [
        ("A", name, angle_job, (config, seed, name, progress, device)) for name in config.schedules
    ]
    if config.mlp is not None:
        from experiments.synthetic.regime_mlp import mlp_chunks, mlp_job

        jobs += [
            ("B", name, mlp_job, (config, seed, name, start, progress, device))
            for name in config.mlp.schedules
            for start in mlp_chunks(config)
        ]
    return jobs


def regime_verdicts(model_rows: dict, config: Config) -> list[dict]:
    """Per model, optimiser, step label and regime: predictions held among the headline rows
    (CORE-MTL and CKA only against the best balancer, training-domain validation)."""
    out = []
    delta = display_delta(config)
    for model, by_key in model_rows.items():
        for key, tables in by_key.items():
            rows = [r for r in tables["validation"] if r["baseline"] == "best"]
            for regime in dict.fromkeys(regime_of(r["cell"][0], r["cell"][1]) for r in rows):
                chosen = [r for r in rows if regime_of(r["cell"][0], r["cell"][1]) == regime]
                core = [r for r in chosen if r["variant"] == "core-mtl" and r["delta"] == delta
                        and r["direction"] == "worst"]  # fmt: skip
                out.append({
                    "model": model, "setting": key, "regime": regime,
                    "cells": len(chosen), **diagnosis_counts(chosen),
                    "predicted": sorted({r["prediction"] for r in core}),
                    "core_minus_best": float(np.mean([r["mean"] for r in core])),
                    "core_minus_best_se": float(np.sqrt(np.mean([r["se"] ** 2 for r in core]))),
                    "measured": sorted({r["measured"] for r in core}),
                })  # fmt: skip
    return out


def control_rows(model_rows: dict) -> list[dict]:
    """S6: CKA only against EW at ``Sigma_S = Sigma_s``, ``rho = 0``."""
    return [
        r
        for tables in model_rows.get("A", {}).values()
        for r in tables["validation"]
        if r["variant"] == "cka only" and r["baseline"] == "ew" and r["cell"][0] == 1.0
        and r["cell"][1] == 0.0
    ]  # fmt: skip


def run(
    config: Config, seed: int = 0, device: str = "cpu", progress: bool = False, mapper=serial_map
) -> dict:
    """Pre-register, then train and measure; ``mapper`` runs lists of jobs (serially by default,
    over worker processes under ``coremtl verify --jobs``; the result is the same)."""
    pre_registration = register(config, seed, mapper, device)
    jobs = measurement_jobs(config, seed, progress, device)
    pre_registration["measurement_started_at"] = timestamp()
    outputs = mapper([(function, arguments) for _, _, function, arguments in jobs])
    return assemble(config, seed, pre_registration, outputs)


def timestamp() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def register(config: Config, seed: int, mapper=serial_map, device: str = "cpu") -> dict:
    """The pre-registration: the rules and every cell's predicted outcome, computed before any
    model is trained on samples (:func:`predictions`)."""
    import time

    begin = time.time()
    predicted = predictions(config, seed, mapper, device)
    pre_registration = {
        "rule": (
            "predicted from the exact population dynamics of model A (no samples); 'better' if the "
            f"mean over seeds of gap(variant) - gap(best balancer) < -band, 'worse' if > band, else "
            f"'no difference', band = {config.band_relative} |gap(baseline)| + "
            f"{config.band_absolute}; best balancer by population source risk; model B takes "
            "model A's prediction at psi_0 = pi/4 (an extrapolation, S10)"
        ),
        "held_rule": (
            f"the two-sided {config.confidence:.0%} Student-t interval of the measured mean "
            "difference (paired seeds) lies below 0 (better), above 0 (worse), or contains 0 "
            "(no difference)"
        ),
        "diagnosis_rule": (
            "added after the first runs, not part of the verdict: a prediction not held is "
            "'contradicted' when the measured interval is disjoint from the predicted region "
            "(d < -band, d > band, |d| <= band), 'off in size' when it overlaps that region but "
            "excludes the predicted mean, else 'inconclusive'"
        ),
        "selection": (
            "headline: best balancer per cell by held-out source validation risk (training-domain "
            "validation); oracle row: by target risk; no other hyperparameter is tuned"
        ),
        "seconds": time.time() - begin,
        "registered_at": timestamp(),
        "predictions": predicted,
    }
    return pre_registration


def assemble(config: Config, seed: int, pre_registration: dict, outputs: list) -> dict:
    """The study's result from the pre-registration and the outputs of
    :func:`measurement_jobs` (in their order)."""
    by_model: dict = {"A": {}, "B": {}}
    for (model, name, _, _), output in zip(measurement_jobs(config, seed), outputs, strict=True):
        by_model[model].setdefault(name, []).append(output)
    predicted = pre_registration["predictions"]
    evaluated_a = {name: parts[0] for name, parts in by_model["A"].items()}
    model_rows = {"A": angle_tables(config, seed, evaluated_a, predicted["A"])}
    if config.mlp is not None:
        from experiments.synthetic.regime_mlp import mlp_tables

        model_rows["B"] = mlp_tables(config, seed, by_model["B"], predicted["B"])
    regimes = regime_verdicts(model_rows, config)
    shares, diagnoses = {}, {}
    for model, by_key in model_rows.items():
        rows = [r for t in by_key.values() for r in t["validation"] if r["baseline"] == "best"]
        shares[model] = sum(r["held"] for r in rows) / max(1, len(rows))
        diagnoses[model] = diagnosis_summary(rows)
    control = control_rows(model_rows)
    control_held = all(r["held"] and r["prediction"] == "no difference" for r in control)
    a_ok = shares["A"] >= config.agree_share and control_held
    b_ok = shares.get("B", 1.0) >= config.agree_share
    verdict = "agrees" if a_ok and b_ok else "agrees only as qualified" if a_ok else "contradicts"
    finding = finding_line(model_rows, regimes, shares, diagnoses, control, config)
    return jsonable({
        "config": config, "pre_registration": pre_registration, "measured": model_rows,
        "regimes": regimes, "held_share": shares, "diagnosis": diagnoses, "s6_control": control,
        "s6_control_held": control_held, "finding": finding, "verdict": verdict,
    })  # fmt: skip


def diagnosis_counts(rows: list[dict]) -> dict[str, int]:
    """The number of rows of each diagnosis (:data:`regime_cells.DIAGNOSES`; ``held`` is the
    registered rule's count)."""
    return {name: sum(r["diagnosis"] == name for r in rows) for name in DIAGNOSES}


def diagnosis_summary(rows: list[dict]) -> dict:
    """Headline rows by diagnosis (:func:`regime_cells.diagnosis`), and for the inconclusive
    better/worse predictions the median number of paired seeds the registered test would need."""
    counts = diagnosis_counts(rows)
    needed = [r["seeds_needed"] for r in rows if r["diagnosis"] == "inconclusive"
              and r["seeds_needed"] is not None]  # fmt: skip
    counts["rows"] = len(rows)
    counts["median_seeds_needed_inconclusive"] = float(np.median(needed)) if needed else None
    return counts


def finding_line(model_rows, regimes, shares, diagnoses, control, config: Config) -> str:
    delta = display_delta(config)
    parts = [
        "pre-registered predictions held in "
        + ", ".join(f"{share:.0%} of model-{m} cells" for m, share in shares.items())
    ]
    for model, counts in diagnoses.items():
        needed = counts["median_seeds_needed_inconclusive"]
        parts.append(
            f"model {model} not held: {counts['contradicted']} of {counts['rows']} contradicted "
            f"(95% interval outside the predicted region), {counts['off in size']} off in size "
            f"(predicted mean outside the interval), {counts['inconclusive']} inconclusive, "
            f"{counts['diverged']} with a diverged run"
            + (f" (median {needed:.0f} paired seeds needed)" if needed is not None else "")
        )
    if control:
        worst = max(control, key=lambda r: abs(r["mean"]))
        parts.append(
            f"S6 control (v = 1, rho = 0): CKA only - EW within {abs(worst['mean']):.2g} "
            f"+- {worst['se']:.2g} ({sum(r['held'] for r in control)}/{len(control)} 'no difference')"
        )
    for entry in regimes:
        if entry["setting"].endswith("|long") and entry["model"] == "A":
            parts.append(
                f"A {entry['setting'].split('|')[0]} {entry['regime']}: CORE-MTL - best "
                f"{entry['core_minus_best']:+.3g} +- {entry['core_minus_best_se']:.2g} "
                f"(worst shift, ||dSigma||={delta}; predicted {'/'.join(entry['predicted'])}, "
                f"held {entry['held']}/{entry['cells']}, contradicted {entry['contradicted']}, "
                f"off in size {entry['off in size']})"
            )
    return "; ".join(parts)


def plot(result: dict, directory: Path) -> list[Path]:
    """Heat maps of the measured ``CORE-MTL - best balancer`` (worst-case shift, headline
    selection) per cell; each cell marked with the prediction (+ worse, - better, 0 none) and
    its diagnosis: held (check mark), contradicted (cross), off in size (~), inconclusive (?) or
    a diverged run (!)."""
    from experiments.synthetic.plotting import new_figure, save_figure

    config = result["config"]
    delta = 1.0 if 1.0 in config["deltas"] else config["deltas"][0]
    panels = [(m, key) for m, by_key in result["measured"].items() for key in by_key]
    figure, axes = new_figure(4, math.ceil(len(panels) / 4), width=3.6, height=3.0)
    symbols = {"better": "-", "worse": "+", "no difference": "0"}
    marks = {
        "held": "\u2713", "contradicted": "\u2717", "off in size": "~", "inconclusive": "?",
        "diverged": "!",
    }  # fmt: skip
    for axis, (model, key) in zip(axes.flat, panels, strict=False):
        rows = [
            r
            for r in result["measured"][model][key]["validation"]
            if r["variant"] == "core-mtl" and r["baseline"] == "best"
            and r["direction"] == "worst" and r["delta"] == delta
        ]  # fmt: skip
        variances = sorted({r["cell"][0] for r in rows})
        columns = sorted({tuple(r["cell"][1:]) for r in rows}, key=str)
        grid = np.full((len(variances), len(columns)), np.nan)
        for r in rows:
            i, j = variances.index(r["cell"][0]), columns.index(tuple(r["cell"][1:]))
            grid[i, j] = r["mean"]
        limit = np.nanmax(np.abs(grid)) or 1.0
        for r in rows:
            i, j = variances.index(r["cell"][0]), columns.index(tuple(r["cell"][1:]))
            dark = abs(grid[i, j]) > 0.6 * limit
            mark = marks[r["diagnosis"]] + symbols[r["prediction"]]
            axis.text(j, i, mark, ha="center", va="center", fontsize=7, color="w" if dark else "k")
        image = axis.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        axis.set_xticks(range(len(columns)), ["\n".join(map(str, c)) for c in columns], fontsize=6)
        axis.set_yticks(range(len(variances)), [str(v) for v in variances])
        axis.set_ylabel("v (Sigma_S = v I)")
        axis.set_xlabel("rho, psi_0" if model == "A" else "rho, mixing")
        axis.set_title(f"model {model}, {key.replace('|', ', ')}", fontsize=8)
        axis.grid(False)
        figure.colorbar(image, ax=axis, shrink=0.8, label="CORE-MTL - best gap")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(
        f"Study 1: CORE-MTL minus best balancer (validation-selected), worst-case shift "
        f"||dSigma||_F = {delta}; mark: held / contradicted / ~ off in size / ? inconclusive / "
        "! diverged, "
        "then the predicted sign",
        fontsize=8,
    )
    return save_figure(figure, directory, "study1_regime_map")
