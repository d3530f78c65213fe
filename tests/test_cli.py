"""The command line: help on every subcommand, one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from coremtl.cli import SUBCOMMANDS, main


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_scm_prints_closed_form_quantities_as_json(capsys):
    assert main(["scm", "--k", "3", "--tasks", "2", "--psi", "0.4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["k"] == 3 and len(result["ood_gap"]) == 2
    assert result["leakage_coefficient"] == pytest.approx(0.389418342, rel=1e-8)


def test_scm_bad_angle_is_one_line_with_exit_status_two(capsys):
    assert main(["scm", "--psi", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--psi: expected an angle in [0, pi/2]" in err


def test_scm_negative_seed_names_the_parameter(capsys):
    assert main(["scm", "--seed", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--seed: expected a non-negative integer seed, got -1" in err
