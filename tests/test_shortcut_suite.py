"""Study 9, the shortcut suite: registered before any run, every configured method measured on
every benchmark with paired seeds, and a result the report and the plots can read."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from experiments.study import LEGEND
from experiments.synthetic import STUDIES, study
from experiments.synthetic.shortcuts.methods import AUTHORS_RELATIVE, METHODS
from experiments.synthetic.shortcuts.probes import CHANCE
from experiments.synthetic.shortcuts.study import CONFIGS, STUDY, Config, jobs
from proofs.headline import HEADLINE_LIMIT, Headline
from scm.validation import InvalidParameterError

SMOKE = CONFIGS["smoke"]


class Stop(Exception):
    """Raised by the spy in place of training."""


def test_study_nine_is_the_suite():
    assert STUDIES[9] == "experiments.synthetic.shortcuts.study"
    assert study(9) is STUDY


def test_predictions_are_registered_before_any_run():
    seen = {}

    def spy(context):
        seen.update(context.registration)
        raise Stop

    with pytest.raises(Stop):
        replace(STUDY, measure=spy).run(SMOKE)
    assert [p["id"] for p in seen["predictions"]] == [p.id for p in STUDY.predictions(SMOKE)]
    assert seen["registered_at"] <= seen["measurement_started_at"]


@pytest.mark.parametrize("name", ["fast", "full"])
def test_every_method_runs_on_every_benchmark_it_applies_to(name):
    config = CONFIGS[name]
    pending = jobs(config, seed=0)
    for key in config.benchmarks:
        ran = {job.method for job in pending if job.benchmark == key}
        expected = {m for m in METHODS if METHODS[m].applies_to(key) and not METHODS[m].on_demand}
        left_out = {AUTHORS_RELATIVE} if name == "fast" else set()
        assert ran == expected - left_out
    per_method = {}
    for job in pending:
        if job.strength == config.strength:
            per_method.setdefault((job.benchmark, job.method), set()).add(job.seed)
    assert {len(seeds) for seeds in per_method.values()} == {config.seeds}
    assert len({frozenset(s) for s in per_method.values()}) == 1, "seeds must be paired"
    assert config.seeds >= 5


def test_the_fast_setting_covers_both_data_sets_and_a_colour_nuisance():
    data_sets = {key.split("/")[0] for key in CONFIGS["fast"].benchmarks}
    assert data_sets == {"scenes", "digits"}
    full = {key.split("/")[1] for key in CONFIGS["full"].benchmarks if key.startswith("digits")}
    assert {"colour", "texture"} <= full


def test_an_unknown_method_or_benchmark_is_refused_in_one_line():
    with pytest.raises(InvalidParameterError, match="methods: unknown"):
        Config(methods=("ew", "gradnorm"))
    with pytest.raises(InvalidParameterError, match="benchmarks: no sizes"):
        Config(benchmarks=("mnist/colour",))


@pytest.fixture(scope="module")
def smoke_result():
    return STUDY.run(SMOKE, seed=0)


def test_smoke_run_measures_every_method_on_every_benchmark(smoke_result):
    records = smoke_result["measurements"]["records"]
    for key in SMOKE.benchmarks:
        for method in SMOKE.methods:
            seeds = {r["seed"] for r in records if (r["benchmark"], r["method"]) == (key, method)}
            assert len(seeds) == SMOKE.seeds, (key, method)
    for record in records:
        for split in ("source_val", "target_test", "permuted_test"):
            assert all(0.0 <= v <= 1.0 for k, v in record["metrics"][split].items() if "acc" in k)
        assert 0.0 <= record["probes"]["Z"]["nuisance"] <= 1.0
        assert 0.0 <= record["probes"][CHANCE]["nuisance"] <= 1.0
        assert record["parameters"] > 0


def test_the_two_targets_are_scored_on_different_data(smoke_result):
    records = smoke_result["measurements"]["records"]
    assert any(
        r["metrics"]["permuted_test"][metric] != r["metrics"]["target_test"][metric]
        for r in records
        for metric in r["metrics"]["target_test"]
    )


def test_smoke_result_has_a_verdict_a_short_headline_and_its_plots(smoke_result, tmp_path):
    json.dumps(smoke_result, allow_nan=False)
    assert smoke_result["verdict"] in LEGEND
    finding = smoke_result["finding"]
    headline = Headline(**finding["headline"]).text()
    assert len(headline) <= HEADLINE_LIMIT and not headline.endswith("…")
    assert "True" not in finding["result"] and "False" not in finding["result"]
    assert [o["id"] for o in smoke_result["outcomes"]] == [p.id for p in STUDY.predictions(SMOKE)]
    for outcome in smoke_result["outcomes"]:
        assert outcome["held"] in (True, False, None)
    paths = STUDY.plot(smoke_result, tmp_path)
    assert paths and all(path.exists() for path in paths)


def test_a_run_that_diverges_is_recorded_as_diverged_not_raised(monkeypatch):
    import coremtl
    from experiments.synthetic.shortcuts.runs import Job, run
    from experiments.synthetic.shortcuts.study import benchmark_of
    from scm.validation import NonFiniteError

    def diverging(*args, **kwargs):
        raise NonFiniteError("loss of task 'left' is nan at step 7")

    monkeypatch.setattr(coremtl, "train", diverging)
    record = run(
        benchmark_of("digits/colour"), SMOKE.sizes["digits"], Job("digits/colour", "ew", 0, 0.95)
    )
    assert record["diverged"] == "loss of task 'left' is nan at step 7"
    assert (record["method"], record["seed"], record["strength"]) == ("ew", 0, 0.95)
    assert "metrics" not in record


@pytest.mark.parametrize("key", ["scenes/hue", "digits/colour"])
def test_every_method_of_the_suite_builds_a_schedule_that_trains_from_the_first_epoch(key):
    """Each configuration (on-demand ablations included) builds on the benchmark's backbone, and
    its first epoch trains something (the trainer's rule), so no run of the suite fails late."""
    import coremtl
    from experiments.synthetic.shortcuts.benchmarks import Law
    from experiments.synthetic.shortcuts.study import benchmark_of

    benchmark = benchmark_of(key)
    example = benchmark.draw(0, "train", 2, Law("source", 0.95))["x"]
    for name, method in METHODS.items():
        if not method.applies_to(key):
            continue
        preset = coremtl.build(
            method.method, benchmark.backbone(0), benchmark.tasks, example, 8,
            steps_per_epoch=6, **method.build_options(),
        )  # fmt: skip
        assert preset.label == name or method.family == "calibration"
        first = [s for s in preset.term_sources if s.start_epoch == 0]
        assert preset.task_start_epoch == 0 or first, name


def test_the_sweep_runs_only_the_chosen_methods():
    from dataclasses import replace

    from experiments.synthetic.shortcuts.study import CONFIGS, jobs

    config = replace(CONFIGS["full"], methods=("ew", "pcgrad"), benchmarks=("digits/colour",))
    found = jobs(config, seed=0)
    assert {job.method for job in found} == {"ew", "pcgrad"}
    assert {job.strength for job in found if job.method == "ew"} == {0.8, 0.9, 0.95, 1.0}
