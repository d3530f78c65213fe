"""The run folder's guard: a fresh run never empties an earlier one, a resume needs its
checkpoint and its own configuration."""

from __future__ import annotations

import json

import pytest

from coremtl.run_folder import (
    RESUMABLE_SETTINGS,
    check_resumable,
    claim_fresh_folder,
    configuration_differences,
    existing_run_files,
    require_checkpoint,
)
from scm.validation import InvalidParameterError

CONFIG = {"trainer": {"learning_rate": 0.01, "epochs": 3, "progress": True}, "balancer": "ew"}


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    (folder / "checkpoints" / "last.pt").write_bytes(b"x")
    return folder


def test_a_fresh_folder_and_an_unrelated_folder_are_accepted(tmp_path):
    claim_fresh_folder(tmp_path / "new")
    (tmp_path / "notes.txt").write_text("mine")
    claim_fresh_folder(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_folder_holding_a_run_is_refused_and_left_intact(run_dir):
    with pytest.raises(InvalidParameterError, match=r"--resume.*--overwrite") as error:
        claim_fresh_folder(run_dir)
    assert "metrics.jsonl" in str(error.value) and "\n" not in str(error.value)
    assert (run_dir / "metrics.jsonl").read_text().count("\n") == 2


def test_overwrite_removes_exactly_the_run_files(run_dir):
    (run_dir / "notes.txt").write_text("mine")
    claim_fresh_folder(run_dir, overwrite=True)
    assert existing_run_files(run_dir) == []
    assert (run_dir / "notes.txt").exists()


def test_an_output_dir_that_is_a_file_is_named(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(InvalidParameterError, match="is a file"):
        claim_fresh_folder(path)


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"no checkpoint at .*last\.pt"):
        require_checkpoint(tmp_path / "checkpoints" / "last.pt")


def test_a_changed_learning_rate_is_refused_on_resume(run_dir):
    changed = json.loads(json.dumps(CONFIG))
    changed["trainer"]["learning_rate"] = 0.5
    with pytest.raises(InvalidParameterError, match=r"trainer\.learning_rate: 0\.01 -> 0\.5"):
        check_resumable(run_dir, changed)


@pytest.mark.parametrize("setting", sorted(RESUMABLE_SETTINGS))
def test_watching_settings_may_change_on_resume_and_no_other(run_dir, setting):
    watched = json.loads(json.dumps(CONFIG))
    watched["trainer"][setting] = "changed"
    assert configuration_differences(CONFIG, watched) == []
    check_resumable(run_dir, watched)
    computed = json.loads(json.dumps(watched))
    computed["trainer"]["epochs"] = 4
    assert configuration_differences(CONFIG, computed) == ["trainer.epochs: 3 -> 4"]


def test_added_and_removed_keys_are_differences():
    assert configuration_differences({"a": 1}, {"b": 1}) == ["a: 1 -> (absent)", "b: (absent) -> 1"]
