"""Study 11 (S1, S2 in closed form against Monte Carlo): the smoke run holds, the rule is
registered before sampling, and the verdict fails for a closed form or a bound that is off."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from itertools import pairwise

import pytest
from scipy.stats import norm

from experiments.stats import bonferroni_z
from experiments.study import FAILS, HOLDS
from experiments.synthetic import STUDIES
from experiments.synthetic import study as study_of
from experiments.synthetic import study11_closed_form as study
from experiments.synthetic.study11_closed_form import cells as cells_module
from experiments.synthetic.study11_closed_form.finding import judge
from scm.validation import InvalidParameterError

SMOKE = study.CONFIGS["smoke"]


@pytest.fixture(scope="module")
def smoke():
    return study.STUDY.run(SMOKE, seed=0)


def _cells(result: dict) -> list[dict]:
    """The measured cells with the rule's flags and standard units of the summary."""
    measured, judged = result["measurements"]["cells"], result["summary"]["judged"]
    return [{**cell, **flags} for cell, flags in zip(measured, judged, strict=True)]


def test_study11_is_registered_with_s1_and_s2():
    assert STUDIES[11] == "experiments.synthetic.study11_closed_form"
    assert study_of(11) is study.STUDY
    assert study_of(11).statements == ("S1", "S2")
    assert set(study.CONFIGS) == {"smoke", "fast", "full"}
    assert study.CONFIGS["fast"].samples >= 50_000
    assert study.CONFIGS["full"].samples >= 50_000


def test_smoke_run_holds_in_every_cell_and_draws_its_figure(smoke, tmp_path):
    json.dumps(smoke)
    assert smoke["verdict"] == HOLDS == study.STUDY.expected
    assert [o["held"] for o in smoke["outcomes"]] == [True, True, True]
    cells = _cells(smoke)
    assert len(cells) == smoke["registration"]["data"]["cells"] == 3 * 1 * 1 * 3
    assert all(cell["s1_holds"] and cell["s2_holds"] for cell in cells)
    assert f"of {len(cells)} cells" in smoke["finding"]["result"]
    paths = study.STUDY.plot(smoke, tmp_path)
    assert [path.name for path in paths] == ["study11_closed_form.png", "study11_closed_form.pdf"]
    assert all(path.is_file() for path in paths)


def test_the_rule_is_the_bonferroni_quantile_over_the_cells_of_the_config(smoke):
    cells = len(SMOKE.psis) * len(SMOKE.variances) * len(SMOKE.shift_sizes) * 3
    registered = smoke["registration"]["data"]
    assert registered == study.rule(SMOKE)
    assert registered["z"] == pytest.approx(norm.ppf(1 - 0.025 / cells), rel=1e-12)
    assert str(cells) in registered["text"]


def test_the_rule_and_predictions_are_registered_before_any_sampling():
    seen = {}
    measure = study.STUDY.measure

    def spy(context):
        seen["rule"] = context.registration["data"]["z"]
        seen["predictions"] = [p["id"] for p in context.registration["predictions"]]
        return measure(context)

    replace(study.STUDY, measure=spy).run(replace(SMOKE, samples=200, psis=(0.5,)), seed=0)
    assert seen["predictions"] == ["P1", "P2", "P3"]
    assert seen["rule"] == pytest.approx(bonferroni_z(3, 0.05))


def test_bonferroni_z_grows_with_the_number_of_cells():
    values = [bonferroni_z(cells, 0.05) for cells in (1, 2, 10, 100, 1000)]
    assert values[0] == pytest.approx(1.959964, abs=1e-6)
    assert all(a < b for a, b in pairwise(values))


def test_bonferroni_z_rejects_a_non_positive_number_of_cells():
    with pytest.raises(InvalidParameterError, match="tests, level: expected"):
        bonferroni_z(0, 0.05)


def test_common_random_numbers_give_a_smaller_standard_error_than_independent_draws(smoke):
    scored = [cell for cell in _cells(smoke) if cell["z_s1"] is not None]
    assert scored
    assert all(cell["standard_error"] < cell["independent_standard_error"] for cell in scored)


def test_only_the_worst_direction_attains_the_s2_bound_in_closed_form(smoke):
    moving = [cell for cell in _cells(smoke) if math.sin(cell["psi"]) > 0]
    for cell in moving:
        if cell["direction"] == "worst":
            assert cell["closed_form"] == pytest.approx(cell["bound"], rel=1e-9)
        else:
            assert cell["closed_form"] < cell["bound"]
    orthogonal = [cell for cell in moving if cell["direction"] == "orthogonal"]
    assert orthogonal and all(abs(cell["closed_form"]) < 1e-12 for cell in orthogonal)


def test_a_closed_form_off_by_a_few_standard_errors_fails(smoke, monkeypatch):
    cells = _cells(smoke)
    scored = [cell for cell in cells if cell["z_s1"] is not None]
    z = smoke["summary"]["z"]
    offset = 3 * z * min(cell["standard_error"] for cell in scored)
    expected_failures = sum(
        abs(cell["monte_carlo"] - cell["closed_form"] - offset)
        > z * cell["standard_error"] + cell["roundoff"]
        for cell in cells
    )
    original = cells_module.closed_form_gap
    monkeypatch.setattr(cells_module, "closed_form_gap", lambda *args: original(*args) + offset)
    shifted = study.STUDY.run(SMOKE, seed=0)
    assert shifted["verdict"] == FAILS
    assert shifted["summary"]["s1_failures"] == expected_failures >= 1
    assert shifted["outcomes"][0]["held"] is False
    assert "MC - S1" in shifted["finding"]["headline"]["metric"]


@pytest.mark.parametrize(("factor", "failing"), [(1.5, {"worst"}), (0.3, {"worst", "random:0"})])
def test_a_wrong_worst_case_bound_fails(monkeypatch, factor, failing):
    original = cells_module.worst_case_bound
    monkeypatch.setattr(cells_module, "worst_case_bound", lambda *args: factor * original(*args))
    result = study.STUDY.run(SMOKE, seed=0)
    assert result["verdict"] == FAILS
    assert result["summary"]["s1_failures"] == 0
    found = {cell["direction"] for cell in _cells(result) if not cell["s2_holds"]}
    assert found == failing
    held = [o["held"] for o in result["outcomes"]]
    assert held == [True, "random:0" not in failing, False]
    assert "worst direction" in result["finding"]["headline"]["metric"]


def _cell(direction: str, monte_carlo: float, closed_form: float, bound: float) -> dict:
    return {
        "direction": direction,
        "monte_carlo": monte_carlo,
        "closed_form": closed_form,
        "bound": bound,
        "standard_error": 0.1,
        "roundoff": 0.0,
    }


def _failures(judged: dict) -> tuple[int, int, int]:
    return judged["s1_failures"], judged["s2_worst_failures"], judged["s2_other_failures"]


def test_judge_allows_z_standard_errors_and_no_more():
    z = 3.0
    inside = [_cell("random:0", 1.0 + 0.299, 1.0, 2.0), _cell("worst", 2.0 - 0.299, 2.0, 2.0)]
    assert _failures(judge(inside, z)) == (0, 0, 0)
    outside = [_cell("random:0", 1.0 + 0.301, 1.0, 2.0)]
    assert judge(outside, z)["s1_failures"] == 1
    below_the_bound = [_cell("orthogonal", 0.0, 0.0, 2.0)]
    assert _failures(judge(below_the_bound, z)) == (0, 0, 0)
    worst_below = [_cell("worst", 1.0, 1.0, 2.0)]
    assert _failures(judge(worst_below, z)) == (0, 1, 0)
    above_the_bound = [_cell("random:0", 2.5, 2.5, 2.0)]
    assert _failures(judge(above_the_bound, z)) == (0, 0, 1)


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"psis": (0.0, 2.0)}, "psis"),
        ({"variances": (0.0,)}, "variances"),
        ({"k": 1}, "orthogonal"),
        ({"head": (1.0, 2.0, 3.0)}, "head"),
        ({"samples": 1}, "samples"),
        ({"random_directions": -1}, "random_directions"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_field(change, parameter):
    with pytest.raises(InvalidParameterError, match=f"^{parameter}: expected") as raised:
        study.STUDY.run(replace(SMOKE, **change), seed=0)
    assert "\n" not in str(raised.value)


def test_given_heads_are_used_in_every_cell():
    config = replace(SMOKE, head=(0.5, -0.25), bias=0.1)
    result = study.STUDY.run(config, seed=0)
    assert result["verdict"] == HOLDS
    assert {cell["head_norm_sq"] for cell in _cells(result)} == {0.5**2 + 0.25**2}


@pytest.mark.slow
def test_fast_run_holds():
    result = study.STUDY.run(study.CONFIGS["fast"], seed=0)
    assert result["verdict"] == HOLDS
    assert result["registration"]["data"]["cells"] == len(result["measurements"]["cells"]) == 160
