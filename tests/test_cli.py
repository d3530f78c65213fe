"""The command line: help on every subcommand, one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fresh_interpreter import modules_loaded

from coremtl_cli.main import SUBCOMMANDS, main


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


def _modules_imported_by(*arguments: str) -> set[str]:
    """The modules loaded by a fresh interpreter running ``coremtl ARGUMENTS``."""
    return modules_loaded(
        "from coremtl_cli.main import main\n"
        "try:\n"
        f"    main({list(arguments)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
    )


def test_top_level_help_imports_no_subcommand_module():
    loaded = _modules_imported_by("--help")
    subcommand_modules = {module for module, _ in SUBCOMMANDS.values()}
    assert not loaded & subcommand_modules
    for heavy in ("numpy", "torch", "scipy", "scm", "coremtl", "proofs", "experiments"):
        assert heavy not in loaded


def test_subcommand_help_imports_only_that_subcommand():
    loaded = _modules_imported_by("scm", "--help")
    other_modules = {module for name, (module, _) in SUBCOMMANDS.items() if name != "scm"}
    assert "scm.cli" in loaded
    assert not loaded & other_modules
    assert "torch" not in loaded


def test_unknown_subcommand_exits_two(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_python_dash_m_runs_the_command_line():
    root = Path(__file__).resolve().parents[1]
    completed = subprocess.run(
        [sys.executable, "-m", "coremtl_cli", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
    )
    assert completed.returncode == 0
    assert all(name in completed.stdout for name in SUBCOMMANDS)


def test_scm_negative_seed_names_the_parameter(capsys):
    assert main(["scm", "--seed", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--seed: expected a non-negative integer seed, got -1" in err
