"""Study 1, the regime map: exact population pieces, the pre-registration and the S6 control."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from experiments.synthetic import regime_angle, regime_cells, regime_mlp
from experiments.synthetic import study1_regime_map as study
from scm.closed_form import population_cka, risks

TINY = replace(
    study.CONFIGS["smoke"],
    seeds=3,
    variances=(0.1, 1.0),
    rhos=(0.0, 0.5),
    starts=(0.6,),
    deltas=(1.0,),
    a_train=64,
    a_validation=64,
    schedules={"gd": regime_cells.Schedule(lr=0.1, short=3, long=12)},
)


def params_of(psi: float, weights: np.ndarray, bias: np.ndarray) -> dict:
    return {
        "psi": torch.tensor([psi], dtype=torch.float64),
        "head_w": torch.as_tensor(weights.T[None]),
        "head_b": torch.as_tensor(bias[None, None]),
    }


@pytest.mark.parametrize(("v", "rho", "psi"), [(0.3, 0.0, 0.4), (0.1, 0.9, 1.0), (3.0, 0.5, 0.2)])
def test_population_risk_and_cka_equal_the_closed_forms(v, rho, psi):
    unit = study.angle_units(replace(TINY, variances=(v,), rhos=(rho,)), 0, (psi,))[0]
    scm = study.angle_scm(TINY, unit)
    weights = np.array([[0.7, -0.2], [0.1, 0.4]])
    bias = np.array([0.05, -0.1])
    params = params_of(psi, weights, bias)
    joint = regime_angle.joint_covariance(
        torch.tensor([v], dtype=torch.float64), torch.tensor([rho], dtype=torch.float64), 2
    )
    beta = torch.as_tensor(scm.beta.T[None])
    noise = torch.tensor([[TINY.noise_std**2]], dtype=torch.float64)
    ours = regime_angle.task_risks(params, beta, joint, noise)[0].numpy()
    np.testing.assert_allclose(ours, risks(scm, psi, weights, bias), rtol=1e-12)
    cka = float(regime_angle.stream_cka(params["psi"], joint)[0])
    assert cka == pytest.approx(population_cka(scm, psi), rel=1e-10)
    swap = float(regime_angle.swap_loss(params, beta, joint, noise)[0])
    assert swap == pytest.approx(float(ours.mean()), rel=1e-12)


@pytest.mark.parametrize(("v", "rho"), [(0.3, 0.5), (0.1, 0.9), (3.0, 0.5)])
def test_stream_cka_vanishes_at_the_critical_angle(v, rho):
    joint = regime_angle.joint_covariance(
        torch.tensor([v], dtype=torch.float64), torch.tensor([rho], dtype=torch.float64), 1
    )
    angle = regime_angle.critical_angle(v, rho)
    assert (
        float(regime_angle.stream_cka(torch.tensor([angle], dtype=torch.float64), joint)[0]) < 1e-20
    )
    assert float(regime_angle.stream_cka(torch.tensor([0.0]).double(), joint)[0]) > 1e-3


def test_outcome_rules():
    assert regime_cells.classify(-0.2, 1.0, TINY) == "better"
    assert regime_cells.classify(0.2, 1.0, TINY) == "worse"
    assert regime_cells.classify(0.01, 1.0, TINY) == "no difference"
    assert regime_cells.held("better", -0.3, -0.1) and not regime_cells.held("better", -0.3, 0.1)
    assert regime_cells.held("worse", 0.1, 0.3) and not regime_cells.held("worse", -0.1, 0.3)
    assert regime_cells.held("no difference", -0.1, 0.1) and not regime_cells.held(
        "no difference", 0.1, 0.2
    )


@pytest.fixture(scope="module")
def tiny_run():
    return study.run(TINY, seed=0)


def test_predictions_use_no_trained_quantity(tiny_run):
    alone = study.predictions(TINY, seed=0)
    written = tiny_run["pre_registration"]["predictions"]
    for model in ("A", "B"):
        for key, rows in alone[model].items():
            assert [r["prediction"] for r in rows] == [r["prediction"] for r in written[model][key]]
            assert [r["mean"] for r in rows] == pytest.approx(
                [r["mean"] for r in written[model][key]]
            )


def test_s6_control_cka_only_is_predicted_and_measured_as_no_difference(tiny_run):
    control = tiny_run["s6_control"]
    assert control
    for row in control:
        assert row["predicted_mean"] == 0.0
        assert row["prediction"] == "no difference"
        assert row["measured"] == "no difference"
    assert tiny_run["s6_control_held"]


def test_every_headline_cell_carries_prediction_measurement_and_selection(tiny_run):
    rows = tiny_run["measured"]["A"]["gd|long"]["validation"]
    headline = [r for r in rows if r["baseline"] == "best"]
    assert {r["variant"] for r in headline} == set(regime_cells.HEADLINE)
    assert all(r["best_balancer"] in regime_cells.BALANCERS for r in headline)
    assert all(math.isfinite(r["se"]) and r["low"] <= r["mean"] <= r["high"] for r in headline)
    assert tiny_run["measured"]["A"]["gd|long"]["oracle"]
    assert tiny_run["verdict"] in ("agrees", "agrees only as qualified", "contradicts")


@pytest.mark.parametrize(
    ("prediction", "predicted", "low", "high", "expected"),
    [
        ("better", -0.2, -0.3, -0.1, "held"),
        ("better", -0.2, 0.05, 0.2, "contradicted"),
        ("better", -0.2, -0.005, 0.005, "contradicted"),
        ("better", -0.2, -0.3, 0.1, "inconclusive"),
        ("better", -0.2, -0.1, 0.1, "off in size"),
        ("worse", 0.2, -0.2, -0.05, "contradicted"),
        ("worse", 0.2, -0.1, 0.3, "inconclusive"),
        ("worse", 0.2, -0.05, 0.1, "off in size"),
        ("no difference", 0.0, 0.05, 0.2, "contradicted"),
        ("no difference", 0.0, 0.001, 0.2, "off in size"),
        ("no difference", 0.005, 0.001, 0.2, "inconclusive"),
        ("no difference", 0.0, -0.1, 0.1, "held"),
    ],
)
def test_diagnosis_separates_contradiction_size_and_low_power(
    prediction, predicted, low, high, expected
):
    band = 0.01
    held = regime_cells.held(prediction, low, high)
    assert regime_cells.diagnosis(prediction, band, predicted, low, high, held) == expected


def test_seeds_needed_grows_as_the_effect_shrinks_against_its_spread():
    small = regime_cells.seeds_needed(-0.01, sd=0.1)
    large = regime_cells.seeds_needed(-0.1, sd=0.1)
    assert small > large >= 2
    assert small == pytest.approx(100 * large, rel=0.05)
    assert regime_cells.seeds_needed(0.0, sd=0.1) is None


def test_every_headline_row_is_diagnosed_and_counted(tiny_run):
    rows = [
        r
        for tables in tiny_run["measured"]["A"].values()
        for r in tables["validation"]
        if r["baseline"] == "best"
    ]
    assert {r["diagnosis"] for r in rows} <= set(regime_cells.DIAGNOSES)
    assert all((r["diagnosis"] == "held") == r["held"] for r in rows)
    counts = tiny_run["diagnosis"]["A"]
    assert sum(counts[name] for name in regime_cells.DIAGNOSES) == counts["rows"] == len(rows)
    assert tiny_run["held_share"]["A"] == pytest.approx(counts["held"] / counts["rows"])


def test_groups_split_the_balancers_by_backward_passes():
    from coremtl.batched.balancing import BATCHED_BALANCERS, LOSS_WEIGHTINGS

    assert set(regime_cells.BALANCERS) <= set(BATCHED_BALANCERS)
    assert set(regime_cells.LOSS_BALANCERS) == set(regime_cells.BALANCERS) & set(LOSS_WEIGHTINGS)
    loss, jacobian = regime_cells.GROUPS
    assert set(jacobian) == set(regime_cells.BALANCERS) - set(LOSS_WEIGHTINGS)
    assert sorted((*loss, *jacobian)) == sorted(regime_cells.METHODS)
    names = regime_cells.balancer_names(loss, 2)
    assert names == tuple(m if m in LOSS_WEIGHTINGS else "ew" for m in loss for _ in range(2))


def test_worker_processes_give_the_serial_result():
    import json
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    tiny_b = replace(
        TINY,
        mlp=replace(
            study.FAST_MLP, variances=(0.1,), rhos=(0.0,), train=32, validation=32,
            evaluation=256, jacobian_points=32, chunk=24,
            schedules={"gd": regime_cells.Schedule(lr=0.05, short=2, long=4)},
        ),
    )  # fmt: skip
    serial = study.run(tiny_b, seed=0)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:

        def mapper(jobs):
            return [f.result() for f in [pool.submit(fn, *args) for fn, args in jobs]]

        parallel = study.run(tiny_b, seed=0, mapper=mapper)
    assert len(regime_mlp.mlp_chunks(tiny_b)) > 1
    for result in (serial, parallel):
        for key in ("seconds", "registered_at", "measurement_started_at"):
            result["pre_registration"].pop(key)
    assert json.dumps(parallel, sort_keys=True) == json.dumps(serial, sort_keys=True)


def _evaluated(values: dict[str, list[float]], config) -> dict:
    """``{method: {step 1: measurements}}`` with every measurement of a method set to its
    per-seed ``values`` (one cell)."""
    keys = ["validation"] + [
        f"{kind}|{direction}|{delta}"
        for kind in ("gap", "target")
        for direction in regime_cells.DIRECTIONS
        for delta in config.deltas
    ]
    return {
        method: {1: {key: np.asarray(values.get(method, [2.0, 2.1, 2.2]), float) for key in keys}}
        for method in regime_cells.METHODS
    }


def test_a_diverged_run_is_counted_left_out_and_never_selected():
    config = replace(TINY, deltas=(1.0,))
    values = {"ew": [1.0, 1.0, 1.0], "pcgrad": [0.5, np.nan, 0.5], "mgda": [0.9, 0.9, 0.9]}
    values["core-mtl"] = [0.5, np.inf, 0.7]
    rows = regime_cells.comparisons(_evaluated(values, config), [("c",)], [("c",)] * 3, config, 1)
    headline = [r for r in rows if r["baseline"] == "best" and r["variant"] == "core-mtl"]
    assert {r["best_balancer"] for r in headline} == {"mgda"}
    for row in headline:
        assert row["diverged"] == 1 and row["seeds"] == 2
        assert row["mean"] == pytest.approx(np.mean([0.5 - 0.9, 0.7 - 0.9]))
    predicted = [dict(r, prediction="better", band=0.01, statement="") for r in rows]
    attached = regime_cells.attach(rows, predicted, 1)
    diverged = [r for r in attached if r["diverged"]]
    assert diverged and all(not r["held"] and r["diagnosis"] == "diverged" for r in diverged)


def test_variants_switch_terms_of_the_one_objective_off():
    config = regime_cells.Config()
    full = config.objective
    assert regime_cells.variant_objective(config, "core-mtl") == full
    assert regime_cells.variant_objective(config, "ew") is None
    only = regime_cells.variant_objective(config, "cka only")
    assert (only.cka_weight, only.cfa_weight, only.reconstruction_weight) == (full.cka_weight, 0, 0)
    weights = regime_cells.method_weights(config, ["w/o CFA", "ew", "w/o rec"], units=2)
    assert [weights.row(m) for m in range(6)] == [
        (1.0, 0.0, 1.0),
        (1.0, 0.0, 1.0),
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 0.0),
        (1.0, 1.0, 0.0),
    ]
