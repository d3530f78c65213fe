"""The procedure choosing the default CORE-MTL weights: it sees source data only, it selects the
argmax of its criterion, and the library's defaults are the winner of its committed record."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

import coremtl
from coremtl import defaults
from coremtl_cli.main import main
from experiments.synthetic.common import jsonable
from experiments.synthetic.default_weights import (
    CONFIGS,
    EW,
    METRICS,
    SPLITS,
    SelectionConfig,
    improvement_over_ew,
    point_name,
    run,
    select,
    source_data,
    summarise,
)
from experiments.synthetic.shortcuts.scenes import SceneBenchmark
from scm.validation import InvalidParameterError

RECORD = Path(__file__).resolve().parents[1] / "docs" / "default_weights.json"
TINY = dataclasses.replace(CONFIGS["smoke"], cka_weights=(0.1,), cfa_weights=(0.1, 2.0))


def test_selection_runs_with_every_law_but_the_source_refused(monkeypatch):
    """The benchmark refuses any law but the source and records the splits drawn: the selection
    still runs to a winner, drawing its own two splits only."""
    draw = SceneBenchmark.draw
    drawn: list[str] = []

    def source_only(self, seed, split, n, law):
        if law.kind != "source":
            raise AssertionError(f"the selection asked for the {law.kind!r} law")
        drawn.append(split)
        return draw(self, seed, split, n, law)

    monkeypatch.setattr(SceneBenchmark, "draw", source_only)
    result = run(TINY, seed=0)
    assert set(drawn) == set(SPLITS)
    assert result["winner"]["name"] in {point_name(p) for p in TINY.grid()}
    assert {r["strength"] for r in result["records"]} == set(TINY.strengths)


def test_source_data_refuses_the_target_law_and_foreign_splits():
    benchmark = SceneBenchmark(TINY.scene)
    with pytest.raises(InvalidParameterError, match="strength"):
        source_data(benchmark, 0, SPLITS[1], 4, None)
    with pytest.raises(InvalidParameterError, match="split"):
        source_data(benchmark, 0, "target_val", 4, 0.95)
    with pytest.raises(InvalidParameterError, match="strength"):
        source_data(benchmark, 0, SPLITS[0], 4, 1.5)


def test_the_default_point_is_core_mtl_as_the_library_runs_it_by_default():
    """``coremtl.train("core-mtl", ...)`` with the procedure's options at the library's default
    weights builds the same staged terms (weights, warm-up, stages) as with no options at all."""
    config = CONFIGS["fast"]
    benchmark = SceneBenchmark(config.scene)
    example = source_data(benchmark, 0, SPLITS[0], 2, 0.95)["x"]
    steps = config.sizes.train // config.sizes.batch_size
    common = ("core-mtl", benchmark.backbone(0), benchmark.tasks, example, config.sizes.epochs)
    library = coremtl.build(*common, steps_per_epoch=steps)
    point = (defaults.CKA_WEIGHT, defaults.CFA_WEIGHT)
    procedure = coremtl.build(*common, steps_per_epoch=steps, **config.core_options(point))
    assert procedure.task_start_epoch == library.task_start_epoch
    described = [source.description() for source in procedure.term_sources]
    assert described == [source.description() for source in library.term_sources]


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
    """The mean over tasks of the per-task mean relative change: segmentation has two metrics,
    depth one, so a 10 % change of mIoU moves the score by 10 / 2 / 2 and one of depth by 10 / 2."""
    ew = {"segmentation/miou": 0.4, "segmentation/accuracy": 0.8, "depth/mse": 0.5}
    assert improvement_over_ew(ew, ew) == 0.0
    better = {**ew, "segmentation/miou": 0.44}
    assert improvement_over_ew(better, ew) == pytest.approx(10 / 2 / 2)
    better_depth = {**ew, "depth/mse": 0.45}
    assert improvement_over_ew(better_depth, ew) == pytest.approx(10 / 2)
    worse = {"segmentation/miou": 0.36, "segmentation/accuracy": 0.72, "depth/mse": 0.6}
    assert improvement_over_ew(worse, ew) == pytest.approx((-10 - 20) / 2)
    with pytest.raises(InvalidParameterError, match="depth/mse"):
        improvement_over_ew({k: v for k, v in ew.items() if k != "depth/mse"}, ew)
    with pytest.raises(InvalidParameterError, match="segmentation/miou"):
        improvement_over_ew(ew, {**ew, "segmentation/miou": 0.0})


def _metrics(miou: float) -> dict:
    return {key: (miou if key == "segmentation/miou" else 1.0) for key in METRICS}


def test_the_score_is_the_mean_over_seeds_and_environments_with_the_se_over_seeds():
    """EW has mIoU 0.5 everywhere; a point's mIoU is ``0.5 (1 + x / 100)``, so its ``Delta`` is
    ``x / 4`` percent (one of segmentation's two metrics moves, and segmentation is one of two
    tasks)."""
    config = SelectionConfig(seeds=2, cka_weights=(0.1,), cfa_weights=(0.1, 0.5))
    moves = {
        (0.1, 0.1): {(0, 0.0): 8.0, (0, 0.95): 4.0, (1, 0.0): 0.0, (1, 0.95): 4.0},
        (0.1, 0.5): {(0, 0.0): 3.0, (0, 0.95): 3.0, (1, 0.0): 3.0, (1, 0.95): 3.0},
    }
    records = []
    for seed in (0, 1):
        for strength in config.strengths:
            records.append(
                {"seed": seed, "strength": strength, "method": EW, "source_val": _metrics(0.5)}
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
    [
        {"seeds": 1},
        {"strengths": ()},
        {"cka_weights": (0.0, 0.1)},
        {"cfa_probability": 2.0},
        {"reconstruction_weight": 0.0},
    ],
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


def test_the_committed_record_is_the_fast_procedure_run_on_source_splits():
    record = _record()
    assert record["command"] == "coremtl select-weights" and record["mode"] == "fast"
    assert record["splits_rendered"] == list(SPLITS)
    assert record["config"] == json.loads(json.dumps(jsonable(CONFIGS["fast"])))
    assert {r["method"] for r in record["records"]} >= set(record["points"]) | {EW}
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
