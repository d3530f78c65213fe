"""The shortcut suite's statistics, selection, attribution, predictions and verdict on records
made up so that each rule can come out both ways."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.study import FAILS, HOLDS, QUALIFIED
from experiments.synthetic.shortcuts.finding import conclude, sweep_table
from experiments.synthetic.shortcuts.methods import (
    AUTHORS,
    CALIBRATION,
    CORE,
    MTCRL,
    MTCRL_CAPACITY,
    MTCRL_WITHOUT_DECORRELATION,
)
from experiments.synthetic.shortcuts.plot import plot
from experiments.synthetic.shortcuts.predictions import predictions
from experiments.synthetic.shortcuts.probes import CHANCE
from experiments.synthetic.shortcuts.summary import summarise_records

SEEDS = range(6)
NOISE = np.random.default_rng(0).normal(0.0, 0.004, size=(64, len(SEEDS)))


def _records(
    effects: dict[str, float], benchmark: str = "digits/colour", source=None, strength=0.95
) -> list:
    """One record per method and seed: target accuracy = 0.3 + effect + a seed effect shared by
    every method + small noise; source accuracy from ``source`` (default 0.9 for all)."""
    records = []
    for index, (method, effect) in enumerate(effects.items()):
        for seed in SEEDS:
            shared = 0.05 * np.sin(seed)
            target = 0.3 + effect + shared + NOISE[index, seed]
            metrics = {
                "source_val": {"left/accuracy": (source or {}).get(method, 0.9)},
                "target_val": {"left/accuracy": target},
                "target_test": {"left/accuracy": target},
                "permuted_val": {"left/accuracy": target - 0.1},
                "permuted_test": {"left/accuracy": target - 0.1},
            }
            records.append({
                "benchmark": benchmark, "method": method, "seed": seed, "strength": strength,
                "label": method, "metrics": metrics, "routing": None, "parameters": 10,
                "train_seconds": 1.0,
                "probes": {"Z": {"nuisance": 0.5, "label": 0.8}, CHANCE: {"nuisance": 0.1}},
            })  # fmt: skip
    return records


BASE = {"ew": 0.0, "pcgrad": 0.0, "mgda": 0.0, CORE: 0.0, CALIBRATION: 0.4}


def _summary(effects: dict[str, float], **kwargs) -> dict:
    records = _records({**BASE, **effects}, **kwargs)
    return summarise_records(records, {"digits/colour": "left/accuracy"}, 0.95)


def test_a_gain_lost_without_decorrelation_is_traced_to_decorrelation():
    summary = _summary({
        MTCRL: 0.2, MTCRL_WITHOUT_DECORRELATION: 0.02, "mt-crl (no invariance, no sparsity)": 0.2,
        MTCRL_CAPACITY: 0.0,
    })  # fmt: skip
    bench = summary["benchmarks"]["digits/colour"]
    assert MTCRL in bench["winners"]
    assert bench["attribution"][MTCRL]["ingredients"] == ["decorrelation"]


def test_a_gain_that_the_same_layers_give_ew_is_traced_to_capacity():
    summary = _summary({
        MTCRL: 0.2, MTCRL_WITHOUT_DECORRELATION: 0.2, MTCRL_CAPACITY: 0.15,
    })  # fmt: skip
    attribution = summary["benchmarks"]["digits/colour"]["attribution"][MTCRL]
    assert attribution["ingredients"] == ["capacity"]


@pytest.mark.parametrize(("control", "separated"), [(0.2, False), (0.08, True)])
def test_a_gain_its_capacity_control_matches_is_reported_as_not_separated_from_capacity(
    control, separated
):
    summary = _summary({
        MTCRL: 0.2, MTCRL_WITHOUT_DECORRELATION: 0.02, MTCRL_CAPACITY: control,
    })  # fmt: skip
    outcomes = [p.score(summary) for p in predictions(None)]
    result = conclude(None, summary, outcomes).result
    assert ("not separated from capacity" in result) is not separated
    assert "decorrelation" in result


def test_selection_uses_source_validation_not_the_target():
    summary = _summary({AUTHORS: 0.3}, source={CORE: 0.95, AUTHORS: 0.5})
    bench = summary["benchmarks"]["digits/colour"]
    assert bench["selected_core"] == CORE
    assert bench["oracle_core"] == AUTHORS


def test_share_removed_is_the_gain_over_the_calibration_gap():
    bench = _summary({MTCRL: 0.2})["benchmarks"]["digits/colour"]
    assert bench["methods"][MTCRL]["share_removed"] == pytest.approx(0.5, abs=0.03)
    assert bench["methods"][CALIBRATION]["share_removed"] == pytest.approx(1.0)


@pytest.mark.parametrize(("core_effect", "verdict"), [(0.0, FAILS), (0.2, HOLDS)])
def test_verdict_follows_the_selected_core_mtl_against_the_best_balancer(core_effect, verdict):
    summary = _summary({CORE: core_effect})
    outcomes = [p.score(summary) for p in predictions(None)]
    assert conclude(None, summary, outcomes).verdict == verdict


def test_verdict_is_qualified_when_core_mtl_wins_on_some_benchmarks_only():
    records = _records({**BASE, CORE: 0.2}) + _records(BASE, benchmark="digits/texture")
    metrics = {"digits/colour": "left/accuracy", "digits/texture": "left/accuracy"}
    summary = summarise_records(records, metrics, 0.95)
    outcomes = [p.score(summary) for p in predictions(None)]
    finding = conclude(None, summary, outcomes)
    assert finding.verdict == QUALIFIED
    assert "digits/colour" in finding.result


@pytest.mark.parametrize(("effect", "held"), [(0.0, True), (0.1, False)])
def test_balancer_prediction_can_come_out_both_ways(effect, held):
    summary = _summary({"pcgrad": effect})
    score = {p.id: p for p in predictions(None)}["P2"].score
    assert score(summary).held is held


def test_a_prediction_about_a_benchmark_not_run_is_not_measured():
    summary = _summary({})
    outcome = {p.id: p for p in predictions(None)}["P5"].score(summary)
    assert outcome.held is None


@pytest.mark.parametrize("prediction", ["P7", "P8"])
def test_a_trace_of_a_gain_that_is_absent_is_not_measured_and_says_why(prediction):
    summary = _summary({MTCRL: 0.0, MTCRL_CAPACITY: 0.0, MTCRL_WITHOUT_DECORRELATION: 0.0})
    outcome = {p.id: p for p in predictions(None)}[prediction].score(summary)
    assert outcome.held is None
    assert "no gain to trace" in outcome.text
    assert f"{MTCRL} minus EW" in outcome.text


def test_the_probe_chance_is_the_constant_guess_not_one_over_the_values():
    summary = _summary({})
    assert summary["benchmarks"]["digits/colour"]["nuisance_chance"] == pytest.approx(
        0.1, rel=1e-12
    )
    assert CHANCE not in summary["benchmarks"]["digits/colour"]["methods"]["ew"]["probes"]


def test_a_diverged_run_leaves_its_seed_out_of_that_method_only():
    records = _records({**BASE, CORE: 0.2})
    diverged = next(r for r in records if r["method"] == CORE and r["seed"] == 0)
    for key in ("metrics", "probes", "routing", "parameters"):
        diverged.pop(key)
    diverged["diverged"] = "loss of task 'left' is nan at step 3"
    bench = summarise_records(records, {"digits/colour": "left/accuracy"}, 0.95)["benchmarks"]
    core = bench["digits/colour"]["methods"][CORE]
    assert core["diverged"] == 1 and core["minus_ew"]["n"] == len(SEEDS) - 1
    assert bench["digits/colour"]["methods"]["pcgrad"]["minus_ew"]["n"] == len(SEEDS)
    assert core["minus_ew"]["mean"] == pytest.approx(0.2, abs=0.01)


def test_an_ablation_that_wins_is_reported_as_an_ablation_not_traced_through_its_siblings():
    no_routing = "mt-crl (no invariance, no routing)"
    summary = _summary({MTCRL: 0.1, no_routing: 0.2, MTCRL_WITHOUT_DECORRELATION: 0.0})
    bench = summary["benchmarks"]["digits/colour"]
    assert no_routing in bench["winners"] and no_routing not in bench["attribution"]
    assert "decorrelation" in bench["attribution"][MTCRL]["ingredients"]
    finding = conclude(None, summary, [p.score(summary) for p in predictions(None)])
    assert f"{MTCRL}," in finding.result


def test_the_ablations_of_a_winner_are_run_on_demand_and_only_where_it_wins():
    from dataclasses import replace

    from experiments.synthetic.shortcuts.methods import METHODS
    from experiments.synthetic.shortcuts.study import CONFIGS, tracing_jobs

    config = replace(CONFIGS["fast"], benchmarks=("digits/colour",), seeds=len(SEEDS))
    on_demand_of_core = {n for n, m in METHODS.items() if m.on_demand and m.of == CORE}
    winning = tracing_jobs(config, 0, _records({**BASE, CORE: 0.2}))
    assert {job.method for job in winning} == on_demand_of_core
    assert {job.seed for job in winning} == set(SEEDS)
    assert tracing_jobs(config, 0, _records(BASE)) == []


def test_a_strength_sweep_is_tabled_and_drawn_and_absent_without_one(tmp_path):
    swept = _records({"ew": 0.0, MTCRL: 0.1}, strength=0.8)
    summary = summarise_records(
        _records({**BASE, MTCRL: 0.02}) + swept, {"digits/colour": "left/accuracy"}, 0.95
    )
    bench = summary["benchmarks"]["digits/colour"]
    assert set(bench["sweep"]) == {"ew", MTCRL}
    gain = bench["sweep"][MTCRL]["0.8"]["minus_ew"]["mean"]
    assert gain == pytest.approx(0.1, abs=0.01)
    lines = sweep_table("digits/colour", bench)
    assert "p = 0.8" in lines[2] and "p = 0.95" in lines[2]
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[4:] if line}
    assert float(rows["ew"][0]) == pytest.approx(0.3, abs=0.02)
    assert float(rows[MTCRL][0].split(" +- ")[0]) == pytest.approx(0.1, abs=0.01)
    outcomes = [p.score(summary) for p in predictions(None)]
    result = {"summary": summary, "finding": conclude(None, summary, outcomes).to_dict()}
    assert "study9_sweep.png" in {path.name for path in plot(result, tmp_path / "with")}
    alone = _summary({})
    assert sweep_table("digits/colour", alone["benchmarks"]["digits/colour"]) == []
    written = {path.name for path in plot({"summary": alone}, tmp_path / "without")}
    assert "study9_sweep.png" not in written and "study9_shortcuts.png" in written


def test_a_balancer_that_wins_is_reported_as_a_balancer_not_as_untraced():
    summary = _summary({"pcgrad": 0.1})
    outcomes = [p.score(summary) for p in predictions(None)]
    result = conclude(None, summary, outcomes).result
    assert "pcgrad" in result and "itself a gradient balancer" in result
    assert "no ablation run" not in result
