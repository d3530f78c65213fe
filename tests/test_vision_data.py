"""The .npy loaders, augmentation, splits, batch order and config validation of the vision
pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.vision.config import DataConfig, VisionConfig, from_dict, load_config
from experiments.vision.datasets.augment import horizontal_flip, random_scale_crop
from experiments.vision.datasets.npy import MultiTaskNpyDataset
from experiments.vision.datasets.splits import carve_validation
from experiments.vision.datasets.synthetic import write_tiny_dataset
from scm.validation import InvalidParameterError

NYU_TASKS = ["segmentation", "depth", "normal"]
CITY_TASKS = ["segmentation", "depth"]
CONFIG_FOLDER = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"


@pytest.fixture(scope="module")
def nyu_root(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("nyu"), num_train=6, num_test=2)


@pytest.fixture
def fresh_root(tmp_path) -> Path:
    return write_tiny_dataset(tmp_path / "data", num_train=3, num_test=1)


@pytest.mark.parametrize(
    ("tasks", "num_classes", "with_normals"), [(NYU_TASKS, 13, True), (CITY_TASKS, 7, False)]
)
def test_loader_returns_channels_first_fields_with_documented_dtypes(
    tmp_path, tasks, num_classes, with_normals
):
    root = write_tiny_dataset(
        tmp_path, num_train=2, num_test=1, num_classes=num_classes, with_normals=with_normals
    )
    sample = MultiTaskNpyDataset(root, "train", tasks, num_classes, resolution=[32, 48])[0]
    assert sample["image"].shape == (3, 32, 48) and sample["image"].dtype == torch.float32
    assert sample["segmentation"].shape == (32, 48) and sample["segmentation"].dtype == torch.int64
    assert sample["depth"].shape == (1, 32, 48)
    assert int(sample["segmentation"].min()) >= -1
    assert int(sample["segmentation"].max()) < num_classes
    assert ("normal" in sample) == with_normals
    raw = np.load(root / "train" / "image" / "0.npy")
    assert torch.equal(sample["image"], torch.from_numpy(raw.transpose(2, 0, 1)))


def test_positions_select_files_in_index_order(nyu_root):
    full = MultiTaskNpyDataset(nyu_root, "train", NYU_TASKS, 13)
    subset = MultiTaskNpyDataset(nyu_root, "train", NYU_TASKS, 13, positions=[4, 1])
    assert len(full) == 6 and len(subset) == 2
    assert torch.equal(subset[0]["image"], full[4]["image"])


def _break(root: Path, how: str) -> None:
    folder = root / "train"
    if how == "corrupt":
        (folder / "depth" / "1.npy").write_bytes(b"not a numpy file")
    elif how == "label_range":
        label = np.load(folder / "label" / "1.npy")
        label[2, 2] = 13
        np.save(folder / "label" / "1.npy", label)
    elif how == "shape":
        np.save(folder / "depth" / "1.npy", np.ones((16, 48), dtype=np.float32))
    elif how == "image_range":
        np.save(folder / "image" / "1.npy", np.full((32, 48, 3), 2.0, dtype=np.float32))
    elif how == "resolution":
        for name, shape in (
            ("image", (40, 48, 3)),
            ("label", (40, 48)),
            ("depth", (40, 48)),
            ("normal", (40, 48, 3)),
        ):
            np.save(folder / name / "1.npy", np.zeros(shape, dtype=np.float32))


HEADER_DEFECTS = ("corrupt", "shape", "resolution")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("corrupt", r"corrupt file .*depth/1\.npy"),
        (
            "label_range",
            r"label/1\.npy has labels in \[-1, 13\], expected -1 \(ignore\) or 0\.\.12",
        ),
        ("shape", r"depth/1\.npy has shape \(16, 48\), expected \(32, 48\)"),
        ("image_range", r"image/1\.npy has values outside \[0, 1\]"),
        ("resolution", r"image/1\.npy has size \(40, 48\), expected \(32, 48\)"),
    ],
)
def test_bad_file_is_reported_with_its_path(fresh_root, how, message):
    _break(fresh_root, how)
    if how in HEADER_DEFECTS:
        with pytest.raises(InvalidParameterError, match=message):
            MultiTaskNpyDataset(fresh_root, "train", NYU_TASKS, 13, resolution=[32, 48])
        return
    dataset = MultiTaskNpyDataset(fresh_root, "train", NYU_TASKS, 13, resolution=[32, 48])
    dataset[0]
    with pytest.raises(InvalidParameterError, match=message):
        dataset[1]


def test_missing_root_split_and_file_are_reported(fresh_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.root: no such folder .*nowhere"):
        MultiTaskNpyDataset(tmp_path / "nowhere", "train", NYU_TASKS, 13)
    with pytest.raises(FileNotFoundError, match=r"missing split folder .*test"):
        MultiTaskNpyDataset(fresh_root, "test", NYU_TASKS, 13)
    (fresh_root / "train" / "normal" / "2.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file .*normal/2\.npy"):
        MultiTaskNpyDataset(fresh_root, "train", NYU_TASKS, 13)


def _sample(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "image": torch.rand(3, 24, 32, generator=generator),
        "segmentation": torch.randint(-1, 5, (24, 32), generator=generator),
        "depth": torch.full((1, 24, 32), 6.0),
        "normal": torch.nn.functional.normalize(torch.randn(3, 24, 32, generator=generator), dim=0),
    }


def test_scale_crop_divides_depth_by_the_zoom_and_keeps_label_values():
    generator = torch.Generator().manual_seed(3)
    sample = _sample(generator)
    seen_scales = set()
    for _ in range(20):
        out = random_scale_crop(sample, generator=generator)
        scale = 6.0 / float(out["depth"][0, 0, 0])
        assert any(abs(scale - s) < 1e-5 for s in (1.0, 1.2, 1.5))
        seen_scales.add(round(scale, 3))
        assert torch.all(torch.isin(out["segmentation"], sample["segmentation"].unique()))
        assert out["image"].shape == sample["image"].shape
    assert len(seen_scales) > 1


def test_scale_crop_multiplies_inverse_depth_by_the_same_zoom():
    sample = _sample(torch.Generator().manual_seed(3))
    for seed in range(6):
        metric = random_scale_crop(sample, generator=torch.Generator().manual_seed(seed))
        inverse = random_scale_crop(
            sample, generator=torch.Generator().manual_seed(seed), inverse_depth=True
        )
        scale = 6.0 / float(metric["depth"][0, 0, 0])
        assert float(inverse["depth"][0, 0, 0]) == pytest.approx(6.0 * scale, rel=1e-5)
        assert torch.equal(inverse["image"], metric["image"])


@pytest.mark.parametrize(
    ("dataset", "encoding", "inverse"),
    [
        ("nyuv2", "auto", False),
        ("cityscapes", "auto", True),
        ("colored_cityscapes", "auto", True),
        ("cityscapes", "depth", False),
        ("scenes", "inverse", True),
    ],
)
def test_depth_encoding_follows_the_dataset_unless_given(dataset, encoding, inverse):
    config = DataConfig(dataset=dataset, root="/data", depth_encoding=encoding)
    assert config.inverse_depth is inverse


def test_horizontal_flip_mirrors_fields_and_negates_normal_x():
    sample = _sample(torch.Generator().manual_seed(4))
    flipped = horizontal_flip(sample)
    assert torch.equal(flipped["image"], sample["image"].flip(-1))
    assert torch.equal(flipped["normal"][0], -sample["normal"][0].flip(-1))
    assert torch.equal(flipped["normal"][1:], sample["normal"][1:].flip(-1))
    again = horizontal_flip(flipped)
    assert all(torch.equal(again[k], sample[k]) for k in sample)


def test_augmentation_is_a_function_of_seed_epoch_and_index(nyu_root):
    dataset = MultiTaskNpyDataset(nyu_root, "train", NYU_TASKS, 13, augment=True, augment_seed=1)
    first = dataset[2]["image"]
    assert torch.equal(dataset[2]["image"], first)
    outcomes = []
    for epoch in range(1, 6):
        dataset.set_epoch(epoch)
        outcomes.append(torch.equal(dataset[2]["image"], first))
    assert not all(outcomes)


def test_validation_split_is_disjoint_seeded_and_from_training():
    train, val = carve_validation(20, 0.25, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == list(range(20))
    assert carve_validation(20, 0.25, seed=3) == (train, val)
    assert carve_validation(20, 0.25, seed=4) != (train, val)
    with pytest.raises(InvalidParameterError, match=r"val_fraction: expected a number in \(0, 1\)"):
        carve_validation(20, 1.0, seed=0)
    with pytest.raises(InvalidParameterError, match="at least 2 samples"):
        carve_validation(1, 0.5, seed=0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"training": {"epoch": 3}}, r"training\.epoch: unknown key"),
        ({"training": {"epochs": "3"}}, r"training\.epochs: expected an integer, got '3'"),
        ({"training": {"lr": True}}, r"training\.lr: expected a number"),
        (
            {"model": {"kind": "mtan2"}},
            r"model\.kind: expected one of core-mtl, mtan, rep-mtl, mt-crl, single-task, ew, ",
        ),
        ({"data": {"tasks": ["segmentation", "edges"]}}, r"data\.tasks: expected names among"),
        ({"data": {"resolution": [30, 48]}}, r"data\.resolution: expected \[height, width\]"),
        ({"data": {"dataset": "nyuv2", "root": None}}, r"data\.root: expected a folder"),
        ({"method": {"cfa_probability": 1.5}}, r"method\.cfa_probability: expected a probability"),
        ({"data": {"scenes": {"train_size": 1}}}, r"data\.scenes\.train_size: expected"),
    ],
)
def test_config_errors_name_the_key(data, message):
    base = {"data": {"dataset": "scenes"}}
    merged = {**base, **data}
    if "data" in data:
        merged["data"] = {**base["data"], **data["data"]}
    with pytest.raises(InvalidParameterError, match=message):
        from_dict(VisionConfig, merged)


@pytest.mark.parametrize("name", ["nyuv2.yaml", "cityscapes.yaml", "scenes_cpu_tiny.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(CONFIG_FOLDER / name)
    assert config.data.tasks and config.training.epochs >= 1


def test_override_sets_nested_values_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: scenes}\n")
    config = load_config(path, ["training.balancer=pcgrad", "training.epochs=2"])
    assert config.training.balancer == "pcgrad" and config.training.epochs == 2
    with pytest.raises(InvalidParameterError, match=r"training\.balncer: unknown key"):
        load_config(path, ["training.balncer=pcgrad"])
    with pytest.raises(FileNotFoundError, match="config: no such file"):
        load_config(tmp_path / "missing.yaml")


def test_a_truncated_file_is_found_when_the_dataset_is_built(fresh_root):
    path = fresh_root / "train" / "normal" / "2.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InvalidParameterError, match=r"corrupt file .*normal/2\.npy \(truncated"):
        MultiTaskNpyDataset(fresh_root, "train", NYU_TASKS, 13)


def test_a_bad_file_of_the_test_split_is_found_before_training(fresh_root):
    from experiments.vision.datasets.builders import build_splits

    (fresh_root / "val" / "label" / "0.npy").write_bytes(b"\x93NUMPY garbage")
    data = DataConfig(dataset="nyuv2", root=str(fresh_root), resolution=[32, 48], num_classes=13)
    with pytest.raises(InvalidParameterError, match=r"corrupt file .*val/label/0\.npy"):
        build_splits(data, seed=0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.device=bogus", r"run\.device: expected a torch device .* got 'bogus'"),
        ("run.device=meta", r"run\.device: expected a device of type"),
        ("data.split_seed=-1", r"data\.split_seed: expected an integer >= 0, got -1"),
        ("run.seed=-3", r"run\.seed: expected an integer >= 0, got -3"),
        ("data.resolution=[4, 4]", r"data\.resolution: expected .*multiples of 8"),
    ],
)
def test_bad_run_and_data_settings_name_the_key(tmp_path, override, message):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: scenes}\n")
    with pytest.raises(InvalidParameterError, match=message):
        load_config(path, [override])


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: scenes}\n")
    (tmp_path / "taken").write_text("a file")
    for output in ("taken", "taken/run"):
        with pytest.raises(InvalidParameterError, match=r"run\.output_dir: expected a folder"):
            load_config(path, [f"run.output_dir={tmp_path / output}"])


@pytest.mark.parametrize("written", ["1e-3", "1E-3", "+2.5e-4", ".5", "3"])
def test_a_learning_rate_in_exponent_notation_is_a_number(tmp_path, written):
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {{dataset: scenes}}\ntraining: {{lr: {written}}}\n")
    assert load_config(path).training.learning_rate == float(written)
    assert load_config(path, [f"training.lr={written}"]).training.learning_rate == float(written)
    with pytest.raises(
        InvalidParameterError, match=r"training\.learning_rate: expected a number, got '1e-3x'"
    ):
        load_config(path, ["training.lr=1e-3x"])


def test_invalid_yaml_is_one_line_naming_the_file_and_place(tmp_path, capsys):
    from coremtl_cli.main import main

    path = tmp_path / "c.yaml"
    path.write_text("training:\n  lr: [1e-3\n  epochs: 2\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"config {path}: not valid YAML" in err and "line 3" in err
    path.write_text("data: {dataset: scenes}\n")
    assert main(["train", "--config", str(path), "--set", "training.lr=[1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--set training.lr: the value is not valid YAML" in err


@pytest.mark.parametrize("resolution", ["1", "4", "12x16", "64x4"])
def test_render_refuses_images_the_model_cannot_take_before_writing(tmp_path, capsys, resolution):
    from coremtl_cli.main import main

    root = tmp_path / "scenes"
    assert (
        main(["data", "render", "--root", str(root), "--n", "1", "--resolution", resolution]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--resolution: expected" in err and "multiples of 8" in err
    assert not root.exists()


def test_render_on_an_absent_gpu_creates_nothing(tmp_path, capsys, monkeypatch):
    from coremtl_cli.main import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = tmp_path / "scenes"
    assert main(["data", "render", "--root", str(root), "--n", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device: 'cuda' asked but CUDA is unavailable" in err
    assert not root.exists()
    assert main(["data", "render", "--root", str(root), "--n", "1", "--device", "bogus"]) == 2
    assert "--device: expected a torch device" in capsys.readouterr().err
    assert not root.exists()


def test_carving_with_a_negative_seed_names_the_parameter():
    with pytest.raises(InvalidParameterError, match=r"split_seed: expected a non-negative integer"):
        carve_validation(10, 0.2, -1)
