"""Study 8 (step cost against K): FLOPs and backward passes counted on a tiny run, wall times kept
out of the summary, the figure and the finding, predictions registered before measuring and a
verdict that can come out each way."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from experiments.study import FAILS, HOLDS, QUALIFIED, Outcome
from experiments.synthetic import study8_cost as study

TINY = replace(study.CONFIGS["smoke"], steps=1, repeats=1)


@pytest.fixture(scope="module")
def tiny():
    return study.STUDY.run(TINY, seed=0)


def test_every_method_and_task_count_is_measured_with_its_wall_times(tiny):
    rows = tiny["measurements"]["rows"]
    assert {(r["method"], r["tasks"]) for r in rows} == {
        (m, k) for m in study.METHODS for k in TINY.task_counts
    }
    assert all(len(r["seconds_per_step"]) == TINY.repeats for r in rows)
    assert all(r["step_flops"] > r["encoder_flops"] > r["encoder_forward_flops"] > 0 for r in rows)


def test_equal_weighting_makes_one_backward_pass_and_pcgrad_one_per_task(tiny):
    methods = tiny["summary"]["methods"]
    assert methods["ew"]["backward_passes"] == [1.0] * len(TINY.task_counts)
    assert methods["core-mtl"]["backward_passes"] == [1.0] * len(TINY.task_counts)
    assert methods["pcgrad"]["backward_passes"] == [float(k) for k in TINY.task_counts]


def test_the_terms_add_a_cost_that_grows_only_as_the_heads_of_an_ew_step(tiny):
    added = tiny["summary"]["added"]
    assert added["flops"][0] > 0
    assert 0 < added["increase"] <= tiny["summary"]["ew_increase"]
    assert [o["held"] for o in tiny["outcomes"]] == [True, True, True]
    assert tiny["verdict"] == QUALIFIED == study.STUDY.expected


def test_wall_times_reach_neither_the_summary_nor_the_figure_nor_the_finding(tiny, tmp_path):
    slower = copy.deepcopy(tiny)
    for row in slower["measurements"]["rows"]:
        row["seconds_per_step"] = [7.0 * s for s in row["seconds_per_step"]]
    summary = study.summarise(TINY, slower["measurements"])
    assert summary == tiny["summary"]
    outcomes = [replace(p.score(summary), id=p.id) for p in study.predictions(TINY)]
    assert study.conclude(TINY, summary, outcomes).to_dict() == tiny["finding"]
    first = study.plot(tiny, tmp_path / "first")
    second = study.plot(slower, tmp_path / "second")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_predictions_are_registered_before_anything_is_measured(monkeypatch):
    seen = {}
    measure = study.STUDY.measure

    def spy(context):
        seen["registered"] = [p["id"] for p in context.registration["predictions"]]
        return measure(context)

    config = replace(TINY, task_counts=(2, 3))
    result = replace(study.STUDY, measure=spy).run(config, seed=0)
    assert seen["registered"] == ["P1", "P2", "P3"]
    assert (
        result["registration"]["registered_at"] <= result["registration"]["measurement_started_at"]
    )


def _summary(core_backward: int, pcgrad_passes: tuple[int, int], added: tuple[int, int]) -> dict:
    one = 100

    def method(flops, passes):
        return {
            "flops": flops,
            "encoder_backward_flops": [p * one for p in passes],
            "backward_pass_flops": [one, one],
            "backward_passes": [float(p) for p in passes],
            "growth": flops[1] / flops[0],
        }

    ew = [1000, 1010]
    return {
        "task_counts": [2, 4],
        "methods": {
            "ew": method(ew, (1, 1)),
            "pcgrad": method([2000, 4000], pcgrad_passes),
            "core-mtl": method(
                [e + a for e, a in zip(ew, added, strict=True)], (core_backward,) * 2
            ),
        },
        "added": {
            "flops": list(added),
            "growth": added[1] / added[0],
            "increase": added[1] - added[0],
            "per_task": (added[1] - added[0]) / 2,
        },
        "ew_increase": ew[1] - ew[0],
    }


@pytest.mark.parametrize(
    ("summary", "held", "verdict"),
    [
        (_summary(1, (2, 4), (500, 500)), [True, True, True], HOLDS),
        (_summary(1, (2, 4), (500, 510)), [True, True, True], QUALIFIED),
        (_summary(1, (1, 1), (500, 510)), [True, False, True], QUALIFIED),
        (_summary(1, (2, 4), (500, 530)), [True, True, False], FAILS),
        (_summary(2, (2, 4), (500, 500)), [False, True, True], FAILS),
    ],
)
def test_each_prediction_and_the_verdict_can_come_out_either_way(summary, held, verdict):
    config = replace(TINY, task_counts=(2, 4))
    outcomes = [replace(p.score(summary), id=p.id) for p in study.predictions(config)]
    assert [o.held for o in outcomes] == held
    finding = study.conclude(config, summary, outcomes)
    assert finding.verdict == verdict
    assert len(finding.headline.text()) <= 150
    assert "True" not in finding.result and "False" not in finding.result


def test_the_result_sentence_compares_the_terms_growth_in_the_verdict_s_sense():
    config = replace(TINY, task_counts=(2, 4))
    for added, word in (((500, 505), "less than"), ((500, 510), "equal to"), ((500, 530), "more")):
        summary = _summary(1, (2, 4), added)
        outcomes: list[Outcome] = [
            replace(p.score(summary), id=p.id) for p in study.predictions(config)
        ]
        assert word in study.conclude(config, summary, outcomes).result
