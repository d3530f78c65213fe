"""``coremtl shortcuts``: the suite on chosen benchmarks and methods, its record, its refusals."""

from __future__ import annotations

import json

import pytest

from coremtl_cli.main import main


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--benchmarks", "mnist/colour"], "benchmark: expected"),
        (["--benchmarks", "digits/rotation"], "nuisance"),
        (["--benchmarks", " , "], "--benchmarks: expected comma-separated names"),
        (["--methods", "ew,gradnorm-x"], "methods: unknown"),
        (["--methods", "core-mtl,pcgrad"], "must be among them"),
        (["--seeds", "0"], "--seeds: expected a positive integer"),
        (["--jobs", "0"], "--jobs: expected a positive integer"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_any_training(
    arguments, message, tmp_path, monkeypatch, capsys
):
    import experiments.synthetic.shortcuts.study as study

    monkeypatch.setattr(study, "run_job", None)
    output = tmp_path / "s.json"
    assert main(["shortcuts", "--smoke", *arguments, "--output", str(output)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert not output.exists()


def test_an_existing_record_is_kept_without_overwrite(tmp_path, capsys):
    output = tmp_path / "s.json"
    output.write_text("{}")
    assert main(["shortcuts", "--smoke", "--output", str(output)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert output.read_text() == "{}"


def test_a_chosen_subset_runs_and_records_its_configuration(tmp_path):
    output = tmp_path / "s.json"
    arguments = ["--benchmarks", "digits/texture", "--methods", "ew,mt-crl (no invariance)"]
    assert main(["shortcuts", "--smoke", *arguments, "--seeds", "2", "--output", str(output)]) == 0
    record = json.loads(output.read_text())
    assert record["config"]["benchmarks"] == ["digits/texture"]
    assert record["config"]["methods"] == ["ew", "mt-crl (no invariance)"]
    runs = {(r["method"], r["seed"]) for r in record["measurements"]["records"]}
    assert len(runs) == 4
    assert (
        record["registration"]["registered_at"] <= record["registration"]["measurement_started_at"]
    )
    assert record["verdict"] and record["git_commit"]
