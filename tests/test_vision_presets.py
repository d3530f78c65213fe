"""Every real data set's ``*_cpu_tiny.yaml`` preset trains on tiny data written in that data set's
own on-disk format, given only where the data is."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from vision_files import ood_data_section, write_celeba, write_cityscapes

from coremtl_cli.main import main
from experiments.vision.config import load_config
from experiments.vision.datasets.synthetic import write_tiny_dataset

CONFIG_FOLDER = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"
PRESETS = {
    "nyuv2": "nyuv2_cpu_tiny.yaml",
    "cityscapes": "cityscapes_cpu_tiny.yaml",
    "celeba": "celeba_cpu_tiny.yaml",
    "gta5": "gta5_cityscapes_cpu_tiny.yaml",
    "cityscapes_c": "cityscapes_c_cpu_tiny.yaml",
    "colored_cityscapes": "colored_cityscapes_cpu_tiny.yaml",
}


def _dotted(prefix: str, values: dict) -> list[str]:
    overrides = []
    for key, value in values.items():
        if isinstance(value, dict):
            overrides += _dotted(f"{prefix}.{key}", value)
        elif key != "dataset":
            overrides.append(f"{prefix}.{key}={value}")
    return overrides


def tiny_data_overrides(name: str, folder: Path) -> list[str]:
    """``--set`` overrides pointing the preset at tiny data written in its own format."""
    if name == "nyuv2":
        root = write_tiny_dataset(folder / "nyu", num_train=8, num_test=2, height=32, width=48)
        return [f"data.root={root}"]
    if name == "cityscapes":
        return [f"data.root={write_cityscapes(folder / 'city', num_train=8, num_test=2)}"]
    if name == "celeba":
        write_celeba(folder / "celeba")
        return [f"data.root={folder / 'celeba'}"]
    return _dotted("data", ood_data_section(name, folder))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_tiny_preset_trains_on_its_data_sets_own_format(name, tmp_path):
    preset = CONFIG_FOLDER / PRESETS[name]
    config = load_config(preset)
    assert config.data.dataset == name and config.run.device == "cpu"
    assert config.training.independence_start_epoch < config.training.epochs
    overrides = tiny_data_overrides(name, tmp_path)
    assert len(overrides) <= 4
    output = tmp_path / "out"
    arguments = ["train", "--config", str(preset), "--output", str(output)]
    for override in overrides:
        arguments += ["--set", override]
    assert main(arguments) == 0
    report = json.loads((output / "final_metrics.json").read_text())
    assert report["epochs"] == config.training.epochs
    assert report["test_at_selected"]
    assert all(math.isfinite(value) for value in report["test_at_selected"].values())
    epochs = [json.loads(line) for line in (output / "epochs.jsonl").read_text().splitlines()]
    assert len(epochs) == config.training.epochs


def test_evaluate_saves_predictions_in_the_data_sets_layout(tmp_path, capsys):
    import numpy as np

    preset = CONFIG_FOLDER / PRESETS["nyuv2"]
    (root,) = [o.split("=", 1)[1] for o in tiny_data_overrides("nyuv2", tmp_path)]
    output = tmp_path / "out"
    arguments = ["train", "--config", str(preset), "--output", str(output), "--set"]
    assert main([*arguments, f"data.root={root}"]) == 0
    capsys.readouterr()
    folder = tmp_path / "predictions"
    checkpoint = str(output / "checkpoints" / "best.pt")
    evaluate = ["evaluate", "--checkpoint", checkpoint, "--save-predictions", str(folder)]
    assert main(evaluate) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert "metrics.miou_convention=present" in captured.err
    record = json.loads((folder / "predictions.json").read_text())
    assert record["count"] == 2 and record["indices"] == [0, 1]
    correct = labelled = 0
    for index in record["indices"]:
        label = np.load(folder / "label" / f"{index}.npy")
        depth = np.load(folder / "depth" / f"{index}.npy")
        normal = np.load(folder / "normal" / f"{index}.npy")
        assert label.shape == depth.shape == (32, 48) and label.dtype == np.int64
        assert normal.shape == (32, 48, 3)
        assert np.allclose(np.linalg.norm(normal, axis=2), 1.0, atol=1e-5)
        truth = np.load(Path(root) / "val" / "label" / f"{index}.npy")
        valid = truth >= 0
        correct += int((label[valid] == truth[valid]).sum())
        labelled += int(valid.sum())
    assert correct / labelled == pytest.approx(metrics["segmentation/pixel_accuracy"], abs=1e-12)
    assert main(evaluate) == 2
    err = capsys.readouterr().err
    assert "--save-predictions" in err and "pass --overwrite" in err
    assert main([*evaluate, "--overwrite", "--set", "metrics.miou_convention=libmtl"]) == 0
    assert "metrics.miou_convention=libmtl" in capsys.readouterr().err
