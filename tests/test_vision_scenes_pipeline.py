"""The vision pipeline on rendered scenes: in memory and through the written .npy layout."""

from __future__ import annotations

import json

import pytest

from experiments.vision.config import VisionConfig
from experiments.vision.datasets.npy import MultiTaskNpyDataset
from experiments.vision.images import write_sample_images
from experiments.vision.training import build_run, train
from scm.validation import InvalidParameterError

TASKS = ["segmentation", "depth", "normal"]


@pytest.fixture(scope="module")
def scenes_config(tiny_vision_config):
    """``scenes_config(output, **data)``: one epoch of the tiny model on 8 rendered scenes."""

    def build(output, **data) -> VisionConfig:
        return tiny_vision_config(
            data={
                "dataset": "scenes",
                "num_classes": 5,
                "resolution": [16, 16],
                "val_fraction": 0.25,
                "scenes": {"train_size": 8, "test_size": 4},
                **data,
            },
            method={"cka_warmup_steps": 0, "cfa_probability": 1.0},
            training={"epochs": 1, "batch_size": 4, "warmup_steps": 0},
            run={"output_dir": str(output), "num_sample_images": 2},
        )

    return build


def test_coremtl_on_rendered_scenes_scores_the_decomposition_and_writes_images(
    tmp_path, scenes_config
):
    run = build_run(scenes_config(tmp_path))
    report = train(run)
    test = report["test_at_selected"]
    assert {"albedo/si_mse", "shading/si_mse", "normal/mean"} <= set(test)
    assert all(value >= 0 for value in test.values())
    assert {"term/cka", "term/cfa", "term/grounding/render"} <= set(run.history[0]["train"])
    names = {p.name for p in write_sample_images(run, tmp_path / "images")}
    assert {"albedo.png", "shading.png", "render.png", "counterfactual.png"} <= names
    assert json.loads((tmp_path / "final_metrics.json").read_text())["epochs"] == 1


def test_scene_class_count_must_match_the_config(tmp_path, scenes_config):
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


def test_augmented_scenes_render_each_batch_at_once_and_augment_each_index_alone(monkeypatch):
    import torch
    from torch.utils.data import DataLoader, Subset

    from experiments.vision.datasets.scenes_memory import AugmentedDataset
    from experiments.vision.scenes import RenderedScenes, SceneConfig

    scenes = RenderedScenes(12, config=SceneConfig(resolution=(16, 16)))
    calls = []
    render = scenes.renderer.render

    def counting(indices, split, environment):
        calls.append(list(indices))
        return render(indices, split, environment)

    monkeypatch.setattr(scenes.renderer, "render", counting)
    train = AugmentedDataset(Subset(scenes, [10, 2, 7, 5, 0]), seed=3)
    train.set_epoch(2)
    batches = [[4, 0, 2], [1, 3]]
    loaded = list(DataLoader(train, batch_sampler=batches))
    assert calls == [[0, 10, 7], [2, 5]]
    ulps = 4 * torch.finfo(torch.float32).eps
    for batch, positions in zip(loaded, batches, strict=True):
        for row, position in enumerate(positions):
            alone = train[position]
            for key in ("segmentation", "depth", "normal", "shading"):
                assert torch.equal(batch[key][row], alone[key]), key
            for key in ("albedo", "image"):
                assert torch.allclose(batch[key][row], alone[key], rtol=ulps, atol=ulps), key
    train.set_epoch(3)
    assert any(
        not torch.equal(train[position]["image"], loaded[0]["image"][row])
        for row, position in enumerate(batches[0])
    )
