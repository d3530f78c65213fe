"""The procedure choosing the default CORE-MTL weights: it sees source data only, it selects the
argmax of its criterion, and the library's defaults are the winner of its committed record."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from coremtl import defaults
from coremtl_cli.main import main
from experiments.synthetic import default_weights, shortcut_scenes
from experiments.synthetic.common import jsonable
from experiments.synthetic.default_weights import (
    METRICS,
    SPLITS,
    SelectionConfig,
    improvement_over_ew,
    point_name,
    select,
    source_data,
    summarise,
)
from experiments.synthetic.shortcut_scenes import ShortcutSetup
from experiments.vision.scenes import SceneRenderer
from scm.validation import InvalidParameterError

RECORD = Path(__file__).resolve().parents[1] / "docs" / "default_weights.json"
TINY = SelectionConfig(
    setup=ShortcutSetup(resolution=(16, 16), train=32, val=16, epochs=2),
    seeds=2,
    cka_weights=(0.1,),
    cfa_weights=(0.1, 2.0),
)


def test_selection_runs_with_the_target_law_unavailable(monkeypatch):
    """The environment builder raises for anything but the source law, and every rendered split
    is one of the procedure's own: the selection still runs to a winner."""
    original = shortcut_scenes.make_environment

    def source_only(name: str, **kwargs):
        if name != "source":
            raise AssertionError(f"the selection asked for the {name!r} law")
        return original(name, **kwargs)

    monkeypatch.setattr(shortcut_scenes, "make_environment", source_only)
    with pytest.raises(AssertionError, match="target"):
        shortcut_scenes.render(TINY.setup, 0, "val", 4, None)
    rendered: list[str] = []
    render_split = SceneRenderer.render

    def recording(self, indices, split, environment):
        rendered.append(split)
        return render_split(self, indices, split, environment)

    monkeypatch.setattr(SceneRenderer, "render", recording)
    result = default_weights.run(TINY, seed=0)
    assert set(rendered) == set(SPLITS)
    assert result["winner"]["name"] in {point_name(p) for p in TINY.grid()}
    assert {r["strength"] for r in result["records"]} == set(TINY.strengths)


def test_source_data_refuses_the_target_law_and_foreign_splits():
    with pytest.raises(InvalidParameterError, match="strength"):
        source_data(TINY.setup, 0, SPLITS[1], 4, None)
    with pytest.raises(InvalidParameterError, match="split"):
        source_data(TINY.setup, 0, "target_val", 4, 0.95)
    with pytest.raises(InvalidParameterError, match="strength"):
        source_data(TINY.setup, 0, SPLITS[0], 4, 1.5)


def test_selection_picks_the_highest_score_whatever_the_order():
    grid = [(cka, cfa) for cka in (0.01, 0.1, 1.0) for cfa in (0.1, 0.5, 2.0)]
    generator = random.Random(0)
    for _ in range(20):
        scores = {point: generator.uniform(-5, 5) for point in grid}
        best = max(scores, key=scores.__getitem__)
        items = list(scores.items())
        generator.shuffle(items)
        assert select(dict(items)) == best


def test_equal_scores_go_to_the_smaller_weights():
    scores = {(1.0, 2.0): 3.0, (0.1, 0.5): 3.0, (0.01, 2.0): 3.0, (0.01, 0.1): 1.0}
    assert select(scores) == (0.1, 0.5)
    scores[(0.01, 0.5)] = 3.0
    assert select(scores) == (0.01, 0.5)
    assert select({(0.01, 0.2): 0.0, (0.1, 0.1): 0.0}) == (0.1, 0.1)
    assert select({(0.5, 0.1): 0.0, (0.1, 0.5): 0.0}) == (0.1, 0.5)


def test_selection_refuses_an_empty_or_non_finite_table():
    with pytest.raises(InvalidParameterError, match="scores"):
        select({})
    with pytest.raises(InvalidParameterError, match=r"CKA 0\.1, CFA 0\.5"):
        select({(0.1, 0.5): float("nan"), (0.01, 0.1): 1.0})


def test_improvement_over_ew_is_libmtl_delta_m_positive_when_better():
    ew = {
        "segmentation/miou": 0.4,
        "segmentation/pixel_accuracy": 0.8,
        "depth/abs_err": 0.5,
        "depth/rel_err": 0.2,
    }
    assert improvement_over_ew(ew, ew) == 0.0
    better = {"segmentation/miou": 0.44, "segmentation/pixel_accuracy": 0.8}
    better |= {"depth/abs_err": 0.45, "depth/rel_err": 0.2}
    assert improvement_over_ew(better, ew) == pytest.approx((10 + 0 + 10 + 0) / 4)
    worse_depth = {**ew, "depth/abs_err": 0.6}
    assert improvement_over_ew(worse_depth, ew) == pytest.approx(-20 / 4)
    with pytest.raises(InvalidParameterError, match="depth/rel_err"):
        improvement_over_ew({k: v for k, v in ew.items() if k != "depth/rel_err"}, ew)


def _metrics(miou: float) -> dict:
    return {key: (miou if key == METRICS[0] else 1.0) for key in METRICS}


def test_the_score_is_the_mean_over_seeds_and_environments_with_the_se_over_seeds():
    """EW has mIoU 0.5 everywhere; a point's mIoU is ``0.5 (1 + x / 100)``, so its ``Delta`` is
    ``x / 4`` percent (one of the four metrics moves)."""
    config = SelectionConfig(seeds=2, cka_weights=(0.1,), cfa_weights=(0.1, 0.5))
    moves = {
        (0.1, 0.1): {(0, 0.0): 8.0, (0, 0.95): 4.0, (1, 0.0): 0.0, (1, 0.95): 4.0},
        (0.1, 0.5): {(0, 0.0): 3.0, (0, 0.95): 3.0, (1, 0.0): 3.0, (1, 0.95): 3.0},
    }
    records = []
    for seed in (0, 1):
        for strength in config.strengths:
            records.append(
                {"seed": seed, "strength": strength, "method": "EW", "source_val": _metrics(0.5)}
            )
            for point, move in moves.items():
                miou = 0.5 * (1 + move[(seed, strength)] / 100)
                records.append(
                    {
                        "seed": seed,
                        "strength": strength,
                        "method": point_name(point),
                        "source_val": _metrics(miou),
                    }
                )
    summary = summarise(config, records)
    first = summary["points"][point_name((0.1, 0.1))]
    assert first["per_seed"] == pytest.approx([1.5, 0.5])
    assert first["criterion"]["mean"] == pytest.approx(1.0)
    assert first["criterion"]["se"] == pytest.approx(0.5)
    second = summary["points"][point_name((0.1, 0.5))]["criterion"]
    assert second["mean"] == pytest.approx(0.75) and second["se"] == pytest.approx(0.0, abs=1e-12)
    assert summary["winner"]["name"] == point_name((0.1, 0.1))
    margin = summary["winner_minus"][point_name((0.1, 0.5))]
    assert margin["mean"] == pytest.approx(0.25) and margin["se"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "changes",
    [{"seeds": 1}, {"strengths": ()}, {"cka_weights": (0.0, 0.1)}, {"cfa_probability": 2.0}],
)
def test_a_bad_selection_setting_is_refused(changes):
    with pytest.raises(InvalidParameterError, match=next(iter(changes)).split("_")[0]):
        SelectionConfig(**changes)


def _record() -> dict:
    return json.loads(RECORD.read_text())


def test_the_library_defaults_are_the_winner_of_the_committed_record():
    weights = _record()["winner"]["weights"]
    assert defaults.CKA_WEIGHT == weights["cka"]
    assert defaults.CFA_WEIGHT == weights["cfa"]
    assert defaults.CFA_PROBABILITY == weights["cfa_probability"]
    assert defaults.RECONSTRUCTION_WEIGHT == weights["reconstruction"]


def test_the_committed_record_is_the_procedure_run_on_source_splits():
    record = _record()
    assert record["command"] == "coremtl select-weights" and record["mode"] == "fast"
    assert record["splits_rendered"] == list(SPLITS)
    assert {r["method"] for r in record["records"]} >= set(record["points"]) | {"EW"}
    scores = {
        (point["cka_weight"], point["cfa_weight"]): point["criterion"]["mean"]
        for point in record["points"].values()
    }
    assert point_name(select(scores)) == record["winner"]["name"]
    for point in record["points"].values():
        assert len(point["per_seed"]) == len(record["seeds"]) == record["config"]["seeds"]


def test_select_weights_refuses_to_replace_a_record(tmp_path, capsys):
    output = tmp_path / "weights.json"
    output.write_text("{}")
    assert main(["select-weights", "--smoke", "--output", str(output)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert output.read_text() == "{}"


def test_select_weights_smoke_writes_the_full_record(tmp_path, capsys):
    output = tmp_path / "weights.json"
    assert main(["select-weights", "--smoke", "--seed", "3", "--output", str(output)]) == 0
    record = json.loads(output.read_text())
    assert record["seeds"] == [3, 4] and record["mode"] == "smoke"
    assert record["git_commit"] and "torch" in record["versions"]
    assert len(record["points"]) == 9
    assert record["winner"]["name"] in record["points"]
    assert record["winner"]["name"] in capsys.readouterr().out


def test_the_committed_record_s_scores_are_recomputed_exactly_from_its_runs():
    """The summary of the committed record's runs, recomputed now, equals its recorded scores,
    margins and winner to the last bit."""
    record = _record()
    settings = record["config"]
    config = SelectionConfig(
        seeds=settings["seeds"],
        strengths=tuple(settings["strengths"]),
        cka_weights=tuple(settings["cka_weights"]),
        cfa_weights=tuple(settings["cfa_weights"]),
        cfa_probability=settings["cfa_probability"],
        reconstruction_weight=settings["reconstruction_weight"],
    )
    recomputed = json.loads(json.dumps(jsonable(summarise(config, record["records"]))))
    for key in ("seeds", "points", "ranking", "winner", "winner_minus"):
        assert recomputed[key] == record[key], key
