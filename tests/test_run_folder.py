"""The run folder's guard: a fresh run never empties an earlier one, a resume needs its
checkpoint and its own configuration."""

from __future__ import annotations

import json

import pytest

from coremtl.run_folder import (
    CLI_FLAGS,
    MANIFEST,
    RESUMABLE_SETTINGS,
    FolderFlags,
    check_resumable,
    claim_fresh_folder,
    configuration_differences,
    existing_run_files,
    require_checkpoint,
    write_manifest,
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
    write_manifest(folder)
    return folder


def test_a_fresh_folder_and_an_unrelated_folder_are_accepted(tmp_path):
    claim_fresh_folder(tmp_path / "new")
    (tmp_path / "notes.txt").write_text("mine")
    claim_fresh_folder(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_folder_holding_a_run_is_refused_and_left_intact(run_dir):
    with pytest.raises(InvalidParameterError, match=r"--resume.*--overwrite") as error:
        claim_fresh_folder(run_dir, flags=CLI_FLAGS)
    assert "metrics.jsonl" in str(error.value) and "\n" not in str(error.value)
    assert (run_dir / "metrics.jsonl").read_text().count("\n") == 2


def test_overwrite_removes_exactly_the_run_files(run_dir):
    (run_dir / "notes.txt").write_text("mine")
    claim_fresh_folder(run_dir, overwrite=True)
    assert existing_run_files(run_dir) == []
    assert (run_dir / "notes.txt").exists()


def test_overwrite_keeps_the_users_own_files_named_like_a_runs(tmp_path):
    """A folder holding the user's config.json and metrics.csv, but no manifest, was never a
    run: it is refused, overwrite or not, and nothing in it is removed."""
    own = {"config.json": '{"mine": 1}', "metrics.csv": "a,b\n1,2\n"}
    for name, text in own.items():
        (tmp_path / name).write_text(text)
    for overwrite in (False, True):
        with pytest.raises(InvalidParameterError, match="no run of this toolkit wrote") as error:
            claim_fresh_folder(tmp_path, overwrite=overwrite)
        assert "config.json, metrics.csv" in str(error.value)
    assert {name: (tmp_path / name).read_text() for name in own} == own


def test_a_run_that_logged_nothing_is_replaced_without_asking(tmp_path):
    """A run that stopped before its first logged step (empty logs, no checkpoint) holds no
    results, so it does not block its folder."""
    write_manifest(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "metrics.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    claim_fresh_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_refusal_names_the_callers_own_ways_out(run_dir):
    api = FolderFlags(None, "overwrite=True")
    with pytest.raises(InvalidParameterError) as error:
        claim_fresh_folder(run_dir, flags=api)
    message = str(error.value)
    assert "overwrite=True" in message and "--" not in message and "resume" not in message
    with pytest.raises(InvalidParameterError, match=r"fit\(resume=True\).*fit\(overwrite=True\)"):
        claim_fresh_folder(run_dir)
    assert (run_dir / MANIFEST).is_file()


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
