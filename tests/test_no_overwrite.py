"""No results-writing command (verify, figures, prove, bench) replaces earlier results unless
``--overwrite`` is given; a partial verify run keeps out of the reference ``figures/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coremtl_cli.main import main
from experiments.verify import PARTIAL_FIGURES, PARTIAL_RESULTS, output_paths


def _one_line_naming_the_flag(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pass --overwrite" in err
    return err


def _reference_clone(folder: Path) -> dict[Path, str]:
    """A clone's tracked reference report and figure, with their contents."""
    files = {
        folder / "figures" / "REPORT.md": "# reference report with the proofs table\n",
        folder / "figures" / "study1_gap.png": "png bytes",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def test_verify_refuses_to_replace_the_reference_figures(tmp_path, monkeypatch, capsys):
    files = _reference_clone(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "--smoke", "--figures", "figures"]) == 2
    assert "figures/" in _one_line_naming_the_flag(capsys)
    assert {path: path.read_text() for path in files} == files
    assert not (tmp_path / "results").exists()


def test_verify_refuses_to_replace_an_earlier_results_file(tmp_path, capsys):
    results = tmp_path / "verify.json"
    results.write_text('{"earlier": true}')
    status = main(
        ["verify", "--smoke", "--results", str(results), "--figures", str(tmp_path / "f")]
    )
    assert status == 2
    assert str(results) in _one_line_naming_the_flag(capsys)
    assert json.loads(results.read_text()) == {"earlier": True}


def test_a_partial_verify_run_writes_under_results_partial_only():
    assert output_paths("fast", True, None, None) == (PARTIAL_RESULTS, PARTIAL_FIGURES)
    assert output_paths("fast", False, None, None) == (
        Path("results/verify.json"),
        Path("figures"),
    )
    assert not PARTIAL_FIGURES.is_relative_to(Path("figures"))
    given = (Path("elsewhere/v.json"), Path("elsewhere/figs"))
    assert output_paths("fast", True, *given) == given


def test_partial_verify_in_a_clone_leaves_the_reference_report(tmp_path, monkeypatch):
    files = _reference_clone(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "--only", "7", "--no-proofs"]) == 0
    assert {path: path.read_text() for path in files} == files
    assert "Study 7" in (tmp_path / PARTIAL_FIGURES / "REPORT.md").read_text()


def test_figures_refuses_then_replaces_with_overwrite(tmp_path, capsys):
    results = tmp_path / "verify.json"
    results.write_text(json.dumps({"configuration": {"mode": "smoke"}, "studies": {}}))
    figures = tmp_path / "figures"
    arguments = ["figures", "--results", str(results), "--figures", str(figures)]
    assert main(arguments) == 0
    report = figures / "REPORT.md"
    report.write_text("earlier report")
    capsys.readouterr()
    assert main(arguments) == 2
    _one_line_naming_the_flag(capsys)
    assert report.read_text() == "earlier report"
    assert main([*arguments, "--overwrite"]) == 0
    assert report.read_text() != "earlier report"
    assert not (tmp_path / "REPORT.md").exists()


def test_prove_refuses_to_replace_earlier_verdicts(tmp_path, capsys):
    verdicts = tmp_path / "verdicts.md"
    verdicts.write_text("earlier verdicts")
    assert main(["prove", "--only", "S2", "--output", str(tmp_path)]) == 2
    assert "verdicts.md" in _one_line_naming_the_flag(capsys)
    assert verdicts.read_text() == "earlier verdicts"
    assert main(["prove", "--only", "S2", "--output", str(tmp_path), "--overwrite"]) == 0
    assert "S2" in verdicts.read_text()


def test_bench_refuses_to_replace_an_earlier_result(tmp_path, capsys):
    earlier = tmp_path / "sampling-quick.json"
    earlier.write_text('{"earlier": true}')
    arguments = ["bench", "sampling", "--quick", "--repeats", "1", "--output", str(tmp_path)]
    assert main(arguments) == 2
    assert str(earlier) in _one_line_naming_the_flag(capsys)
    assert json.loads(earlier.read_text()) == {"earlier": True}
    assert main([*arguments, "--overwrite"]) == 0
    assert json.loads(earlier.read_text())["benchmark"] == "sampling"


@pytest.mark.parametrize("command", ["verify", "figures", "prove", "bench", "evaluate"])
def test_the_overwrite_rule_is_in_the_help(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--overwrite" in out and "never replaced silently" in out
