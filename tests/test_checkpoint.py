"""Checkpoint files: atomic saves, leftovers of killed saves, and one-line refusals of files that
are empty, truncated, foreign, unsafe or of another model."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from coremtl.checkpoint import (
    CheckpointMismatchError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_module_state,
    remove_stale_temporaries,
    save_checkpoint,
)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": nn.Linear(3, 2).state_dict(), "step": 4}, path)
    return path


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_an_empty_file_is_reported_as_empty(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError) as error:
        load_checkpoint(path)
    assert "empty" in _one_line(error) and str(path) in str(error.value)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_a_truncated_file_is_reported_as_corrupt(saved, fraction):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CorruptCheckpointError) as error:
        load_checkpoint(saved)
    assert str(saved) in _one_line(error)


def test_random_bytes_are_corrupt_not_unsafe(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CorruptCheckpointError) as error:
        load_checkpoint(path)
    assert "not a checkpoint" in _one_line(error)


class _Opaque:
    pass


def test_a_checkpoint_holding_code_is_refused_as_unsafe(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"object": _Opaque()}, path)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_checkpoint(path)


def test_a_state_of_another_model_names_the_reshaped_entries(saved):
    state = load_checkpoint(saved)
    with pytest.raises(CheckpointMismatchError) as error:
        load_module_state(nn.Linear(5, 2), state["model"], saved)
    message = _one_line(error)
    assert "weight (2, 3) vs (2, 5)" in message and str(saved) in message


def test_a_state_with_other_names_lists_missing_and_unexpected(saved):
    state = load_checkpoint(saved)
    with pytest.raises(CheckpointMismatchError) as error:
        load_module_state(nn.Sequential(nn.Linear(3, 2)), state["model"], saved)
    message = _one_line(error)
    assert "missing: 0.weight" in message and "unexpected: weight" in message


def test_a_matching_state_loads_exactly(saved):
    state = load_checkpoint(saved)
    module = nn.Linear(3, 2)
    load_module_state(module, state["model"], saved)
    assert torch.equal(module.weight, state["model"]["weight"])


def test_a_killed_save_leaves_nothing_after_the_next_save(saved):
    leftover = saved.parent / f".{saved.name}.abc123.tmp"
    leftover.write_bytes(b"partial")
    other = saved.parent / ".best.pt.keep.tmp"
    other.write_bytes(b"another destination")
    save_checkpoint({"step": 5}, saved)
    assert not leftover.exists()
    assert other.exists()
    assert load_checkpoint(saved)["step"] == 5
    assert remove_stale_temporaries(saved) == []
