"""Study 9: the class-hue shortcut on rendered scenes (Colored-Cityscapes at CPU scale).

Source: rendered scenes whose class albedo takes the class's own hue with probability ``p`` (the
shortcut strength, swept). Two target environments, both evaluated for every trained model:

- random hue: the same law with hue independent of the class (a model that reads the class from
  the hue is wrong at random);
- permuted hue (Colored-Cityscapes' target): the same law in which, with probability
  ``permuted_strength`` (1 by default), class ``c`` takes the hue ``pi(c) / C`` of class
  ``pi(c)``, for a derangement ``pi`` of the ``C`` classes drawn from each seed
  (:func:`experiments.vision.scenes.hue_derangement`, recorded as ``hue_permutations``): a model
  that reads the class from the hue is wrong on every class, systematically.

The two targets render the same split names, so their images share layouts and every residual
draw but the hue: per seed, permuted minus random is a paired difference. Tasks: segmentation and
depth, 32x32 images, a small dual-stream conv net (:mod:`experiments.synthetic.shortcut_scenes`),
every run through :class:`coremtl.trainer.Trainer`; the permuted target only adds evaluations, no
training run.

Methods: EW, PCGrad, MGDA (:func:`coremtl.balancers.make_balancer`); CORE-MTL with the paper's
CFA (decode ``(Z_s(i), Z_r(pi(i)))``, re-encode with frozen batch norm: ``cfa_mode='input'``) at
the library's default weights (:mod:`coremtl.defaults`, every weight passed explicitly), its
ablations (each term dropped, CKA only), and sweeps of the CFA and CKA
weights at one shortcut strength.

Statistics. Seeds are paired: a seed fixes the data (layouts and appearance of every split) and
the initialisation, the same for every method. Differences are per-seed differences, reported as
``mean +- SE`` (``SE = std / sqrt(n)``, ``ddof = 1``), "more than 2 SE" is the test. Selection
(DomainBed's convention): the best balancer and the "selected" CORE-MTL setting are the ones with
the highest source-validation mIoU (training-domain validation, the headline; one selection for
both targets); the target-oracle rows pick, for each target environment, by that environment's
target-validation mIoU and are labelled as such. Target numbers are on a separate target test
split of each environment.

The predictions are written into the result before anything is trained (``predictions``, with the
time ``registered_at``), and each is scored against the measurement afterwards.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coremtl import defaults as method_defaults
from experiments.synthetic.common import jsonable, seeds_for
from experiments.synthetic.shortcut_scenes import (
    Method,
    ShortcutSetup,
    counterfactual_transfer,
    hue_class_agreement,
    render,
    scene_config,
    stream_probes,
    task_metrics,
    train,
)
from experiments.vision.scenes import hue_derangement

NAME = "Class-hue shortcut on rendered scenes"
STATEMENTS = ("C1", "C4")
METRIC = "segmentation/miou"
LIBRARY_DEFAULTS = {
    "cka": method_defaults.CKA_WEIGHT,
    "cfa": method_defaults.CFA_WEIGHT,
    "cfa_probability": method_defaults.CFA_PROBABILITY,
    "reconstruction": method_defaults.RECONSTRUCTION_WEIGHT,
}
BALANCERS = ("EW", "PCGrad", "MGDA")
PROBE_ENCODES = 0.75
"""A hue-probe accuracy above this (chance 0.5) counts as "the stream still encodes hue"."""


def core(name: str, cka: float, cfa: float, reconstruction: float, probability: float = 0.5):
    return Method(name, "ew", cka, cfa, probability, reconstruction)


def method_table(config: Config) -> dict[str, Method]:
    """Every method name of the study and its configuration."""
    defaults = LIBRARY_DEFAULTS
    cka, cfa, rec = defaults["cka"], defaults["cfa"], defaults["reconstruction"]
    table = {
        "EW": Method("EW"),
        "PCGrad": Method("PCGrad", "pcgrad"),
        "MGDA": Method("MGDA", "mgda"),
        "CORE-MTL": core("CORE-MTL", cka, cfa, rec),
        "w/o CKA": core("w/o CKA", 0.0, cfa, rec),
        "w/o CFA": core("w/o CFA", cka, 0.0, rec),
        "w/o rec": core("w/o rec", cka, cfa, 0.0),
        "CKA only": core("CKA only", cka, 0.0, 0.0),
    }
    for weight in config.cfa_sweep:
        table[f"CFA {weight:g}"] = core(f"CFA {weight:g}", cka, weight, rec)
    for weight in config.cka_sweep:
        table[f"CKA {weight:g}"] = core(f"CKA {weight:g}", weight, cfa, rec)
    return table


@dataclass(frozen=True)
class Config:
    """``strengths``: shortcut strengths trained with ``grid_methods``; ``sweep_strength``: the
    strength at which the balancers, the ablations and the CFA / CKA sweeps also train;
    ``permuted_strength``: the probability that a class takes the hue of ``pi(c)`` in the
    permuted-hue target."""

    setup: ShortcutSetup = field(default_factory=ShortcutSetup)
    seeds: int = 3
    strengths: tuple[float, ...] = (0.0, 0.95, 1.0)
    grid_methods: tuple[str, ...] = ("EW", "CORE-MTL")
    sweep_strength: float = 0.95
    sweep_methods: tuple[str, ...] = (
        "PCGrad",
        "MGDA",
        "w/o CKA",
        "w/o CFA",
        "w/o rec",
        "CKA only",
    )
    cfa_sweep: tuple[float, ...] = (4.0,)
    cka_sweep: tuple[float, ...] = (10.0,)
    permuted_strength: float = 1.0


CONFIGS = {
    "smoke": Config(
        setup=ShortcutSetup(resolution=(16, 16), train=64, val=32, test=64, probe=64, epochs=3),
        seeds=2,
        strengths=(0.0, 1.0),
        sweep_strength=1.0,
        sweep_methods=("PCGrad", "CKA only"),
        cfa_sweep=(2.0,),
        cka_sweep=(1.0,),
    ),
    "fast": Config(),
    "full": Config(
        setup=ShortcutSetup(train=384, epochs=8),
        seeds=5,
        strengths=(0.0, 0.5, 0.8, 0.95, 1.0),
        grid_methods=("EW", "PCGrad", "MGDA", "CORE-MTL"),
        sweep_methods=("w/o CKA", "w/o CFA", "w/o rec", "CKA only"),
        cfa_sweep=(1.0, 2.0, 4.0, 8.0),
        cka_sweep=(0.01, 1.0, 10.0),
    ),
}


def jobs(config: Config) -> list[tuple[float, str]]:
    """The ``(strength, method)`` pairs trained for every seed."""
    pairs = [(strength, name) for strength in config.strengths for name in config.grid_methods]
    extra = [
        *config.sweep_methods,
        *(f"CFA {w:g}" for w in config.cfa_sweep),
        *(f"CKA {w:g}" for w in config.cka_sweep),
        *(name for name in ("CORE-MTL", "EW") if name not in config.grid_methods),
    ]
    pairs += [(config.sweep_strength, name) for name in extra]
    return list(dict.fromkeys(pairs))


def core_candidates(config: Config) -> list[str]:
    """The CORE-MTL settings among which validation selects (library weights and the sweeps)."""
    return [
        "CORE-MTL",
        *(f"CFA {w:g}" for w in config.cfa_sweep),
        *(f"CKA {w:g}" for w in config.cka_sweep),
    ]


def predictions(config: Config) -> list[dict]:
    """The pre-registered outcomes, from what the method claims and what issue 13 reports."""
    p = config.sweep_strength
    rows = [
        {
            "id": "P1 shortcut exists",
            "statement": f"EW's target mIoU at shortcut {p:g} is below its target mIoU without "
            "the shortcut (p = 0) by more than 2 SE",
            "from": "construction: hue names the class in the source only",
        },
        {
            "id": "P2 balancers do not remove it",
            "statement": f"at p = {p:g}, PCGrad and MGDA are not above EW on target mIoU by more "
            "than 2 SE",
            "from": "C1 / S3-S4: gradient manipulation reweights losses, it does not change what "
            "the features encode",
        },
        {
            "id": "P3 library weights move it little",
            "statement": f"at p = {p:g}, CORE-MTL at the library weights recovers less than half "
            "of EW's shortcut drop, and its Z_s still encodes hue (probe accuracy > "
            f"{PROBE_ENCODES})",
            "from": "issue 13: with the defaults, target accuracy moved a few points, Z_s probe "
            "~1.0, debiased CKA ~0.06",
        },
        {
            "id": "P4 CFA in proportion to its strength",
            "statement": "target mIoU increases with the CFA weight (the per-seed least-squares "
            "slope against log(1 + weight), weights 0 = w/o CFA, the library's "
            f"{LIBRARY_DEFAULTS['cfa']:g} and the sweep, "
            "is above 0 by more than 2 SE)",
            "from": "the method: CFA trains the heads on images whose residual is swapped; "
            "issue 13: a much stronger CFA removed much of the shortcut",
        },
        {
            "id": "P5 CKA alone does not",
            "statement": f"at p = {p:g}, CKA only is not above EW on target mIoU by more than 2 SE "
            f"and its Z_s still encodes hue (probe accuracy > {PROBE_ENCODES})",
            "from": "S6 / C4: a small pooled linear CKA does not mean Z_s is free of the residual "
            "(a stream can encode hue nonlinearly or spatially)",
        },
        {
            "id": "P6 stronger CKA does not help",
            "statement": "the strongest CKA weight of the sweep has a lower mean target mIoU than "
            "the library weights",
            "from": "issue 13: a stronger CKA weight made the shortcut worse",
        },
        {
            "id": "P7 training-domain validation does not pick the strongest CFA",
            "statement": "the setting selected by source-validation mIoU is not the one with the "
            "largest CFA weight",
            "from": "the shortcut helps on the source, so removing it costs source accuracy",
        },
    ]
    if 1.0 in config.strengths and config.sweep_strength != 1.0:
        rows.append(
            {
                "id": "P8 no variation, no counterfactual",
                "statement": "at p = 1 CORE-MTL is not above EW on target mIoU by more than 2 SE",
                "from": "CFA swaps residuals between source samples; at p = 1 every source image "
                "has the same class hues, so no swap breaks the tie",
            }
        )
    rows.append(
        {
            "id": "P9 the permuted hue misleads",
            "statement": f"at p = {p:g}, EW's target mIoU on the permuted-hue target is below its "
            "target mIoU on the random-hue target by more than 2 SE",
            "from": "construction: a model that reads the class from the hue is wrong on every "
            "class when the hue is that of pi(c), and only at random when the hue is random",
        }
    )
    if 0.0 in config.strengths and p != 0.0:
        rows.append(
            {
                "id": "P10 the misleading is the shortcut's",
                "statement": f"EW's random-minus-permuted target mIoU is larger at p = {p:g} than "
                "at p = 0 by more than 2 SE",
                "from": "at p = 0 hue carries no class, so the permuted target is only a shift "
                "of the hue law (class hues c/C around the circle, the palette over 0.4 of it); "
                "what the shortcut adds is the reading of pi(c) for c",
            }
        )
    rows.append(
        {
            "id": "P11 a smaller permuted drop if and only if the shortcut is removed",
            "statement": f"at p = {p:g}, for every CORE-MTL setting (library weights, ablations, "
            "sweeps): its permuted-minus-random drop is smaller than EW's by more than 2 SE if "
            "and only if its random-hue target mIoU is above EW's by more than 2 SE",
            "from": "the permuted target asks the random one's question more sharply: a model "
            "that reads less of the class from the hue loses less when the hue lies, and gains "
            "when the hue is random",
        }
    )
    return rows


def paired(values_a: list[float], values_b: list[float]) -> dict:
    """``mean +- SE`` of the per-seed differences ``a - b``."""
    difference = np.asarray(values_a, dtype=float) - np.asarray(values_b, dtype=float)
    se = float(difference.std(ddof=1) / math.sqrt(difference.size)) if difference.size > 1 else 0.0
    return {"mean": float(difference.mean()), "se": se, "n": int(difference.size)}


def above(difference: dict) -> bool:
    """More than 2 SE above zero (never with a single seed)."""
    return difference["n"] > 1 and difference["mean"] > 2 * difference["se"]


def mean_se(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    se = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "se": se, "n": int(array.size)}


def run(config: Config, seed: int = 0, device: str = "cpu", progress: bool = False) -> dict:
    from tqdm import tqdm

    table = method_table(config)
    cpu_start = time.process_time()
    result: dict = {
        "config": jsonable(config),
        "predictions": predictions(config),
        "registered_at": time.time(),
    }
    setup = config.setup
    num_classes = scene_config(setup, 0).num_classes
    seeds = seeds_for(seed, config.seeds)
    records: list[dict] = []
    data_check: dict = {}
    permutations = {str(run_seed): hue_derangement(num_classes, run_seed) for run_seed in seeds}
    result["hue_permutations"] = permutations
    pairs = jobs(config)
    bar = tqdm(total=len(seeds) * len(pairs), desc="study 9 runs", disable=not progress)
    result["first_training_at"] = time.time()
    for run_seed in seeds:
        target_val = render(setup, run_seed, "target_val", setup.val, None)
        target_test = render(setup, run_seed, "target_test", setup.test, None)
        permutation = permutations[str(run_seed)]
        strength_t = config.permuted_strength
        permuted_val = render(setup, run_seed, "target_val", setup.val, strength_t, permutation)
        permuted_test = render(setup, run_seed, "target_test", setup.test, strength_t, permutation)
        probe_fit = render(setup, run_seed, "probe_fit", setup.probe, None)
        probe_eval = render(setup, run_seed, "probe_eval", setup.probe, None)
        check = data_check.setdefault("target", [])
        check.append(hue_class_agreement(target_test["slot_hues"], num_classes))
        data_check.setdefault("permuted", []).append(
            hue_class_agreement(permuted_test["slot_hues"], num_classes)
        )
        data_check.setdefault("permuted, against pi(c)", []).append(
            hue_class_agreement(permuted_test["slot_hues"], num_classes, permutation)
        )
        for strength in sorted({s for s, _ in pairs}):
            train_data = render(setup, run_seed, "train", setup.train, strength)
            source_val = render(setup, run_seed, "val", setup.val, strength)
            data_check.setdefault(f"{strength:g}", []).append(
                hue_class_agreement(train_data["slot_hues"], num_classes)
            )
            for name in [n for s, n in pairs if s == strength]:
                begin = time.perf_counter()
                model = train(setup, table[name], train_data, run_seed, device)
                seconds = time.perf_counter() - begin
                probes = stream_probes(model, probe_fit, probe_eval, device)
                if table[name].reconstruction_weight > 0:
                    probes.update(counterfactual_transfer(model, probe_eval, device))
                records.append(
                    {
                        "seed": run_seed,
                        "strength": strength,
                        "method": name,
                        "weights": table[name].weights(),
                        "balancer": table[name].balancer,
                        "source_val": task_metrics(model, source_val, num_classes, device),
                        "target_val": task_metrics(model, target_val, num_classes, device),
                        "target_test": task_metrics(model, target_test, num_classes, device),
                        "permuted_val": task_metrics(model, permuted_val, num_classes, device),
                        "permuted_test": task_metrics(model, permuted_test, num_classes, device),
                        "probes": probes,
                        "train_seconds": seconds,
                    }
                )
                bar.update(1)
    bar.close()
    result["data_check"] = {
        "hue_class_agreement": {key: mean_se(values) for key, values in data_check.items()},
        "chance": 1.0 / num_classes,
        "meaning": "share of class slots whose hue is nearest to the class's own hue c/C "
        "(against pi(c): to the hue pi(c)/C of the class whose hue the permuted target gives c)",
    }
    result["records"] = records
    result.update(summarise(config, records, seeds))
    result["cpu_seconds"] = time.process_time() - cpu_start
    return jsonable(result)


def _values(records: list[dict], strength: float, method: str, key: str, seeds: list[int]):
    """Per-seed values of ``key`` (a metric of ``target_test``, ``source_val``, ``target_val``,
    ``permuted_test``, ``permuted_val`` as ``'split:metric'``, or a probe as ``'probes:name'``)
    in seed order."""
    split, name = key.split(":")
    by_seed = {
        r["seed"]: r[split][name]
        for r in records
        if r["method"] == method and r["strength"] == strength
    }
    return [by_seed[s] for s in seeds]


def summarise(config: Config, records: list[dict], seeds: list[int]) -> dict:
    """Per-(strength, method) means, paired differences, selection, scored predictions,
    the finding and the verdict."""
    p = config.sweep_strength
    cells: dict[str, dict] = {}
    keys = {
        "target": f"target_test:{METRIC}",
        "target_permuted": f"permuted_test:{METRIC}",
        "source": f"source_val:{METRIC}",
        "target_depth_abs_err": "target_test:depth/abs_err",
        "hue_probe_semantic": "probes:hue_probe_semantic",
        "hue_probe_residual": "probes:hue_probe_residual",
        "stream_cka": "probes:stream_cka",
    }
    present = sorted({(r["strength"], r["method"]) for r in records})
    for strength, method in present:
        entry = {"strength": strength, "method": method}
        for label, key in keys.items():
            entry[label] = mean_se(_values(records, strength, method, key, seeds))
        entry["source_minus_target"] = paired(
            _values(records, strength, method, keys["source"], seeds),
            _values(records, strength, method, keys["target"], seeds),
        )
        for label in ("target", "target_permuted"):
            entry[f"{label}_minus_ew"] = paired(
                _values(records, strength, method, keys[label], seeds),
                _values(records, strength, "EW", keys[label], seeds),
            )
        entry["permuted_minus_random"] = paired(
            _values(records, strength, method, keys["target_permuted"], seeds),
            _values(records, strength, method, keys["target"], seeds),
        )
        runs = [r for r in records if r["method"] == method and r["strength"] == strength]
        for label in ("cfa_colour_shift", "cfa_transfer", "reconstruction_l1"):
            if all(label in r["probes"] for r in runs):
                entry[label] = mean_se([r["probes"][label] for r in runs])
        cells[f"{strength:g}|{method}"] = entry

    def target(method: str, strength: float = p, label: str = "target") -> list[float]:
        return _values(records, strength, method, keys[label], seeds)

    def mean_of(method: str, key: str, strength: float = p) -> float:
        return float(np.mean(_values(records, strength, method, key, seeds)))

    balancers = [b for b in BALANCERS if (p, b) in present]
    best_balancer = max(balancers, key=lambda b: mean_of(b, keys["source"]))
    candidates = core_candidates(config)
    selected = max(candidates, key=lambda m: mean_of(m, keys["source"]))
    oracle = max(candidates, key=lambda m: mean_of(m, f"target_val:{METRIC}"))
    oracle_permuted = max(candidates, key=lambda m: mean_of(m, f"permuted_val:{METRIC}"))
    table = method_table(config)

    def permuted(method: str) -> list[float]:
        return target(method, label="target_permuted")

    selection = {
        "protocol": "training-domain validation: highest mean source-validation mIoU over seeds "
        f"at p = {p:g}, one selection for both targets; target oracle: highest mean "
        "target-validation mIoU of the target environment in question (labelled)",
        "best_balancer": best_balancer,
        "candidates": candidates,
        "selected": selected,
        "selected_weights": table[selected].weights(),
        "oracle": oracle,
        "oracle_weights": table[oracle].weights(),
        "library_defaults": LIBRARY_DEFAULTS,
        "selected_matches_defaults": table[selected].weights() == LIBRARY_DEFAULTS,
        "selected_minus_best_balancer": paired(target(selected), target(best_balancer)),
        "oracle_minus_best_balancer (target oracle)": paired(target(oracle), target(best_balancer)),
        "permuted": {
            "selected_minus_best_balancer": paired(permuted(selected), permuted(best_balancer)),
            "oracle": oracle_permuted,
            "oracle_weights": table[oracle_permuted].weights(),
            "oracle_minus_best_balancer (target oracle)": paired(
                permuted(oracle_permuted), permuted(best_balancer)
            ),
        },
    }
    drop = paired(target("EW", 0.0), target("EW")) if (0.0, "EW") in present else None
    scored = score_predictions(config, records, seeds, present, selection, drop)
    core_names = [m for m in dict.fromkeys(n for s, n in present if s == p) if m not in BALANCERS]
    removes = [m for m in core_names if above(paired(target(m), target(best_balancer)))]
    verdict = (
        "agrees"
        if above(selection["selected_minus_best_balancer"])
        else "agrees only as qualified"
        if removes
        else "contradicts"
    )
    finding = compose_finding(config, cells, selection, drop, removes, scored)
    return {
        "cells": cells,
        "shortcut_drop_ew": drop,
        "permuted_minus_random_ew": {
            f"{strength:g}": cells[f"{strength:g}|EW"]["permuted_minus_random"]
            for strength, method in present
            if method == "EW"
        },
        "selection": selection,
        "prediction_outcomes": scored,
        "removes_shortcut": removes,
        "finding": finding,
        "verdict": verdict,
    }


def _slope(records, seeds, strength, names_weights, key) -> dict:
    """Per-seed least-squares slope of ``key`` against ``log(1 + weight)``, ``mean +- SE``."""
    x = np.log1p(np.array([w for _, w in names_weights]))
    slopes = []
    for index in range(len(seeds)):
        y = np.array([_values(records, strength, n, key, seeds)[index] for n, _ in names_weights])
        slopes.append(float(np.polyfit(x, y, 1)[0]))
    return mean_se(slopes)


def score_predictions(config, records, seeds, present, selection, drop) -> list[dict]:
    """Each prediction of :func:`predictions` with its measurement and whether it held."""
    p = config.sweep_strength
    key = f"target_test:{METRIC}"

    def target(method: str, strength: float = p) -> list[float]:
        return _values(records, strength, method, key, seeds)

    def permuted(method: str, strength: float = p) -> list[float]:
        return _values(records, strength, method, f"permuted_test:{METRIC}", seeds)

    def permuted_drop(method: str, strength: float = p) -> list[float]:
        """Per-seed random-minus-permuted target mIoU."""
        return list(np.subtract(target(method, strength), permuted(method, strength)))

    def probe(method: str) -> float:
        return float(np.mean(_values(records, p, method, "probes:hue_probe_semantic", seeds)))

    outcomes = []
    for row in predictions(config):
        ident = row["id"].split()[0]
        measured: dict = {}
        held: bool | None = None
        if ident == "P1" and drop is not None:
            measured = {"ew_p0_minus_ew_p": drop}
            held = above(drop)
        elif ident == "P2":
            diffs = {
                b: paired(target(b), target("EW")) for b in ("PCGrad", "MGDA") if (p, b) in present
            }
            measured = diffs
            held = bool(diffs) and not any(above(d) for d in diffs.values())
        elif ident == "P3" and drop is not None:
            gain = paired(target("CORE-MTL"), target("EW"))
            measured = {"core_minus_ew": gain, "ew_drop": drop, "z_s_probe": probe("CORE-MTL")}
            held = gain["mean"] < 0.5 * drop["mean"] and probe("CORE-MTL") > PROBE_ENCODES
        elif ident == "P4":
            cfa = [("w/o CFA", 0.0), ("CORE-MTL", LIBRARY_DEFAULTS["cfa"])]
            cfa += [(f"CFA {w:g}", w) for w in config.cfa_sweep]
            cfa = [(n, w) for n, w in cfa if (p, n) in present]
            if len(cfa) >= 2:
                slope = _slope(records, seeds, p, cfa, key)
                measured = {"slope_per_log1p_weight": slope, "settings": [n for n, _ in cfa]}
                held = slope["n"] > 1 and slope["mean"] > 2 * slope["se"]
        elif ident == "P5" and (p, "CKA only") in present:
            gain = paired(target("CKA only"), target("EW"))
            measured = {"cka_only_minus_ew": gain, "z_s_probe": probe("CKA only")}
            held = not above(gain) and probe("CKA only") > PROBE_ENCODES
        elif ident == "P6" and config.cka_sweep:
            strongest = f"CKA {max(config.cka_sweep):g}"
            difference = paired(target(strongest), target("CORE-MTL"))
            measured = {"strongest_cka_minus_library": difference}
            held = difference["mean"] < 0
        elif ident == "P7":
            largest = max(
                selection["candidates"],
                key=lambda m: method_table(config)[m].cfa_weight,
            )
            measured = {"selected": selection["selected"], "largest_cfa": largest}
            held = selection["selected"] != largest
        elif ident == "P8":
            difference = paired(target("CORE-MTL", 1.0), target("EW", 1.0))
            measured = {"core_minus_ew_at_p1": difference}
            held = not above(difference)
        elif ident == "P9":
            difference = paired(target("EW"), permuted("EW"))
            measured = {"ew_random_minus_permuted": difference}
            held = above(difference)
        elif ident == "P10":
            difference = paired(permuted_drop("EW"), permuted_drop("EW", 0.0))
            measured = {
                f"ew_random_minus_permuted_p{p:g}_minus_p0": difference,
                "at_p": paired(target("EW"), permuted("EW")),
                "at_p0": paired(target("EW", 0.0), permuted("EW", 0.0)),
            }
            held = above(difference)
        elif ident == "P11":
            table = method_table(config)
            settings = [n for s, n in present if s == p and table[n].is_core]
            rows = {}
            for name in settings:
                smaller = paired(permuted_drop("EW"), permuted_drop(name))
                gain = paired(target(name), target("EW"))
                rows[name] = {
                    "ew_drop_minus_its_drop": smaller,
                    "random_target_minus_ew": gain,
                    "smaller_drop": above(smaller),
                    "removes": above(gain),
                }
            measured = rows
            held = bool(rows) and all(r["smaller_drop"] == r["removes"] for r in rows.values())
        outcomes.append({**row, "measured": measured, "held": held})
    return outcomes


def _text(difference: dict | None) -> str:
    if difference is None:
        return "n/a"
    return f"{difference['mean']:+.3f} +- {difference['se']:.3f}"


def compose_finding(config, cells, selection, drop, removes, scored) -> str:
    """One line: the shortcut's size, what removes it and what does not, the probes, the
    selection, the same on the permuted-hue target, and which predictions held."""
    p = config.sweep_strength
    cell = {k.split("|", 1)[1]: v for k, v in cells.items() if k.startswith(f"{p:g}|")}
    others = [m for m in cell if m != "EW"]
    kept = [m for m in others if m not in removes]
    probes = [c["hue_probe_semantic"]["mean"] for c in cell.values()]
    shifts = [c["cfa_colour_shift"]["mean"] for c in cell.values() if "cfa_colour_shift" in c]
    held = [o["id"].split()[0] for o in scored if o["held"]]
    differences = ", ".join(f"{m} {_text(cell[m]['target_minus_ew'])}" for m in others)
    text = (
        f"shortcut p = {p:g}, {config.seeds} paired seeds: EW loses {_text(drop)} target mIoU "
        f"to the shortcut (p = 0 minus p = {p:g}); target mIoU minus EW: {differences}. "
        f"Removes part of the shortcut (> 2 SE above the best balancer "
        f"{selection['best_balancer']}): {', '.join(removes) if removes else 'nothing'}; "
        f"does not: {', '.join(kept) if kept else 'none'}. "
    )
    lowest = min(cell, key=lambda m: cell[m]["hue_probe_semantic"]["mean"])
    text += (
        f"Z_s still encodes hue in every method (held-out probe {min(probes):.2f}-"
        f"{max(probes):.2f}, chance 0.5)"
        if min(probes) > PROBE_ENCODES
        else f"Held-out hue probe from Z_s {min(probes):.2f}-{max(probes):.2f} (chance 0.5, "
        f"lowest {lowest})"
    )
    if shifts:
        text += (
            f"; swapping Z_r moves the decoded floor colour by {min(shifts):.2f}-"
            f"{max(shifts):.2f} of the true colour difference, so the counterfactuals keep "
            "the colour of Z_s"
            if max(shifts) < 0.5
            else f"; swapping Z_r moves the decoded floor colour by up to {max(shifts):.2f} of "
            "the true colour difference"
        )
    text += (
        f". Training-domain validation selects {selection['selected']} "
        f"({'the' if selection['selected_matches_defaults'] else 'not the'} library weights), "
        f"{_text(selection['selected_minus_best_balancer'])} against the best balancer (target "
        f"oracle: {selection['oracle']}, "
        f"{_text(selection['oracle_minus_best_balancer (target oracle)'])})"
    )
    permuted = selection["permuted"]
    ew_at_zero = cells.get("0|EW")
    permuted_differences = ", ".join(
        f"{m} {_text(cell[m]['target_permuted_minus_ew'])}" for m in others
    )
    text += (
        f". Permuted-hue target (class c takes the hue of pi(c)): EW's permuted minus random "
        f"target mIoU {_text(cell['EW']['permuted_minus_random'])} at p = {p:g}"
        + (
            f" ({_text(ew_at_zero['permuted_minus_random'])} at p = 0)"
            if ew_at_zero is not None and p != 0
            else ""
        )
        + f"; permuted target mIoU minus EW: {permuted_differences}; the selected "
        f"{selection['selected']} {_text(permuted['selected_minus_best_balancer'])} against the "
        f"best balancer (target oracle on the permuted validation split: {permuted['oracle']}, "
        f"{_text(permuted['oracle_minus_best_balancer (target oracle)'])}). Predictions held: "
        f"{', '.join(held) if held else 'none'} of {len(scored)}."
    )
    return text


def paired_bars(axis, at_p: dict, series: tuple[tuple[str, str], tuple[str, str]]) -> None:
    """Two bars per method (mean, 2 SE error bars) for the two ``(key, label)`` of ``series``."""
    names = list(at_p)
    positions = np.arange(len(names))
    for offset, (key, label) in enumerate(series):
        axis.bar(
            positions + 0.38 * offset,
            [at_p[n][key]["mean"] for n in names],
            width=0.38,
            yerr=[2 * at_p[n][key]["se"] for n in names],
            capsize=2,
            label=label,
        )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    cells = list(result["cells"].values())
    config = result["config"]
    p = config["sweep_strength"]
    figure, axes = new_figure(4, 1, width=4.4)
    axis = axes[0, 0]
    methods = list(dict.fromkeys(c["method"] for c in cells))
    grid = [m for m in methods if len({c["strength"] for c in cells if c["method"] == m}) > 1]
    for method, colour in zip(grid, colours(len(grid)), strict=True):
        rows = sorted((c for c in cells if c["method"] == method), key=lambda c: c["strength"])
        axis.errorbar(
            [c["strength"] for c in rows],
            [c["target"]["mean"] for c in rows],
            yerr=[2 * c["target"]["se"] for c in rows],
            color=colour,
            marker="o",
            capsize=2,
            label=f"{method} (random-hue target)",
        )
        axis.errorbar(
            [c["strength"] for c in rows],
            [c["target_permuted"]["mean"] for c in rows],
            yerr=[2 * c["target_permuted"]["se"] for c in rows],
            color=colour,
            marker="x",
            ls=":",
            capsize=2,
            label=f"{method} (permuted-hue target)",
        )
        axis.plot(
            [c["strength"] for c in rows],
            [c["source"]["mean"] for c in rows],
            color=colour,
            ls="--",
            lw=0.8,
            label=f"{method} (source val)",
        )
    axis.set_xlabel("shortcut strength p (P[hue follows class] in the source)")
    axis.set_ylabel("segmentation mIoU")
    axis.set_title("Target mIoU against shortcut strength (mean +- 2 SE)")
    axis.legend()

    axis = axes[0, 1]
    at_p = {c["method"]: c for c in cells if c["strength"] == p}
    defaults = result["selection"]["library_defaults"]
    cfa = [("w/o CFA", 0.0), ("CORE-MTL", defaults["cfa"])]
    cfa += [(f"CFA {w:g}", w) for w in config["cfa_sweep"]]
    cka = [("w/o CKA", 0.0), ("CORE-MTL", defaults["cka"])]
    cka += [(f"CKA {w:g}", w) for w in config["cka_sweep"]]
    for label, series, marker in (("CFA weight", cfa, "o"), ("CKA weight", cka, "s")):
        series = sorted((w, at_p[n]) for n, w in series if n in at_p)
        axis.errorbar(
            [math.log1p(w) for w, _ in series],
            [c["target"]["mean"] for _, c in series],
            yerr=[2 * c["target"]["se"] for _, c in series],
            marker=marker,
            capsize=2,
            label=f"sweep of the {label}",
        )
    if "EW" in at_p:
        axis.axhline(at_p["EW"]["target"]["mean"], color="k", ls=":", lw=0.8, label="EW")
    axis.set_xlabel("log(1 + weight)")
    axis.set_ylabel("target mIoU")
    axis.set_title(f"Target mIoU against CFA / CKA strength at p = {p:g}")
    axis.legend()

    axis = axes[0, 2]
    names = list(at_p)
    positions = np.arange(len(names))
    paired_bars(
        axis,
        at_p,
        (("hue_probe_semantic", "hue probe from Z_s"), ("hue_probe_residual", "from Z_r")),
    )
    axis.plot(
        positions + 0.19,
        [at_p[n]["stream_cka"]["mean"] for n in names],
        "k^",
        label="debiased CKA(Z_s, Z_r)",
    )
    axis.axhline(0.5, color="grey", ls=":", lw=0.8)
    axis.set_xticks(positions + 0.19, names, rotation=40, ha="right")
    axis.set_ylabel("held-out accuracy (chance 0.5) / CKA")
    axis.set_title(f"How much hue the streams hold, p = {p:g}")
    axis.legend()

    axis = axes[0, 3]
    paired_bars(
        axis, at_p, (("target", "random-hue target"), ("target_permuted", "permuted-hue target"))
    )
    if "EW" in at_p:
        for key, style in (("target", ":"), ("target_permuted", "--")):
            axis.axhline(at_p["EW"][key]["mean"], color="k", ls=style, lw=0.8)
    axis.set_xticks(positions + 0.19, names, rotation=40, ha="right")
    axis.set_ylabel("target mIoU (mean +- 2 SE; lines: EW)")
    axis.set_title(f"Random-hue against permuted-hue target, p = {p:g}")
    axis.legend()
    return save_figure(figure, directory, "study9_shortcut")
