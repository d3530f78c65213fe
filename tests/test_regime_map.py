"""Study 1, the regime map: exact population pieces, the registered rules, the pre-registration,
the S6 control, the regimes and the verdict on the claim."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from coremtl.batched import StackedAngle
from experiments.stats import Estimate
from experiments.study import FAILS, HOLDS, QUALIFIED, Outcome
from experiments.synthetic import STUDIES
from experiments.synthetic.regime_map import (
    STUDY,
    cells,
    finding,
    label_mediated,
    measurement,
    methods,
    model_a,
    model_b,
    population,
    power,
    registration,
    rules,
    summary,
)
from experiments.synthetic.regime_map.cells import Cell, Correlation
from experiments.synthetic.regime_map.comparisons import Row, attach, compare
from experiments.synthetic.regime_map.config import CONFIGS, FAST_MLP, Schedule
from scm.closed_form import population_cka, risks
from scm.validation import InvalidParameterError

TINY = replace(
    CONFIGS["smoke"],
    seeds=3,
    variances=(0.1, 1.0),
    rhos=(0.0, 0.5),
    starts=(0.6,),
    deltas=(1.0,),
    a_train=64,
    a_validation=64,
    schedules={"gd": Schedule(lr=0.1, short=3, long=12)},
)


def params_of(psi: float, weights: np.ndarray, bias: np.ndarray) -> dict:
    return {
        "psi": torch.tensor([psi], dtype=torch.float64),
        "head_w": torch.as_tensor(weights.T[None]),
        "head_b": torch.as_tensor(bias[None, None]),
    }


def test_study_1_is_the_regime_map_package():
    assert STUDIES[1] == "experiments.synthetic.regime_map"
    assert STUDY.spreads_jobs and STUDY.register is not None
    assert STUDY.expected == QUALIFIED


@pytest.mark.parametrize(("v", "rho", "psi"), [(0.3, 0.0, 0.4), (0.1, 0.9, 1.0), (3.0, 0.5, 0.2)])
def test_population_risk_and_cka_equal_the_closed_forms(v, rho, psi):
    config = replace(TINY, variances=(v,), rhos=(rho,), starts=(psi,))
    unit = model_a.angle_units(config, 0, model_a.measured_cells(config), 1)[0]
    scm = model_a.angle_scm(TINY, unit)
    weights = np.array([[0.7, -0.2], [0.1, 0.4]])
    bias = np.array([0.05, -0.1])
    params = params_of(psi, weights, bias)
    joint = population.joint_covariance(
        torch.tensor([v], dtype=torch.float64), torch.tensor([rho], dtype=torch.float64), 2
    )
    beta = torch.as_tensor(scm.beta.T[None])
    noise = torch.tensor([[TINY.noise_std**2]], dtype=torch.float64)
    ours = population.task_risks(params, beta, joint, noise)[0].numpy()
    np.testing.assert_allclose(ours, risks(scm, psi, weights, bias), rtol=1e-12)
    cka = float(population.stream_cka(params["psi"], joint)[0])
    assert cka == pytest.approx(population_cka(scm, psi), rel=1e-10)
    swap = float(population.swap_loss(params, beta, joint, noise)[0])
    assert swap == pytest.approx(float(ours.mean()), rel=1e-12)


@pytest.mark.parametrize(("v", "rho"), [(0.3, 0.5), (0.1, 0.9), (3.0, 0.5)])
def test_stream_cka_vanishes_at_the_critical_angle(v, rho):
    joint = population.joint_covariance(
        torch.tensor([v], dtype=torch.float64), torch.tensor([rho], dtype=torch.float64), 1
    )
    angle = cells.critical_angle(v, rho)
    assert (
        float(population.stream_cka(torch.tensor([angle], dtype=torch.float64), joint)[0]) < 1e-20
    )
    assert float(population.stream_cka(torch.tensor([0.0]).double(), joint)[0]) > 1e-3


def test_outcome_rules():
    assert rules.classify(-0.2, 1.0, TINY) == "better"
    assert rules.classify(0.2, 1.0, TINY) == "worse"
    assert rules.classify(0.01, 1.0, TINY) == "no difference"
    assert rules.held("better", -0.3, -0.1) and not rules.held("better", -0.3, 0.1)
    assert rules.held("worse", 0.1, 0.3) and not rules.held("worse", -0.1, 0.3)
    assert rules.held("no difference", -0.1, 0.1) and not rules.held("no difference", 0.1, 0.2)


def test_an_unknown_correlation_kind_is_refused_in_one_line():
    with pytest.raises(InvalidParameterError, match="correlation kind: expected one of"):
        Correlation("labels", 0.5)


def test_fewer_than_two_seeds_are_refused_in_one_line():
    with pytest.raises(InvalidParameterError, match="seeds: expected an integer >= 2"):
        replace(TINY, seeds=1)


def test_regimes_split_v_and_the_correlation():
    def regime(v, rho):
        return cells.regime_of(Cell(v, Correlation("residual", rho), 0.6))

    assert regime(0.01, 0.0) == "v -> 0 (v = 0.01), rho = 0"
    assert regime(0.3, 0.9) == "small v (0.1, 0.3), rho > 0"
    assert regime(1.0, 0.0) == "control Sigma_S = Sigma_s (v = 1), rho = 0"
    assert regime(3.0, 0.5) == "v > 1, rho > 0"


@pytest.fixture(scope="module")
def tiny_run():
    return STUDY.run(TINY, seed=0)


def test_predictions_are_registered_before_measuring_and_use_no_trained_quantity(tiny_run):
    seen = {}

    def spy(context):
        seen["predicted"] = context.registration["data"]["predicted"]
        seen["ids"] = [p["id"] for p in context.registration["predictions"]]
        seen["s13"] = context.registration["data"]["s13"]
        raise RuntimeError("stop before training")

    with pytest.raises(RuntimeError, match="stop before training"):
        replace(STUDY, measure=spy).run(TINY, seed=0)
    assert seen["ids"] == ["P1", "P2", "P3", "P4", "P5"]
    label_cells = [c for c in model_a.measured_cells(TINY) if c.correlation.kind == "label"]
    assert label_cells and len(seen["s13"]) == len(label_cells)
    assert seen["s13"] == label_mediated.registered_signs(TINY, label_cells)
    alone = registration.predicted_rows(
        TINY, [f(*a) for f, a in registration.prediction_jobs(TINY, 0, "cpu")]
    )
    assert [r["prediction"] for r in seen["predicted"]] == [r.prediction for r in alone]
    written = tiny_run["registration"]["data"]["predicted"]
    assert [r["difference"]["mean"] for r in written] == pytest.approx(
        [r.difference.mean for r in alone]
    )
    assert (
        tiny_run["registration"]["registered_at"]
        <= tiny_run["registration"]["measurement_started_at"]
    )


def test_s6_control_cka_only_is_predicted_and_measured_as_no_difference(tiny_run):
    control = [Row.from_dict(r) for r in tiny_run["summary"]["control"]]
    assert control
    for row in control:
        assert row.predicted_mean == 0.0
        assert row.prediction == "no difference"
        assert row.measured == "no difference"
    assert tiny_run["summary"]["control_held"]
    assert {o["id"]: o["held"] for o in tiny_run["outcomes"]}["P2"] is True


def test_every_headline_cell_carries_prediction_measurement_and_selection(tiny_run):
    rows = [Row.from_dict(r) for r in tiny_run["summary"]["rows"]]
    headline = [r for r in rows if r.baseline == "best" and r.length == "long"]
    assert {r.variant for r in headline} == set(methods.HEADLINE)
    assert all(r.best_balancer in methods.BALANCERS for r in headline)
    assert all(
        math.isfinite(r.difference.se) and r.low <= r.difference.mean <= r.high for r in headline
    )
    assert all(r.prediction in rules.OUTCOMES for r in headline)
    assert tiny_run["summary"]["oracle"]
    assert tiny_run["verdict"] in (HOLDS, QUALIFIED, FAILS)


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
    held = rules.held(prediction, low, high)
    assert rules.diagnosis(prediction, band, predicted, low, high, held) == expected


def test_seeds_needed_grows_as_the_effect_shrinks_against_its_spread():
    small = rules.needed_seeds("better", -0.01, 0.1, TINY)
    large = rules.needed_seeds("better", -0.1, 0.1, TINY)
    assert small > large >= 2
    assert small == pytest.approx(100 * large, rel=0.05)
    assert rules.needed_seeds("no difference", 0.0, 0.1, TINY) is None


def test_every_headline_row_is_diagnosed_and_counted(tiny_run):
    rows = [Row.from_dict(r) for r in tiny_run["summary"]["rows"]]
    headline = [r for r in rows if r.model == "A" and r.baseline == "best"]
    assert {r.diagnosis for r in headline} <= set(rules.DIAGNOSES)
    assert all((r.diagnosis == "held") == r.held for r in headline)
    counts = tiny_run["summary"]["diagnosis"]["A"]
    assert sum(counts[name] for name in rules.DIAGNOSES) == counts["rows"] == len(headline)
    assert tiny_run["summary"]["held_share"]["A"] == pytest.approx(counts["held"] / counts["rows"])


def test_groups_split_the_balancers_by_backward_passes():
    from coremtl.batched.balancing import BATCHED_BALANCERS, LOSS_WEIGHTINGS

    assert set(methods.BALANCERS) <= set(BATCHED_BALANCERS)
    assert set(methods.LOSS_BALANCERS) == set(methods.BALANCERS) & set(LOSS_WEIGHTINGS)
    loss, jacobian = methods.GROUPS
    assert set(jacobian) == set(methods.BALANCERS) - set(LOSS_WEIGHTINGS)
    assert sorted((*loss, *jacobian)) == sorted(methods.METHODS)
    names = methods.balancer_names(loss, 2)
    assert names == tuple(m if m in LOSS_WEIGHTINGS else "ew" for m in loss for _ in range(2))


def test_training_jobs_cover_every_unit_once_in_chunks():
    config = replace(TINY, chunk=2 * len(methods.METHODS))
    jobs = measurement.training_jobs(config)
    assert all(isinstance(job, measurement.TrainingJob) for job in jobs)
    units = len(model_a.unit_cells(config))
    assert sorted(u for j in jobs for u in range(j.start, j.start + j.size)) == list(range(units))
    assert max(job.size for job in jobs) == 2


def test_worker_processes_give_the_serial_result():
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    tiny_b = replace(
        TINY,
        chunk=2 * len(methods.METHODS),
        mlp=replace(
            FAST_MLP, variances=(0.1,), rhos=(0.0,), train=32, validation=32, seeds=3,
            evaluation=256, jacobian_points=32, chunk=24,
            schedules={"gd": Schedule(lr=0.05, short=2, long=4)},
        ),
    )  # fmt: skip
    serial = STUDY.run(tiny_b, seed=0)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:

        def mapper(jobs):
            return [f.result() for f in [pool.submit(fn, *args) for fn, args in jobs]]

        parallel = STUDY.run(tiny_b, seed=0, mapper=mapper)
    assert len([j for j in measurement.training_jobs(tiny_b) if j.model == "B"]) > 1
    assert len(model_b.unit_cells(tiny_b)) == 6
    for result in (serial, parallel):
        for key in ("registered_at", "measurement_started_at"):
            result["registration"].pop(key)
    assert json.dumps(parallel, sort_keys=True) == json.dumps(serial, sort_keys=True)


def _arrays(values: dict[str, list[float]], config) -> dict:
    """``{method: measurements}`` with every measurement of a method set to its per-seed
    ``values`` (default 2.0, 2.1, 2.2)."""
    keys = ["validation", "source_risk"] + [
        f"{kind}|{direction}|{delta}"
        for kind in ("gap", "target")
        for direction in cells.DIRECTIONS
        for delta in config.deltas
    ]
    return {
        method: {key: np.asarray(values.get(method, [2.0, 2.1, 2.2]), float) for key in keys}
        for method in methods.METHODS
    }


CELL = Cell(0.1, Correlation("residual", 0.0), 0.6)


def test_a_diverged_run_is_counted_left_out_and_never_selected():
    config = replace(TINY, deltas=(1.0,))
    values = {"ew": [1.0, 1.0, 1.0], "pcgrad": [0.5, np.nan, 0.5], "mgda": [0.9, 0.9, 0.9]}
    values["core-mtl"] = [0.5, np.inf, 0.7]
    rows = compare(_arrays(values, config), [CELL] * 3, config, ("A", "gd", "long"))
    headline = [r for r in rows if r.baseline == "best" and r.variant == "core-mtl"]
    assert {r.best_balancer for r in headline} == {"mgda"}
    for row in headline:
        assert row.diverged == 1 and row.difference.n == 2
        assert row.difference.mean == pytest.approx(np.mean([0.5 - 0.9, 0.7 - 0.9]))
    registered = {r.key(): replace(r, prediction="better", band=0.01) for r in rows}
    attached = attach(rows, registered, config)
    diverged = [r for r in attached if r.diverged]
    assert diverged and all(not r.held and r.diagnosis == "diverged" for r in diverged)


def test_a_regime_averages_the_paired_difference_per_seed_over_its_cells():
    config = replace(TINY, deltas=(1.0,))
    other = replace(CELL, v=0.3)
    values = {"ew": [1.0, 1.0, 1.0, 2.0, 2.0, 2.0], "core-mtl": [0.5, 0.7, 0.6, 1.9, 1.5, 1.8]}
    values.update({m: [9.0] * 6 for m in methods.METHODS if m not in values})
    arrays = _arrays(values, config)
    unit_cells = [CELL] * 3 + [other] * 3
    rows = compare(arrays, unit_cells, config, ("A", "gd", "long"))
    registered = {r.key(): replace(r, prediction="better", band=0.01) for r in rows}
    scored = attach(rows, registered, config)
    predicted = summary.predicted_regimes(list(registered.values()), config)
    (regime,) = summary.regimes_of(arrays, unit_cells, scored, predicted, config)
    per_seed = np.mean([[0.5 - 1, 0.7 - 1, 0.6 - 1], [1.9 - 2, 1.5 - 2, 1.8 - 2]], axis=0)
    assert regime.cells == 2 and regime.difference.n == 3
    assert regime.difference.mean == pytest.approx(per_seed.mean())
    assert regime.measured == "better" and regime.predicted == "better"
    assert summary.implied_verdict(predicted) == HOLDS


@pytest.mark.parametrize(
    ("better", "total", "verdict"), [(4, 4, HOLDS), (1, 4, QUALIFIED), (0, 4, FAILS)]
)
def test_the_claim_holds_everywhere_somewhere_or_nowhere(better, total, verdict):
    assert summary.verdict_of(better, total) == verdict


def _summary_with(share_a: float, control_held: bool | None, better: list, predicted: list):
    counts = dict.fromkeys(rules.DIAGNOSES, 0) | {"rows": 10}
    control = [] if control_held is None else [
        replace(
            compare(_arrays({}, TINY), [CELL] * 3, TINY, ("A", "gd", "long"))[0],
            prediction="no difference", held=control_held,
        ).to_dict()
    ]  # fmt: skip
    return {
        "held_share": {"A": share_a},
        "diagnosis": {"A": counts},
        "control": control,
        "control_held": control_held,
        "claim": {"settings": 4, "better": better, "predicted_better": predicted},
    }


def test_every_prediction_can_come_out_both_ways():
    scores = {p.id: p.score for p in finding.predictions(TINY)}
    holds = _summary_with(0.95, True, ["A gd, x"], ["A gd, x"])
    fails = _summary_with(0.5, False, ["A gd, x"], ["A gd, y"])
    for key in ("P1", "P2", "P4"):
        assert scores[key](holds).held is True, key
        assert scores[key](fails).held is False, key
    assert scores["P3"](holds).held is None
    with_b = {**holds, "held_share": {"A": 0.95, "B": 0.95}, "diagnosis": {**holds["diagnosis"],
              "B": holds["diagnosis"]["A"]}}  # fmt: skip
    assert scores["P3"](with_b).held is True
    with_b["held_share"]["B"] = 0.2
    assert scores["P3"](with_b).held is False
    assert scores["P2"](_summary_with(0.95, None, [], [])).held is None


def test_the_finding_reads_in_the_sense_of_its_verdict(tiny_run):
    result = tiny_run["finding"]
    claim = tiny_run["summary"]["claim"]
    assert (
        result["verdict"]
        == claim["verdict"]
        == summary.verdict_of(len(claim["better"]), claim["settings"])
    )
    from proofs.headline import HEADLINE_LIMIT, Headline

    text = Headline.from_dict(result["headline"]).text()
    assert len(text) <= HEADLINE_LIMIT and "gap(CORE-MTL) - gap(best)" in text
    assert result["result"].count(". ") <= 1 and result["result"].endswith(".")
    measured = [o["measured"] for o in tiny_run["outcomes"]]
    prose = " ".join([result["result"], *result["details"], *measured])
    assert "True" not in prose and "False" not in prose
    if claim["verdict"] == FAILS:
        assert "not reliably smaller" in result["result"]


def test_the_deciding_regime_is_the_weakest_support_or_the_closest_to_it():
    def regime(high: float, measured: str):
        return summary.Regime("A", "gd", "long", f"r{high}", 1, 1, {}, Estimate(high - 1, 0.1, 5, 0.2),
                              high - 2, high, 0, measured, 0.0, 0.0, "better")  # fmt: skip

    regimes = [regime(-0.5, "better"), regime(-0.1, "better"), regime(0.3, "no difference")]
    assert finding.deciding(regimes[:2], HOLDS).high == -0.1
    assert finding.deciding(regimes, QUALIFIED).high == -0.5
    assert finding.deciding(regimes[2:], FAILS).high == 0.3


def test_the_seed_plan_takes_a_quantile_of_the_needs_within_its_bounds():
    base = compare(_arrays({}, TINY), [CELL] * 3, TINY, ("A", "gd", "long"))[0]
    rows = [replace(base, seeds_needed=n) for n in (5, 10, 20, 40, 400)]
    rows.append(replace(base, baseline="ew", seeds_needed=10_000))
    chosen = power.plan(rows, quantile=0.75, minimum=10, cap=48)
    assert chosen.needs == (5, 10, 20, 40, 400)
    assert chosen.seeds == 40 and chosen.share_met() == pytest.approx(0.8)
    assert power.plan(rows, quantile=1.0, minimum=10, cap=48).seeds == 48
    assert power.plan(rows[:1], quantile=0.5, minimum=10, cap=48).seeds == 10
    with pytest.raises(InvalidParameterError, match="quantile: expected a number in"):
        power.plan(rows, quantile=0.0, minimum=10, cap=48)


def test_figure_is_drawn_from_the_result_alone(tiny_run, tmp_path):
    paths = STUDY.plot(json.loads(json.dumps(tiny_run)), tmp_path)
    assert [p.name for p in paths] == ["study1_regime_map.png", "study1_regime_map.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_outcome_objects_carry_the_prediction_ids(tiny_run):
    assert [o["id"] for o in tiny_run["outcomes"]] == ["P1", "P2", "P3", "P4", "P5"]
    assert isinstance(finding._regimes(tiny_run["summary"]), Outcome)


@pytest.mark.slow
def test_expected_is_the_verdict_the_fast_registration_implies():
    config = CONFIGS["fast"]
    outputs = [f(*a) for f, a in registration.prediction_jobs(config, 0, "cpu")]
    rows = registration.predicted_rows(config, outputs)
    assert summary.implied_verdict(summary.predicted_regimes(rows, config)) == STUDY.expected


@pytest.mark.slow
def test_the_fast_seed_count_is_what_its_plan_gives():
    chosen = power.plan_seeds(CONFIGS["fast"])
    assert chosen.seeds == CONFIGS["fast"].seeds
    assert chosen.share_met() > chosen.share_met(10)


@pytest.mark.parametrize(
    ("better", "words"),
    [([], "not reliably smaller than the best balancer's in any of the 4"),
     (["A gd, r1"], "reliably smaller than the best balancer's in 1 of 4"),
     (["A gd, r1", "A gd, r2", "A adamw, r1", "A adamw, r2"], "reliably smaller than the best "
      "balancer's in all 4")],
)  # fmt: skip
def test_the_result_sentence_reads_as_the_verdict(better, words):
    record = {
        "claim": {"settings": 4, "better": better},
        "held_share": {"A": 0.5},
        "seeds": {"A": 48},
    }
    text = finding.result_text(record)
    assert words in text and "50% of model A's rows (48 paired seeds)" in text
    assert summary.verdict_of(len(better), 4) == {0: FAILS, 1: QUALIFIED, 4: HOLDS}[len(better)]


def test_variants_switch_terms_of_the_one_objective_off():
    config = TINY
    full = config.objective
    assert methods.variant_objective(config, "core-mtl") == full
    assert methods.variant_objective(config, "ew") is None
    only = methods.variant_objective(config, "cka only")
    assert (only.cka_weight, only.cfa_weight, only.reconstruction_weight) == (full.cka_weight, 0, 0)
    weights = methods.method_weights(config, ("w/o CFA", "ew", "w/o rec"), units=2)
    assert [weights.row(m) for m in range(6)] == [
        (1.0, 0.0, 1.0),
        (1.0, 0.0, 1.0),
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 0.0),
        (1.0, 1.0, 0.0),
    ]


def test_label_cell_moments_equal_s13s_joint_and_schur_complement():
    from scm.label_correlation import conditional_covariance, label_joint_covariance

    config = replace(TINY, variances=(), label_variances=(0.3,), loadings=(0.8,))
    unit = model_a.angle_units(config, 0, model_a.measured_cells(config), 1)[0]
    tensors = model_a.unit_tensors(config, [unit])
    joint, label_noise, given = population.source_moments(
        tensors["v"], tensors["rho"], tensors["beta"], tensors["loading"], tensors["noise_var"]
    )
    k, tasks = config.k, config.tasks
    label_sd = np.sqrt((unit.beta**2).sum(axis=0) + config.noise_std**2)
    loading = 0.8 * np.eye(k, tasks) / label_sd
    full = label_joint_covariance(
        np.eye(k), 0.3 * np.eye(k), loading, unit.beta.T, np.full(tasks, config.noise_std)
    )
    np.testing.assert_allclose(joint[0].numpy(), full[: 2 * k, : 2 * k], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(given[0].numpy(), conditional_covariance(full, k), atol=1e-12)
    np.testing.assert_allclose(label_noise[0].numpy(), config.noise_std**2 * loading)
    copied = np.diag(joint[0].numpy())[k:] - 0.3
    np.testing.assert_allclose(copied[:tasks], 0.8**2, rtol=1e-12)
    psi = torch.tensor([0.0], dtype=torch.float64)
    assert float(population.stream_cka(psi, joint)[0]) > 1e-3
    assert float(population.stream_cka(psi, given)[0]) < 1e-20


def test_label_cell_population_risks_equal_the_sampled_risks():
    config = replace(TINY, variances=(), label_variances=(0.3,), loadings=(1.0,))
    unit = model_a.angle_units(config, 0, model_a.measured_cells(config), 1)[0]
    tensors = model_a.unit_tensors(config, [unit])
    params = params_of(0.4, np.array([[0.7, -0.2], [0.1, 0.4]]), np.array([0.05, -0.1]))
    exact = population.evaluate(params, tensors, (1.0,))["source_risk"][0]
    x, y = model_a.source_sample(config, unit, 200_000, 7)
    model = StackedAngle(tensors["mixing"], params["psi"], params["head_w"], params["head_b"])
    with torch.no_grad():
        predicted = model.predict(model.encode_semantic(torch.as_tensor(x)[None]))[0].numpy()
    errors = ((predicted - y) ** 2).mean(axis=1)
    assert abs(errors.mean() - exact) < 5 * errors.std(ddof=1) / math.sqrt(errors.size)
    no_copy = replace(config, loadings=(0.0,))
    plain = model_a.unit_tensors(
        no_copy, model_a.angle_units(no_copy, 0, model_a.measured_cells(no_copy), 1)
    )
    assert abs(population.evaluate(params, plain, (1.0,))["source_risk"][0] - exact) > 0.05


def test_variant_penalties_and_label_cell_statements():
    assert methods.penalty_of(TINY, "core-mtl") == "unconditional"
    assert methods.penalty_of(TINY, "core-mtl (conditional)") == "conditional"
    assert methods.penalty_of(TINY, "w/o CKA") == "none" == methods.penalty_of(TINY, "pcgrad")
    label = Cell(0.1, Correlation("label", 1.0), 0.6)
    assert cells.regime_of(label).endswith("label-mediated")
    assert cells.statement_of(label, "conditional").startswith("S13: the CKA given the labels")
    assert cells.statement_of(label, "unconditional").startswith("S13: CKA(0) > 0")
    assert label.correlation.rho == 0 and label.correlation.loading == 1.0
    with pytest.raises(InvalidParameterError, match=r"^correlation kind: expected one of"):
        Correlation("labels", 1.0)


@pytest.mark.parametrize(
    ("unconditional", "conditional", "between", "reading"),
    [
        ("worse", "no difference", "better", "removed"),
        ("worse", "better", "better", "removed"),
        ("worse", "worse", "better", "reduced"),
        ("worse", "worse", "no difference", "not removed"),
        ("no difference", "no difference", "no difference", "no penalty to remove"),
    ],
)
def test_the_reading_says_whether_the_conditional_penalty_removes_the_cost(
    unconditional, conditional, between, reading
):
    assert label_mediated.reading_of(unconditional, conditional, between) == reading


def _label_regime(between: str, registered: int) -> dict:
    some = Estimate(-0.1, 0.01, 10, 0.03)
    return label_mediated.LabelRegime(
        "gd", "long", "small v, label-mediated", 2, some, some, some, "worse", "no difference",
        between, registered, label_mediated.reading_of("worse", "no difference", between),
    ).to_dict()  # fmt: skip


def test_p5_holds_where_the_measured_sign_is_s13s_and_fails_elsewhere():
    holds = label_mediated.score({"label_regimes": [_label_regime("better", -1)]})
    fails = label_mediated.score({"label_regimes": [_label_regime("no difference", -1)]})
    assert holds.held is True and fails.held is False
    assert "removed in 1" in holds.text
    assert label_mediated.score({"label_regimes": []}).held is None


def test_label_regimes_are_measured_and_read_in_the_details(tiny_run):
    records = tiny_run["summary"]["label_regimes"]
    assert {r["length"] for r in records} == {"short", "long"}
    regime = label_mediated.LabelRegime.from_dict(records[-1])
    assert regime.cells == 1 and regime.between.n == TINY.seeds
    lines = [line for line in tiny_run["finding"]["details"] if line.startswith("- S13")]
    assert len(lines) == sum(r["length"] == "long" for r in records)
