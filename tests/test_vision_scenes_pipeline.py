"""The vision pipeline on rendered scenes: in memory and through the written .npy layout."""

from __future__ import annotations

import json

import pytest

from experiments.vision.config import VisionConfig, from_dict
from experiments.vision.datasets.npy import MultiTaskNpyDataset
from experiments.vision.images import write_sample_images
from experiments.vision.training import build_run, train
from scm.validation import InvalidParameterError

TASKS = ["segmentation", "depth", "normal"]


def scenes_config(output, **data) -> VisionConfig:
    return from_dict(
        VisionConfig,
        {
            "data": {
                "dataset": "scenes",
                "num_classes": 5,
                "resolution": [16, 16],
                "val_fraction": 0.25,
                "scenes": {"train_size": 8, "test_size": 4},
                **data,
            },
            "model": {
                "arch": "resnet18",
                "weights": "random",
                "semantic_channels": 16,
                "residual_channels": 8,
            },
            "method": {"cka_warmup_steps": 0, "cfa_probability": 1.0},
            "training": {"epochs": 1, "batch_size": 4, "warmup_steps": 0},
            "run": {"output_dir": str(output), "num_sample_images": 2},
        },
    )


def test_coremtl_on_rendered_scenes_scores_the_decomposition_and_writes_images(tmp_path):
    run = build_run(scenes_config(tmp_path))
    report = train(run)
    test = report["test_at_selected"]
    assert {"albedo/si_mse", "shading/si_mse", "normal/mean"} <= set(test)
    assert all(value >= 0 for value in test.values())
    assert {"term/cka", "term/cfa", "term/grounding/render"} <= set(run.history[0]["train"])
    names = {p.name for p in write_sample_images(run, tmp_path / "images")}
    assert {"albedo.png", "shading.png", "render.png", "counterfactual.png"} <= names
    assert json.loads((tmp_path / "final_metrics.json").read_text())["epochs"] == 1


def test_scene_class_count_must_match_the_config(tmp_path):
    with pytest.raises(
        InvalidParameterError, match=r"data\.num_classes: the rendered scenes have 5"
    ):
        build_run(scenes_config(tmp_path, num_classes=13))


def test_written_scenes_load_with_the_npy_loader_including_the_truth(tmp_path):
    from experiments.vision.scenes import SceneConfig, make_environment, write_split

    config = SceneConfig(resolution=(16, 16))
    write_split(tmp_path, "train", 2, make_environment("source"), config, progress=False)
    sample = MultiTaskNpyDataset(tmp_path, "train", TASKS, 5, resolution=[16, 16])[1]
    assert sample["albedo"].shape == sample["shading"].shape == (3, 16, 16)
    assert sample["normal"].shape == (3, 16, 16) and sample["segmentation"].max() < 5
