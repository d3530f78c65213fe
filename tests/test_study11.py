"""Study 11 (S1, S2 in closed form against Monte Carlo): the smoke run agrees, the verdict rule is
fixed before sampling and comes out 'contradicts' for a closed form or a bound that is off."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from itertools import pairwise

import pytest
from scipy.stats import norm

from experiments.synthetic import STUDIES
from experiments.synthetic import study as study_of
from experiments.synthetic import study11_closed_form as study
from scm.validation import InvalidParameterError

SMOKE = study.CONFIGS["smoke"]


@pytest.fixture(scope="module")
def smoke():
    return study.run(SMOKE, seed=0)


def test_study11_is_registered_with_s1_and_s2():
    assert STUDIES[11] == "experiments.synthetic.study11_closed_form"
    assert study_of(11).statements == ("S1", "S2")
    assert set(study.CONFIGS) == {"smoke", "fast", "full"}
    assert study.CONFIGS["fast"].samples >= 50_000
    assert study.CONFIGS["full"].samples >= 50_000


def test_smoke_run_agrees_in_every_cell_and_draws_its_figure(smoke, tmp_path):
    json.dumps(smoke)
    assert smoke["verdict"] == "agrees"
    assert len(smoke["cells"]) == smoke["rule"]["cells"] == 3 * 1 * 1 * 3
    assert all(cell["s1_holds"] and cell["s2_holds"] for cell in smoke["cells"])
    assert f"{len(smoke['cells'])} cells" in smoke["finding"]
    paths = study.plot(smoke, tmp_path)
    assert [path.name for path in paths] == ["study11_closed_form.png", "study11_closed_form.pdf"]
    assert all(path.is_file() for path in paths)


def test_the_rule_is_the_bonferroni_quantile_over_the_cells_of_the_config(smoke):
    cells = len(SMOKE.psis) * len(SMOKE.variances) * len(SMOKE.shift_sizes) * 3
    assert smoke["rule"] == study.rule(SMOKE)
    assert smoke["rule"]["z"] == pytest.approx(norm.ppf(1 - 0.025 / cells), rel=1e-12)
    assert str(cells) in smoke["rule"]["text"]


def test_bonferroni_z_grows_with_the_number_of_cells():
    values = [study.bonferroni_z(cells) for cells in (1, 2, 10, 100, 1000)]
    assert values[0] == pytest.approx(1.959964, abs=1e-6)
    assert all(a < b for a, b in pairwise(values))


def test_bonferroni_z_rejects_a_non_positive_number_of_cells():
    with pytest.raises(InvalidParameterError, match="cells: expected a positive integer"):
        study.bonferroni_z(0)


def test_common_random_numbers_give_a_smaller_standard_error_than_independent_draws(smoke):
    scored = [cell for cell in smoke["cells"] if cell["z_s1"] is not None]
    assert scored
    assert all(cell["standard_error"] < cell["independent_standard_error"] for cell in scored)


def test_only_the_worst_direction_attains_the_s2_bound_in_closed_form(smoke):
    moving = [cell for cell in smoke["cells"] if math.sin(cell["psi"]) > 0]
    for cell in moving:
        if cell["direction"] == "worst":
            assert cell["closed_form"] == pytest.approx(cell["bound"], rel=1e-9)
        else:
            assert cell["closed_form"] < cell["bound"]
    orthogonal = [cell for cell in moving if cell["direction"] == "orthogonal"]
    assert orthogonal and all(abs(cell["closed_form"]) < 1e-12 for cell in orthogonal)


def test_a_closed_form_off_by_a_few_standard_errors_contradicts(smoke, monkeypatch):
    scored = [cell for cell in smoke["cells"] if cell["z_s1"] is not None]
    z = smoke["rule"]["z"]
    offset = 3 * z * min(cell["standard_error"] for cell in scored)
    expected_failures = sum(
        abs(cell["monte_carlo"] - cell["closed_form"] - offset)
        > z * cell["standard_error"] + cell["roundoff"]
        for cell in smoke["cells"]
    )
    original = study.closed_form_gap
    monkeypatch.setattr(study, "closed_form_gap", lambda *args: original(*args) + offset)
    shifted = study.run(SMOKE, seed=0)
    assert shifted["verdict"] == "contradicts"
    assert shifted["summary"]["s1_failures"] == expected_failures >= 1


@pytest.mark.parametrize(("factor", "failing"), [(1.5, {"worst"}), (0.3, {"worst", "random:0"})])
def test_a_wrong_worst_case_bound_contradicts(monkeypatch, factor, failing):
    original = study.worst_case_bound
    monkeypatch.setattr(study, "worst_case_bound", lambda *args: factor * original(*args))
    result = study.run(SMOKE, seed=0)
    assert result["verdict"] == "contradicts"
    assert result["summary"]["s1_failures"] == 0
    found = {cell["direction"] for cell in result["cells"] if not cell["s2_holds"]}
    assert found == failing


def _cell(direction: str, monte_carlo: float, closed_form: float, bound: float) -> dict:
    return {
        "direction": direction,
        "monte_carlo": monte_carlo,
        "closed_form": closed_form,
        "bound": bound,
        "standard_error": 0.1,
        "roundoff": 0.0,
    }


def test_judge_allows_z_standard_errors_and_no_more():
    z = 3.0
    inside = [_cell("random:0", 1.0 + 0.299, 1.0, 2.0), _cell("worst", 2.0 - 0.299, 2.0, 2.0)]
    assert study.judge(inside, z)["verdict"] == "agrees"
    outside = [_cell("random:0", 1.0 + 0.301, 1.0, 2.0)]
    assert study.judge(outside, z)["s1_failures"] == 1
    below_the_bound = [_cell("orthogonal", 0.0, 0.0, 2.0)]
    assert study.judge(below_the_bound, z)["verdict"] == "agrees"
    worst_below = [_cell("worst", 1.0, 1.0, 2.0)]
    judged = study.judge(worst_below, z)
    assert (judged["verdict"], judged["s1_failures"], judged["s2_failures"]) == (
        "contradicts",
        0,
        1,
    )


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
        study.run(replace(SMOKE, **change), seed=0)
    assert "\n" not in str(raised.value)


def test_given_heads_are_used_in_every_cell():
    config = replace(SMOKE, head=(0.5, -0.25), bias=0.1)
    result = study.run(config, seed=0)
    assert result["verdict"] == "agrees"
    assert {cell["head_norm_sq"] for cell in result["cells"]} == {0.5**2 + 0.25**2}


@pytest.mark.slow
def test_fast_run_agrees():
    result = study.run(study.CONFIGS["fast"], seed=0)
    assert result["verdict"] == "agrees"
    assert result["rule"]["cells"] == len(result["cells"]) == 160
