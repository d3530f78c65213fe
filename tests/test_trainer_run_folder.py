"""The trainer keeps earlier runs: a fresh run refuses a folder holding one, a resume needs its
checkpoint and its own configuration, a checkpoint of another model is named in one line."""

from __future__ import annotations

import json

import pytest
import torch
from small_trainer import trainer

from coremtl.checkpoint import CheckpointMismatchError, CorruptCheckpointError
from coremtl.trainer import TrainerConfig
from scm.validation import InvalidParameterError


def _rows(folder) -> list[str]:
    return (folder / "metrics.jsonl").read_text().splitlines()


def test_a_second_fresh_run_into_a_run_folder_is_refused_and_keeps_the_logs(
    tmp_path, two_task_data
):
    trainer(tmp_path).fit(two_task_data)
    before = _rows(tmp_path)
    checkpoint = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(InvalidParameterError, match=r"already holds a run .*fit\(overwrite=True\)"):
        trainer(tmp_path).fit(two_task_data)
    assert _rows(tmp_path) == before
    assert (tmp_path / "last.pt").read_bytes() == checkpoint


def test_overwrite_replaces_the_earlier_run(tmp_path, two_task_data):
    trainer(tmp_path, epochs=1).fit(two_task_data)
    trainer(tmp_path, epochs=2).fit(two_task_data, overwrite=True)
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["epochs"] == 2
    assert json.loads(_rows(tmp_path)[-1])["epoch"] == 1


def test_resume_without_a_checkpoint_is_refused(tmp_path, two_task_data):
    with pytest.raises(InvalidParameterError, match=r"no checkpoint at .*last\.pt"):
        trainer(tmp_path).fit(two_task_data, resume=True)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_resume_with_another_learning_rate_is_refused(tmp_path, two_task_data):
    trainer(tmp_path, stop_after_steps=3).fit(two_task_data)
    with pytest.raises(InvalidParameterError, match=r"learning_rate: 0\.0002 -> 0\.5"):
        trainer(tmp_path, learning_rate=0.5).fit(two_task_data, resume=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["trainer"]["learning_rate"] == 0.0002


def test_resume_with_another_epoch_count_is_refused(tmp_path, two_task_data):
    trainer(tmp_path).fit(two_task_data)
    with pytest.raises(InvalidParameterError, match=r"epochs: 2 -> 4"):
        trainer(tmp_path, epochs=4).fit(two_task_data, resume=True)


def test_a_truncated_last_checkpoint_is_named_on_resume(tmp_path, two_task_data):
    trainer(tmp_path, stop_after_steps=3).fit(two_task_data)
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(CorruptCheckpointError, match=str(last)):
        trainer(tmp_path).fit(two_task_data, resume=True)


def test_a_checkpoint_of_another_model_is_named_on_resume(tmp_path, two_task_data):
    trainer(tmp_path, stop_after_steps=3).fit(two_task_data)
    other = trainer(tmp_path)
    other.model.heads["a"] = torch.nn.Linear(3, 2)
    with pytest.raises((CheckpointMismatchError, InvalidParameterError)) as error:
        other.fit(two_task_data, resume=True)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("device", "bogus", "device: expected a torch device"),
        ("stop_after_steps", 1.5, "stop_after_steps: expected a positive integer"),
        ("input_key", "", "input_key: expected the name"),
    ],
)
def test_bad_trainer_settings_are_named(setting, value, message):
    with pytest.raises(InvalidParameterError, match=message):
        TrainerConfig(**{setting: value})


def test_a_batch_without_the_input_key_is_named(tmp_path, two_task_data):
    run = trainer(tmp_path, input_key="image")
    with pytest.raises(InvalidParameterError, match=r"input_key: the batch has no entry 'image'"):
        run.fit(two_task_data)
