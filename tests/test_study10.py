"""Study 10 (MT-CRL's claim, S12): the smoke run end to end, its prediction against the closed
form, and a verdict that can come out either way."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from experiments.synthetic import STUDIES
from experiments.synthetic import study as study_of
from experiments.synthetic import study10_mtcrl as study
from experiments.synthetic.common import VERDICTS
from scm import multitask as mt

TINY = replace(study.CONFIGS["smoke"], train_samples=128, eval_samples=1000, steps=8)


@pytest.fixture(scope="module")
def smoke():
    return study.run(TINY, seed=0)


def test_study10_is_registered_with_its_statement():
    assert STUDIES[10] == "experiments.synthetic.study10_mtcrl"
    assert study_of(10).statements == ("S12",)
    assert set(study.CONFIGS) == {"smoke", "fast", "full"}


def test_smoke_run_reports_a_finding_a_verdict_and_paired_differences(smoke, tmp_path):
    json.dumps(smoke)
    assert smoke["verdict"] in VERDICTS
    assert "summed OOD gap" in smoke["finding"]
    config = TINY
    seeds = {
        method: [r["seed"] for r in smoke["records"] if r["method"] == method]
        for method in config.methods
    }
    assert all(found == seeds["single-task"] for found in seeds.values())
    assert len(seeds["single-task"]) == config.seeds
    difference = smoke["differences"]["ew - single-task"]
    gaps = {
        m: np.array([r["gap"] for r in smoke["records"] if r["method"] == m])
        for m in ("ew", "single-task")
    }
    assert difference["mean"] == pytest.approx(float((gaps["ew"] - gaps["single-task"]).mean()))
    paths = study.plot(smoke, tmp_path)
    assert all(path.is_file() for path in paths) and len(paths) == 2


def test_the_prediction_is_s12s_closed_form_for_each_seed(smoke):
    config = TINY
    gaps = []
    for seed in range(config.seeds):
        model = study.study_scm(config, seed)
        optimum = mt.multitask_predictors(model, config.width)
        q_s, q_t = mt.signal_covariance(model, mt.SOURCE), mt.signal_covariance(model, mt.TARGET)
        gaps.append(np.trace(optimum.projection @ (q_s - q_t)))
    assert smoke["prediction"]["multi_task_gap"] == pytest.approx(np.mean(gaps), abs=1e-9)
    assert smoke["prediction"]["multi_task_gap"] > 0.1
    assert "before training" in smoke["prediction"]["text"]


def _differences(narrow: float, wide: float, error: float) -> dict:
    return {
        "ew - single-task": {"mean": narrow, "standard_error": error, "n": 4},
        "ew (width K) - ew": {"mean": wide, "standard_error": error, "n": 4},
    }


@pytest.mark.parametrize(
    ("narrow", "wide", "verdict"),
    [(0.25, -0.25, "agrees"), (0.25, 0.0, "contradicts"), (0.01, -0.25, "contradicts")],
)
def test_the_verdict_needs_both_predictions_beyond_two_standard_errors(narrow, wide, verdict):
    summary = {"ew": {"gap": 0.25, "gap_standard_error": 0.01, "source_risk": 0.2}}
    prediction = {"multi_task_gap": 0.25}
    found, _ = study._verdict(
        study.CONFIGS["fast"], summary, _differences(narrow, wide, 0.02), prediction
    )
    assert found == verdict


@pytest.mark.slow
def test_fast_run_agrees_and_equal_weighting_reaches_the_closed_form_gap():
    result = study.run(study.CONFIGS["fast"], seed=0)
    assert result["verdict"] == "agrees"
    ew = result["summary"]["ew"]
    closed = result["prediction"]["multi_task_gap"]
    assert abs(ew["gap"] - closed) <= 3 * ew["gap_standard_error"] + 0.05 * closed
