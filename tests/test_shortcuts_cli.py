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


SUBSET = ["--methods", "ew,mt-crl (no invariance)", "--seeds", "2"]


@pytest.fixture(scope="module")
def two_records(tmp_path_factory):
    """Two smoke records of the same setting, one benchmark each."""
    folder = tmp_path_factory.mktemp("records")
    paths = []
    for key in ("digits/texture", "digits/colour"):
        path = folder / f"{key.replace('/', '_')}.json"
        assert (
            main(["shortcuts", "--smoke", "--benchmarks", key, *SUBSET, "--output", str(path)]) == 0
        )
        paths.append(path)
    return paths


def test_a_chosen_subset_runs_and_records_its_configuration(two_records):
    record = json.loads(two_records[0].read_text())
    assert record["config"]["benchmarks"] == ["digits/texture"]
    assert record["config"]["methods"] == ["ew", "mt-crl (no invariance)"]
    runs = {(r["method"], r["seed"]) for r in record["measurements"]["records"]}
    assert len(runs) == 4
    assert (
        record["registration"]["registered_at"] <= record["registration"]["measurement_started_at"]
    )
    assert record["verdict"] and record["git_commit"]


def test_records_run_apart_are_concluded_as_one_with_their_figures(two_records, tmp_path):
    output, figures = tmp_path / "both.json", tmp_path / "figures"
    argv = ["shortcuts", "--combine", *map(str, two_records), "--output", str(output)]
    assert main([*argv, "--figures", str(figures)]) == 0
    combined = json.loads(output.read_text())
    parts = [json.loads(path.read_text()) for path in two_records]
    assert combined["config"]["benchmarks"] == ["digits/texture", "digits/colour"]
    assert list(combined["summary"]["benchmarks"]) == ["digits/texture", "digits/colour"]
    assert len(combined["measurements"]["records"]) == sum(
        len(part["measurements"]["records"]) for part in parts
    )
    for part in parts:
        (key,) = part["config"]["benchmarks"]
        assert combined["summary"]["benchmarks"][key] == part["summary"]["benchmarks"][key]
    assert combined["registration"] == [part["registration"] for part in parts]
    assert {path.name for path in figures.iterdir()} == {
        "REPORT.md", "study9_shortcuts.png", "study9_shortcuts.pdf", "study9_probes.png",
        "study9_probes.pdf",
    }  # fmt: skip
    assert "study9_shortcuts.png" in (figures / "REPORT.md").read_text()


def test_combining_refuses_repeated_benchmarks_other_settings_and_other_files(
    two_records, tmp_path, capsys
):
    other = json.loads(two_records[1].read_text())
    other["config"]["seeds"] = 3
    changed = tmp_path / "other.json"
    changed.write_text(json.dumps(other))
    not_a_record = tmp_path / "x.json"
    not_a_record.write_text("[1, 2]")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"command": "coremtl shortcuts", "config": {}}))
    runs_not_an_object = tmp_path / "runs.json"
    runs_not_an_object.write_text(
        json.dumps({"command": "coremtl shortcuts", "config": {}, "registration": {},
                    "measurements": [1]})
    )  # fmt: skip
    malformed = json.loads(two_records[0].read_text())
    del malformed["config"]["sizes"]
    no_sizes = tmp_path / "no_sizes.json"
    no_sizes.write_text(json.dumps(malformed))
    first = str(two_records[0])
    for inputs, message in [
        ([first, first], "repeats benchmarks"),
        ([first, str(changed)], "differs in seeds"),
        ([first, str(not_a_record)], "not a record of coremtl shortcuts"),
        ([first, str(partial)], "lacks registration, measurements"),
        ([str(no_sizes)], "not a shortcut-suite configuration"),
        ([first, str(runs_not_an_object)], "lacks measurements.records"),
        ([first, str(tmp_path / "missing.json")], "is not a file"),
        ([first, "--seeds", "4"], "--seeds: --combine reads the records' own settings"),
        ([first, "--full"], "--full: --combine reads the records' own settings"),
        ([first, "--jobs", "2"], "--jobs: --combine reads the records' own settings"),
    ]:
        output = tmp_path / "out.json"
        assert main(["shortcuts", "--combine", *inputs, "--output", str(output)]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and message in error[0], error
        assert not output.exists()
