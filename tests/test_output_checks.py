"""Nothing lost, nothing done in vain: every command checks that it can write its outputs before
it starts working (one line naming the flag, exit status 2), refuses what it cannot take in one
line, and a run folder is recognised by the manifest only a run writes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import coremtl
from coremtl.run_folder import MANIFEST
from coremtl.trainer import Trainer, TrainerConfig
from coremtl_cli.main import main
from scm.validation import InvalidParameterError, check_output_path


def _no_work(*args, **kwargs):
    raise AssertionError("the command started working before checking its outputs")


def _one_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(word in err for word in words), err
    return err


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("the user's")
    return path


def test_check_output_path_accepts_a_new_path_and_refuses_one_under_a_file(tmp_path, a_file):
    assert check_output_path(tmp_path / "new" / "deeper" / "x.json", "--output").name == "x.json"
    with pytest.raises(InvalidParameterError, match=r"--output: cannot create .*a_file is a file"):
        check_output_path(a_file / "x.json", "--output")
    with pytest.raises(InvalidParameterError, match=r"--figures: .* is a file, expected a folder"):
        check_output_path(a_file, "--figures", folder=True)
    with pytest.raises(InvalidParameterError, match=r"--output: .* is a folder, expected a file"):
        check_output_path(tmp_path, "--output")
    with pytest.raises(InvalidParameterError, match="output_dir: expected a file or folder path"):
        check_output_path("", "output_dir", folder=True)


def test_select_weights_checks_its_output_before_training(a_file, monkeypatch, capsys):
    monkeypatch.setattr("experiments.synthetic.default_weights.run", _no_work)
    assert main(["select-weights", "--smoke", "--output", str(a_file / "x.json")]) == 2
    _one_line(capsys, "--output", "is a file")
    assert a_file.read_text() == "the user's"


def test_verify_checks_its_results_and_figures_before_running(
    tmp_path, a_file, monkeypatch, capsys
):
    monkeypatch.setattr("experiments.verify.run_serial", _no_work)
    assert main(["verify", "--smoke", "--results", str(a_file / "v.json")]) == 2
    _one_line(capsys, "--results", "is a file")
    figures = ["--figures", str(a_file), "--results", str(tmp_path / "v.json")]
    assert main(["verify", "--smoke", *figures]) == 2
    _one_line(capsys, "--figures", "expected a folder")


def test_bench_checks_its_output_and_device_before_running(a_file, monkeypatch, capsys):
    monkeypatch.setattr("scm.benchmark.main", _no_work)
    assert main(["bench", "sampling", "--quick", "--output", str(a_file)]) == 2
    _one_line(capsys, "--output", "expected a folder")
    assert main(["bench", "sampling", "--quick", "--device", "tpu"]) == 2
    _one_line(capsys, "--device", "'tpu'")


def test_figures_checks_its_folder_before_drawing(tmp_path, a_file, monkeypatch, capsys):
    results = tmp_path / "verify.json"
    results.write_text(json.dumps({"configuration": {}, "studies": {}}))
    monkeypatch.setattr("experiments.figures_cli.render", _no_work)
    assert main(["figures", "--results", str(results), "--figures", str(a_file)]) == 2
    _one_line(capsys, "--figures", "expected a folder")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ([1, 2], ("not a coremtl verify results file",)),
        ({"configuration": {}, "studies": [1]}, ("'studies' and 'configuration'",)),
        ({"configuration": {}, "studies": {"x": {}}}, ("studies['x']", "study number")),
        ({"configuration": {}, "studies": {"4": 3}}, ("studies['4']",)),
        ({"configuration": {"versions": [1]}, "studies": {}}, ("configuration.versions",)),
        ({"configuration": {}, "studies": {"4": {"foo": 1}}}, ("study 4's entry cannot be drawn",)),
    ],
)
def test_figures_refuses_a_results_file_of_another_shape_in_one_line(
    payload, words, tmp_path, capsys
):
    results = tmp_path / "verify.json"
    results.write_text(json.dumps(payload))
    figures = tmp_path / "figures"
    assert main(["figures", "--results", str(results), "--figures", str(figures)]) == 2
    _one_line(capsys, "--results", *words)
    assert not (figures / "REPORT.md").exists()


def test_evaluate_checks_output_and_predictions_before_evaluating(
    tmp_path, a_file, monkeypatch, capsys
):
    monkeypatch.setattr("experiments.vision.evaluate_cli.evaluate_checkpoint", _no_work)
    checkpoint = ["evaluate", "--checkpoint", str(tmp_path / "best.pt")]
    assert main([*checkpoint, "--output", str(tmp_path), "--overwrite"]) == 2
    _one_line(capsys, "--output", "is a folder, expected a file")
    assert main([*checkpoint, "--save-predictions", str(a_file), "--overwrite"]) == 2
    _one_line(capsys, "--save-predictions", "expected a folder")


def test_scm_refuses_a_k_beyond_the_memory_available(capsys):
    assert main(["scm", "--k", "10000000"]) == 2
    _one_line(capsys, "--k", "GiB")


def _tiny_trainer(folder) -> Trainer:
    torch.manual_seed(0)
    model = coremtl.build(
        "ew", nn.Linear(2, 4), [coremtl.Task("y", "regression", 1)], torch.zeros(2, 2), epochs=1
    )
    config = TrainerConfig(epochs=1, batch_size=4, progress=False)
    return Trainer(model.model, model.task_losses, model.balancer, config, folder)


def _tiny_data() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {"x": torch.randn(8, 2, generator=generator), "y": torch.randn(8, generator=generator)}


def test_overwrite_never_deletes_a_users_files_named_like_a_runs(tmp_path):
    own = {"config.json": '{"mine": true}', "metrics.csv": "step,loss\n"}
    for name, text in own.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(InvalidParameterError, match="no run of this toolkit wrote"):
        _tiny_trainer(tmp_path).fit(_tiny_data(), overwrite=True)
    assert {name: (tmp_path / name).read_text() for name in own} == own
    assert not (tmp_path / MANIFEST).exists()


def test_the_apis_refusal_names_what_the_api_takes_and_overwrite_replaces(tmp_path):
    task = coremtl.Task("y", "regression", 1)
    arguments = {"epochs": 1, "batch_size": 4, "output_dir": tmp_path}
    coremtl.train("ew", nn.Linear(2, 4), [task], _tiny_data(), **arguments)
    with pytest.raises(InvalidParameterError) as error:
        coremtl.train("ew", nn.Linear(2, 4), [task], _tiny_data(), **arguments)
    assert "overwrite=True" in str(error.value) and "--" not in str(error.value)
    coremtl.train("ew", nn.Linear(2, 4), [task], _tiny_data(), overwrite=True, **arguments)
    steps = [
        json.loads(row)["step"] for row in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2]


class FailsInTraining(nn.Module):
    """A backbone that works in eval mode (the shape probe) and fails at the first step."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("out of memory at step 0")
        return self.linear(x)


def test_a_run_that_crashed_at_step_0_does_not_block_its_folder_through_the_api(tmp_path):
    task = coremtl.Task("y", "regression", 1)
    arguments = {"epochs": 1, "batch_size": 4, "output_dir": tmp_path}
    with pytest.raises(RuntimeError, match="step 0"):
        coremtl.train("ew", FailsInTraining(), [task], _tiny_data(), **arguments)
    assert (tmp_path / MANIFEST).exists()
    result = coremtl.train("ew", nn.Linear(2, 4), [task], _tiny_data(), **arguments)
    assert math.isfinite(result.history[0]["train"]["loss/y"])
