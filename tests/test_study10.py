"""Study 10 (MT-CRL's claim, S12): the smoke run end to end, its registered closed form, the
predictions registered before training, and a verdict that can come out each way."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from experiments.stats import estimate
from experiments.study import FAILS, HOLDS, LEGEND, QUALIFIED
from experiments.synthetic import STUDIES
from experiments.synthetic import study as study_of
from experiments.synthetic import study10_mtcrl as study
from experiments.synthetic.study10_mtcrl import finding
from scm import multitask as mt

TINY = replace(study.CONFIGS["smoke"], train_samples=128, eval_samples=1000, steps=8)


@pytest.fixture(scope="module")
def smoke():
    return study.STUDY.run(TINY, seed=0)


def test_study10_is_registered_with_its_statement():
    assert STUDIES[10] == "experiments.synthetic.study10_mtcrl"
    assert study_of(10) is study.STUDY
    assert study_of(10).statements == ("S12",)
    assert set(study.CONFIGS) == {"smoke", "fast", "full"}


def test_smoke_run_reports_a_finding_a_verdict_and_paired_differences(smoke, tmp_path):
    json.dumps(smoke)
    assert smoke["verdict"] in LEGEND
    assert "summed OOD gap" in smoke["finding"]["headline"]["metric"]
    records = smoke["measurements"]["records"]
    seeds = {
        method: [r["seed"] for r in records if r["method"] == method] for method in TINY.methods
    }
    assert all(found == seeds["single-task"] for found in seeds.values())
    assert len(seeds["single-task"]) == TINY.seeds
    difference = smoke["summary"]["differences"]["ew - single-task"]
    gaps = {
        m: np.array([r["gap"] for r in records if r["method"] == m]) for m in ("ew", "single-task")
    }
    assert difference["mean"] == pytest.approx(float((gaps["ew"] - gaps["single-task"]).mean()))
    assert smoke["summary"]["methods"]["ew"]["gap"] == estimate(gaps["ew"]).to_dict()
    paths = study.STUDY.plot(smoke, tmp_path)
    assert all(path.is_file() for path in paths) and len(paths) == 2


def test_the_registered_prediction_is_s12s_closed_form_for_each_seed(smoke):
    gaps = []
    for seed in range(TINY.seeds):
        model = study.study_scm(TINY, seed)
        optimum = mt.multitask_predictors(model, TINY.width)
        q_s, q_t = mt.signal_covariance(model, mt.SOURCE), mt.signal_covariance(model, mt.TARGET)
        gaps.append(np.trace(optimum.projection @ (q_s - q_t)))
    registered = smoke["registration"]["data"]
    assert registered["multi_task_gap"] == pytest.approx(np.mean(gaps), abs=1e-9)
    assert registered["multi_task_gap"] > 0.1
    assert "before training" in registered["text"]


def test_predictions_and_closed_forms_are_registered_before_training(monkeypatch):
    seen = {}

    def spy(context):
        seen["predictions"] = [p["id"] for p in context.registration["predictions"]]
        seen["closed_form"] = context.registration["data"]["multi_task_gap"]
        return {
            "records": [
                {"seed": 0, "method": m, "gap": 0.0, "off_block_weight": 0.0}
                | {"source_risk": 0.0, "target_risk": 0.0}
                for m in context.config.methods
            ]
        }

    config = replace(TINY, seeds=1)
    replace(study.STUDY, measure=spy).run(config, seed=0)
    assert seen["predictions"] == ["P1", "P2"]
    assert seen["closed_form"] > 0.1


def _summary(narrow: float, wide: float, error: float) -> dict:
    def difference(mean: float) -> dict:
        return {"mean": mean, "se": error, "n": 4, "sd": 2 * error}

    gap = {"mean": 0.25, "se": 0.01, "n": 4, "sd": 0.02}
    entry = {"gap": gap, "source_risk": 0.2, "target_risk": 0.45, "off_block_weight": 0.3}
    return {
        "methods": {"ew": entry, "single-task": entry, "ew (width K)": entry},
        "differences": {
            "ew - single-task": difference(narrow),
            "ew (width K) - ew": difference(wide),
        },
    }


@pytest.mark.parametrize(
    ("narrow", "wide", "held", "verdict"),
    [
        (0.25, -0.25, [True, True], QUALIFIED),
        (0.25, 0.0, [True, False], HOLDS),
        (0.01, -0.25, [False, True], FAILS),
    ],
)
def test_the_verdict_needs_p1_beyond_two_standard_errors_and_p2_qualifies_it(
    narrow, wide, held, verdict
):
    config = replace(study.CONFIGS["fast"], methods=("single-task", "ew", "ew (width K)"))
    summary = _summary(narrow, wide, 0.02)
    outcomes = [replace(p.score(summary), id=p.id) for p in finding.predictions(config)]
    assert [o.held for o in outcomes] == held
    found = finding.conclude(config, summary, outcomes)
    assert found.verdict == verdict
    assert len(found.headline.text()) <= 150
    assert found.result.count(". ") <= 1
    assert "True" not in found.result and "False" not in found.result


@pytest.mark.slow
def test_fast_run_holds_as_qualified_and_equal_weighting_reaches_the_closed_form_gap():
    result = study.STUDY.run(study.CONFIGS["fast"], seed=0)
    assert result["verdict"] == QUALIFIED
    ew = result["summary"]["methods"]["ew"]["gap"]
    closed = result["registration"]["data"]["multi_task_gap"]
    assert abs(ew["mean"] - closed) <= 3 * ew["se"] + 0.05 * closed
