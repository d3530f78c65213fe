"""Out-of-distribution dense datasets: GTA5 -> Cityscapes, Cityscapes-C and Colored-Cityscapes.

Every test writes its own tiny data in the exact on-disk format: GTA5 PNG frames, PNG labels of
Cityscapes ids and ``.npy`` depth; the Cityscapes ``.npy`` layout; the Cityscapes-C PNG tree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from vision_files import (
    CITYSCAPES_SIZE,
    ood_data_section,
    shift_corruption,
    write_cityscapes,
    write_gta5,
)

from coremtl_cli.main import main
from experiments.vision.config import VisionConfig, from_dict, load_config
from experiments.vision.datasets.builders import build_splits
from experiments.vision.datasets.cityscapes_c import (
    CorruptedDataset,
    corrupted_test_split,
    image_seed,
    write_corrupted_tree,
)
from experiments.vision.datasets.colored import ColoredDataset, class_palette, colour_map
from experiments.vision.datasets.gta5 import (
    CATEGORY_NAMES,
    GTA5Dataset,
    evenly_spaced,
    nearest_grid,
    pair_files,
)
from experiments.vision.datasets.npy import MultiTaskNpyDataset
from scm.validation import InvalidParameterError

TASKS = ["segmentation", "depth"]
HEIGHT, WIDTH = CITYSCAPES_SIZE
CONFIG_FOLDER = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"


def data_config(**values) -> VisionConfig:
    data = {
        "tasks": TASKS,
        "num_classes": 7,
        "resolution": [HEIGHT, WIDTH],
        "val_fraction": 0.25,
        "augment": False,
        **values,
    }
    return from_dict(VisionConfig, {"data": data})


def gta5_dataset(root: Path, resolution=(HEIGHT, WIDTH), **kwargs) -> GTA5Dataset:
    return GTA5Dataset(pair_files(root, with_depth=True), TASKS, resolution, **kwargs)


# GTA5: labels


def test_cityscapes_ids_map_to_their_category_and_void_to_ignore(tmp_path):
    """The Cityscapes label table (ids 0..33 in order, grouped by category) on one image."""
    names = {
        "void": [
            *("unlabeled", "ego vehicle", "rectification border", "out of roi", "static"),
            *("dynamic", "ground"),
        ],
        "flat": ["road", "sidewalk", "parking", "rail track"],
        "construction": ["building", "wall", "fence", "guard rail", "bridge", "tunnel"],
        "object": ["pole", "polegroup", "traffic light", "traffic sign"],
        "nature": ["vegetation", "terrain"],
        "sky": ["sky"],
        "human": ["person", "rider"],
        "vehicle": [
            *("car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle"),
        ],
    }
    categories = [c for c, labels in names.items() for _ in labels]
    assert len(categories) == 34
    cases = {i: (CATEGORY_NAMES.index(c) if c != "void" else -1) for i, c in enumerate(categories)}
    cases[255] = -1
    ids = np.array(list(cases), dtype=np.uint8).reshape(5, 7)
    root = tmp_path / "gta5"
    write_gta5(root, count=1, size=(5, 7))
    Image.fromarray(ids, mode="L").save(root / "labels" / "00000.png")
    sample = gta5_dataset(root, resolution=(5, 7))[0]
    expected = np.array(list(cases.values())).reshape(5, 7)
    assert np.array_equal(sample["segmentation"].numpy(), expected)
    assert sample["segmentation"].dtype == torch.int64


def test_palette_mode_labels_are_read_as_ids(tmp_path):
    root = write_gta5(tmp_path / "gta5", count=1, size=(2, 2))
    label = Image.fromarray(np.array([[7, 23], [26, 255]], dtype=np.uint8), mode="L").convert("P")
    label.save(root / "labels" / "00000.png")
    sample = gta5_dataset(root, resolution=(2, 2))[0]
    assert sample["segmentation"].tolist() == [[0, 4], [6, -1]]


@pytest.mark.parametrize("bad_id", [34, 200])
def test_label_id_outside_cityscapes_range_names_the_file(tmp_path, bad_id):
    root = write_gta5(tmp_path / "gta5", count=2)
    ids = np.array(Image.open(root / "labels" / "00001.png"))
    ids[3, 3] = bad_id
    Image.fromarray(ids, mode="L").save(root / "labels" / "00001.png")
    dataset = gta5_dataset(root)
    dataset[0]
    with pytest.raises(
        InvalidParameterError, match=rf"labels/00001\.png has label ids \[{bad_id}\]"
    ):
        dataset[1]


def test_colour_coded_label_is_rejected_with_its_path(tmp_path):
    root = write_gta5(tmp_path / "gta5", count=1)
    Image.new("RGB", (40, 24)).save(root / "labels" / "00000.png")
    with pytest.raises(InvalidParameterError, match=r"labels/00000\.png has mode RGB"):
        gta5_dataset(root)[0]


# GTA5: pairing, corrupt files, sizes


def test_pairing_by_stem_reports_the_missing_file(tmp_path):
    root = write_gta5(tmp_path / "gta5", count=3)
    (root / "labels" / "00001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file .*labels/00001\.png"):
        pair_files(root, with_depth=True)


def test_an_extra_file_without_an_image_is_reported(tmp_path):
    root = write_gta5(tmp_path / "gta5", count=2)
    np.save(root / "depth" / "zzz.npy", np.ones((24, 40), dtype=np.float32))
    with pytest.raises(FileNotFoundError, match=r"missing file .*images/zzz\.png"):
        pair_files(root, with_depth=True)
    assert len(pair_files(root, with_depth=False)) == 2


def test_missing_root_and_folder_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.root: no such folder .*nowhere"):
        pair_files(tmp_path / "nowhere", with_depth=True)
    root = write_gta5(tmp_path / "gta5", count=1)
    for path in (root / "depth").iterdir():
        path.unlink()
    (root / "depth").rmdir()
    with pytest.raises(FileNotFoundError, match=r"missing folder .*gta5/depth"):
        pair_files(root, with_depth=True)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("image", r"corrupt file .*images/00001\.png"),
        ("label", r"corrupt file .*labels/00001\.png"),
        ("depth", r"corrupt file .*depth/00001\.npy"),
        ("label_size", r"labels/00001\.png has size \(20, 40\), expected \(24, 40\)"),
        ("depth_size", r"depth/00001\.npy has size \(24, 39\), expected \(24, 40\)"),
        ("depth_nan", r"depth/00001\.npy has NaN or negative depth"),
    ],
)
def test_bad_gta5_file_is_reported_with_its_path(tmp_path, how, message):
    root = write_gta5(tmp_path / "gta5", count=2)
    if how == "image":
        (root / "images" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    elif how == "label":
        data = (root / "labels" / "00001.png").read_bytes()
        (root / "labels" / "00001.png").write_bytes(data[: len(data) // 2])
    elif how == "depth":
        (root / "depth" / "00001.npy").write_bytes(b"not a numpy file")
    elif how == "label_size":
        Image.fromarray(np.full((20, 40), 7, np.uint8), mode="L").save(
            root / "labels" / "00001.png"
        )
    elif how == "depth_size":
        np.save(root / "depth" / "00001.npy", np.ones((24, 39), dtype=np.float32))
    elif how == "depth_nan":
        depth = np.ones((24, 40), dtype=np.float32)
        depth[2, 2] = np.nan
        np.save(root / "depth" / "00001.npy", depth)
    dataset = gta5_dataset(root)
    dataset[0]
    with pytest.raises(InvalidParameterError, match=message):
        dataset[1]


# GTA5: resizing and depth scale


def test_nearest_grid_picks_source_pixel_centres():
    assert nearest_grid(8, 4).tolist() == [1, 3, 5, 7]
    assert nearest_grid(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert nearest_grid(5, 5).tolist() == list(range(5))


def test_resized_label_and_depth_stay_aligned(tmp_path):
    depth_of_category = np.array([5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    table = np.array([-1] * 7 + [0] * 4 + [1] * 6 + [2] * 4 + [3] * 2 + [4] + [5] * 2 + [6] * 8)

    def depth_of_id(ids):
        category = np.where(ids == 255, -1, table[np.minimum(ids, 33)])
        return np.where(category >= 0, depth_of_category[np.maximum(category, 0)], 0.0)

    root = write_gta5(tmp_path / "gta5", count=2, size=(37, 53), depth_of_id=depth_of_id)
    dataset = gta5_dataset(root, target_depth="depth")
    for sample in (dataset[0], dataset[1]):
        labels = sample["segmentation"].numpy()
        depth = sample["depth"][0].numpy()
        assert sample["image"].shape == (3, HEIGHT, WIDTH) and depth.shape == (HEIGHT, WIDTH)
        assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
        valid = labels >= 0
        assert np.allclose(depth[valid], depth_of_category[labels[valid]])
        assert np.all(depth[~valid] == 0)


def test_median_scaling_matches_its_formula_on_training_files(tmp_path):
    gta_root = write_gta5(tmp_path / "gta5", count=8, size=(HEIGHT, WIDTH))
    city_root = write_cityscapes(tmp_path / "city")
    config = data_config(
        dataset="gta5", root=str(gta_root), gta5={"target_root": str(city_root), "max_depth": 70.0}
    )
    splits = build_splits(config.data, seed=0)
    train, val = splits.train, splits.val
    assert {f.stem for f in train.files}.isdisjoint({f.stem for f in val.files})
    target = np.concatenate(
        [np.load(p).ravel() for p in sorted((city_root / "train" / "depth").glob("*.npy"))]
    )
    raw = np.concatenate([np.load(f.depth).ravel() for f in train.files]).astype(np.float64)
    usable = (raw > 0) & np.isfinite(raw) & (raw <= 70.0)
    expected_scale = np.median(target[target > 0]) / np.median(1.0 / raw[usable])
    assert train.depth_scale == pytest.approx(expected_scale, rel=1e-9)
    assert val.depth_scale == train.depth_scale
    for dataset in (train, val):
        raw = np.load(dataset.files[0].depth).astype(np.float64)
        usable = (raw > 0) & np.isfinite(raw) & (raw <= 70.0)
        depth = dataset[0]["depth"][0].numpy()
        assert np.allclose(depth[usable], expected_scale / raw[usable], rtol=1e-6)
        assert np.all(depth[~usable] == 0)
    assert len(splits.test) == 3
    assert torch.equal(
        splits.test[0]["depth"][0], torch.from_numpy(np.load(city_root / "val" / "depth" / "0.npy"))
    )


def test_factor_scaling_multiplies_distances_by_the_given_factor(tmp_path):
    gta_root = write_gta5(tmp_path / "gta5", count=4, size=(HEIGHT, WIDTH))
    city_root = write_cityscapes(tmp_path / "city")
    gta5 = {
        "target_root": str(city_root),
        "target_depth": "depth",
        "depth_scaling": "factor",
        "depth_factor": 0.25,
    }
    splits = build_splits(data_config(dataset="gta5", root=str(gta_root), gta5=gta5).data, 0)
    raw = np.load(splits.train.files[0].depth).astype(np.float64)
    usable = (raw > 0) & np.isfinite(raw)
    depth = splits.train[0]["depth"][0].numpy()
    assert np.allclose(depth[usable], 0.25 * raw[usable], rtol=1e-6)
    assert np.all(depth[~usable] == 0)


def test_evenly_spaced_keeps_ends_and_limit():
    assert evenly_spaced(5, 10) == [0, 1, 2, 3, 4]
    picked = evenly_spaced(100, 5)
    assert picked[0] == 0 and picked[-1] == 99 and len(picked) == 5


def test_gta5_split_rejects_normals_wrong_class_count_and_missing_target(tmp_path):
    gta_root = write_gta5(tmp_path / "gta5", count=4)
    with pytest.raises(InvalidParameterError, match=r"data\.gta5\.target_root"):
        build_splits(data_config(dataset="gta5", root=str(gta_root)).data, 0)
    target = {"target_root": str(tmp_path)}
    with pytest.raises(InvalidParameterError, match=r"data\.num_classes: .* 7 Cityscapes"):
        build_splits(
            data_config(dataset="gta5", root=str(gta_root), num_classes=19, gta5=target).data, 0
        )
    with pytest.raises(InvalidParameterError, match=r"data\.tasks: GTA5 has"):
        build_splits(
            data_config(
                dataset="gta5", root=str(gta_root), tasks=[*TASKS, "normal"], gta5=target
            ).data,
            0,
        )


# Colored-Cityscapes


@pytest.mark.parametrize("num_classes", [2, 3, 7, 13])
def test_target_colours_are_a_derangement_of_the_source_colours(num_classes):
    source = colour_map(num_classes, "source", seed=0)
    assert np.allclose(source, class_palette(num_classes))
    assert len({tuple(np.round(c, 6)) for c in source}) == num_classes
    for seed in range(20):
        target = colour_map(num_classes, "target", seed)
        assert not np.any(np.all(np.isclose(target, source), axis=1))
        assert sorted(map(tuple, target.round(6))) == sorted(map(tuple, source.round(6)))


def test_colouring_blends_class_colour_and_leaves_labels_unchanged(tmp_path):
    root = write_cityscapes(tmp_path / "city", num_train=2, num_test=1)
    base = MultiTaskNpyDataset(root, "train", TASKS, 7)
    colours = colour_map(7, "target", seed=3)
    coloured = ColoredDataset(base, colours, strength=0.3)
    for index in range(len(base)):
        clean, sample = base[index], coloured[index]
        assert torch.equal(sample["segmentation"], clean["segmentation"])
        assert torch.equal(sample["depth"], clean["depth"])
        labels = clean["segmentation"]
        expected = clean["image"].clone()
        for k in range(7):
            mask = labels == k
            tint = torch.tensor(colours[k], dtype=torch.float32)[:, None]
            expected[:, mask] = 0.7 * clean["image"][:, mask] + 0.3 * tint
        assert torch.allclose(sample["image"], expected, atol=1e-6)
        assert torch.equal(sample["image"][:, labels < 0], clean["image"][:, labels < 0])


def test_colored_splits_train_on_source_and_test_on_target_colours(tmp_path):
    root = write_cityscapes(tmp_path / "city")
    config = data_config(
        dataset="colored_cityscapes", root=str(root), colored={"strength": 1.0, "seed": 5}
    )
    splits = build_splits(config.data, seed=0)
    assert len(splits.train) + len(splits.val) == 6 and len(splits.test) == 3
    source, target = colour_map(7, "source", 5), colour_map(7, "target", 5)
    for dataset, colours in ((splits.train, source), (splits.val, source), (splits.test, target)):
        sample = dataset[0]
        assert set(sample) == {"image", "segmentation", "depth"}
        assert sample["image"].shape == (3, HEIGHT, WIDTH)
        labels = sample["segmentation"]
        k = int(labels[labels >= 0][0])
        pixel = sample["image"][:, labels == k][:, 0]
        assert torch.allclose(pixel, torch.tensor(colours[k], dtype=torch.float32), atol=1e-6)


def test_colored_strength_outside_unit_interval_names_the_key():
    with pytest.raises(InvalidParameterError, match=r"data\.colored\.strength"):
        data_config(dataset="colored_cityscapes", root="x", colored={"strength": 1.5})


# Cityscapes-C


@pytest.fixture
def clean_root(tmp_path) -> Path:
    return write_cityscapes(tmp_path / "city", num_train=4, num_test=3)


def clean_val(root: Path) -> MultiTaskNpyDataset:
    return MultiTaskNpyDataset(root, "val", TASKS, 7, resolution=[HEIGHT, WIDTH])


def test_corrupted_tree_pairs_images_with_clean_labels(clean_root, tmp_path):
    tree = tmp_path / "tree"
    write_corrupted_tree(
        clean_root, tree, ["shift"], severities=[2], seed=4, corrupt=shift_corruption
    )
    clean = clean_val(clean_root)
    dataset = CorruptedDataset(clean, tree, "shift", 2)
    assert sorted(p.name for p in (tree / "shift" / "2").iterdir()) == ["0.png", "1.png", "2.png"]
    for position, index in enumerate(clean.indices):
        sample, reference = dataset[position], clean[position]
        assert torch.equal(sample["segmentation"], reference["segmentation"])
        assert torch.equal(sample["depth"], reference["depth"])
        quantised = np.round(reference["image"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        expected = shift_corruption(quantised, "shift", 2, image_seed(4, "shift", 2, index))
        assert torch.equal(
            sample["image"], torch.from_numpy(expected.transpose(2, 0, 1).astype(np.float32) / 255)
        )


def _tree(clean_root: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    write_corrupted_tree(clean_root, tree, ["a", "b"], severities=[1, 3], corrupt=shift_corruption)
    return tree


def test_missing_corrupted_file_is_reported(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    (tree / "a" / "3" / "1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file .*a/3/1\.png \(1 of 3"):
        CorruptedDataset(clean_val(clean_root), tree, "a", 3)


def test_extra_corrupted_file_is_reported(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    Image.new("RGB", (WIDTH, HEIGHT)).save(tree / "a" / "1" / "7.png")
    with pytest.raises(InvalidParameterError, match=r"a/1/7\.png has no clean counterpart"):
        CorruptedDataset(clean_val(clean_root), tree, "a", 1)


def test_corrupted_file_of_another_size_is_reported(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    Image.new("RGB", (WIDTH, HEIGHT + 8)).save(tree / "b" / "1" / "2.png")
    with pytest.raises(
        InvalidParameterError, match=r"b/1/2\.png has size \(24, 32\), expected \(16, 32\)"
    ):
        CorruptedDataset(clean_val(clean_root), tree, "b", 1)


def test_undecodable_corrupted_file_is_reported(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    (tree / "b" / "3" / "0.png").write_bytes(b"garbage")
    with pytest.raises(InvalidParameterError, match=r"corrupt file .*b/3/0\.png"):
        CorruptedDataset(clean_val(clean_root), tree, "b", 3)


def test_missing_corruption_lists_the_available_ones(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing folder .*fog/3 .*\['a', 'b'\]"):
        corrupted_test_split(clean_val(clean_root), tree, "fog", 3)


def test_all_corruptions_and_severities_concatenate(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    clean = clean_val(clean_root)
    assert len(corrupted_test_split(clean, tree, "a", 1)) == 3
    assert len(corrupted_test_split(clean, tree, "a", 0)) == 6
    assert len(corrupted_test_split(clean, tree, "all", 3)) == 6
    everything = corrupted_test_split(clean, tree, "all", 0)
    assert len(everything) == 12
    assert [(d.corruption, d.severity) for d in everything.datasets] == [
        ("a", 1),
        ("a", 3),
        ("b", 1),
        ("b", 3),
    ]


def test_existing_tree_is_not_overwritten_silently(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    with pytest.raises(InvalidParameterError, match=r"--overwrite: .*a/1 exists"):
        write_corrupted_tree(clean_root, tree, ["a"], severities=[1], corrupt=shift_corruption)
    write_corrupted_tree(
        clean_root, tree, ["a"], severities=[1], seed=9, corrupt=shift_corruption, overwrite=True
    )


def test_cityscapes_c_splits_train_clean_and_test_corrupted(clean_root, tmp_path):
    tree = _tree(clean_root, tmp_path)
    config = data_config(
        dataset="cityscapes_c",
        root=str(clean_root),
        corruption={"root": str(tree), "name": "b", "severity": 3},
    )
    splits = build_splits(config.data, seed=0)
    clean = build_splits(data_config(dataset="cityscapes", root=str(clean_root)).data, seed=0)
    assert len(splits.train) == len(clean.train) and len(splits.val) == len(clean.val)
    assert torch.equal(splits.train[0]["image"], clean.train[0]["image"])
    assert len(splits.test) == 3
    sample = splits.test[1]
    assert set(sample) == {"image", "segmentation", "depth"}
    assert sample["image"].shape == (3, HEIGHT, WIDTH)
    assert torch.equal(sample["segmentation"], clean.test[1]["segmentation"])
    assert not torch.equal(sample["image"], clean.test[1]["image"])


def test_corruption_severity_out_of_range_names_the_key():
    with pytest.raises(InvalidParameterError, match=r"data\.corruption\.severity"):
        data_config(dataset="cityscapes_c", root="x", corruption={"severity": 6})


def test_library_corruptions_are_seeded_and_leave_the_global_generator_alone(tmp_path):
    pytest.importorskip("imagecorruptions")
    clean_root = write_cityscapes(tmp_path / "city", num_train=2, num_test=2, height=32, width=64)
    names = ["gaussian_noise", "impulse_noise", "contrast"]
    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    write_corrupted_tree(clean_root, tmp_path / "one", names, severities=[1, 4], seed=2)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    write_corrupted_tree(clean_root, tmp_path / "two", names, severities=[1, 4], seed=2)
    clean = MultiTaskNpyDataset(clean_root, "val", TASKS, 7)
    for name in names:
        for severity in (1, 4):
            one = CorruptedDataset(clean, tmp_path / "one", name, severity)
            two = CorruptedDataset(clean, tmp_path / "two", name, severity)
            for position in range(len(clean)):
                assert torch.equal(one[position]["image"], two[position]["image"])
                assert not torch.equal(one[position]["image"], clean[position]["image"])
    weak = corrupted_test_split(clean, tmp_path / "one", "gaussian_noise", 1)[0]["image"]
    strong = corrupted_test_split(clean, tmp_path / "one", "gaussian_noise", 4)[0]["image"]
    reference = clean[0]["image"]
    assert (strong - reference).abs().mean() > (weak - reference).abs().mean()
    with pytest.raises(InvalidParameterError, match=r"--corruptions: unknown \['rain'\]"):
        write_corrupted_tree(clean_root, tmp_path / "three", ["rain"], severities=[1])


def test_cli_corrupt_writes_the_tree_and_refuses_to_overwrite(tmp_path, capsys):
    pytest.importorskip("imagecorruptions")
    clean_root = write_cityscapes(tmp_path / "city", num_train=2, num_test=2, height=32, width=64)
    out = tmp_path / "tree"
    command = ["data", "corrupt", "--root", str(clean_root), "--out", str(out)]
    options = ["--corruptions", "brightness,pixelate", "--severities", "2"]
    assert main([*command, *options]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "brightness/2/0.png",
        "brightness/2/1.png",
        "pixelate/2/0.png",
        "pixelate/2/1.png",
    ]
    capsys.readouterr()
    assert main([*command, *options]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*command, "--severities", "7"]) == 2
    assert "--severities: expected values in [1, 2, 3, 4, 5]" in capsys.readouterr().err


# Configs


@pytest.mark.parametrize(
    ("name", "dataset"),
    [
        ("gta5_cityscapes.yaml", "gta5"),
        ("cityscapes_c.yaml", "cityscapes_c"),
        ("colored_cityscapes.yaml", "colored_cityscapes"),
    ],
)
def test_example_configs_load_into_typed_sections(name, dataset):
    config = load_config(CONFIG_FOLDER / name)
    assert config.data.dataset == dataset
    assert config.data.num_classes == 7 and config.data.tasks == TASKS
    assert config.data.resolution == [128, 256]


def test_unknown_key_in_a_dataset_section_is_named():
    with pytest.raises(InvalidParameterError, match=r"data\.gta5\.depth_scale: unknown key"):
        data_config(dataset="gta5", root="x", gta5={"depth_scale": 2.0})
    with pytest.raises(InvalidParameterError, match=r"data\.gta5\.depth_scaling: expected one of"):
        data_config(dataset="gta5", root="x", gta5={"depth_scaling": "mean"})


# End to end


@pytest.mark.parametrize("name", ["gta5", "cityscapes_c", "colored_cityscapes"])
def test_a_short_training_run_goes_through_each_new_dataset(tmp_path, name, tiny_vision_config):
    from experiments.vision.training import build_run, train

    data = {
        "tasks": TASKS,
        "num_classes": 7,
        "resolution": [HEIGHT, WIDTH],
        "val_fraction": 0.25,
        "augment": True,
        **ood_data_section(name, tmp_path),
    }
    config = tiny_vision_config(
        data=data,
        method={"cka_warmup_steps": 0},
        training={"epochs": 1, "batch_size": 4, "warmup_steps": 0, "lr": 1e-3},
        run={"output_dir": str(tmp_path / "out"), "seed": 0, "num_sample_images": 1},
    )
    run = build_run(config)
    report = train(run)
    assert run.step >= 1 and len(run.history) == 1
    test_metrics = run.history[0]["test"]
    assert {"segmentation/miou", "depth/abs_err"} <= set(test_metrics)
    assert all(np.isfinite(v) for v in test_metrics.values())
    assert report["epochs"] == 1 and report["test_at_selected"] == test_metrics
